"""Carrier operations: the Ansible rollout (`cm cluster ...`) and the cluster database's helpers."""
