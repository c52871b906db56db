"""What Kamailio loads: the pure policy core (`kemi.policy`) and the thin KSR shell (`kemi.shell`).

`kemi` never imports `controlplane` and stays light to import (stdlib only).
"""
