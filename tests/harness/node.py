"""A whole node for tests: RTPengine, control plane and Kamailio, real processes on free loopback ports."""
from __future__ import annotations

import time
from pathlib import Path

from controlplane.cli import client
from controlplane.node.run import Node
from controlplane.node.settings import load_settings

from .ports import free_port, free_port_block


class TestNode:
    __test__ = False  # a harness, not a test class (modules import it)

    def __init__(self, var_dir: Path, rtp_ports: int = 400, **overrides):
        rtp = free_port_block(rtp_ports)
        # the tests' SIP traffic comes from 127.0.0.1: exempt from bans (the edge tests send from 127.0.0.2 and up)
        defaults = dict(snapshot_check_s=0.1, cdr_ingest_interval_s=0.2, invite_timeout_s=20, kamailio_shm_mb=160, edge_exempt="127.0.0.1",
                        fraud_monitor_interval_s=0.5, prometheus=False, live_sync_interval_s=3.0, webhook_private_ok=True,  # the test webhooks listen on loopback
                        kamailio_fault_header="X-Callmanager-Test-Fault",  # tests/scenario/test_hostile.py
                        media_server=False, music_on_hold=False,  # the media tests turn them on
                        sip_tls_port=free_port(), sip_wss_port=free_port(), sip_ws_port=free_port())
        defaults.update(overrides)
        self.settings = load_settings(
            env={},
            var_dir=str(var_dir),
            sip_port=free_port(),
            kamailio_rpc_port=free_port(),
            rtpengine_ng_port=free_port(),
            rtpengine_cli_port=free_port(),
            api_port=free_port(),
            prometheus_port=free_port(),
            media_server_port=free_port_block(2),
            media_server_workers=2,
            rtp_port_min=rtp,
            rtp_port_max=rtp + rtp_ports - 1,
            **defaults,
        )
        self.node = Node(self.settings)

    @property
    def sip(self) -> tuple[str, int]:
        return self.settings.sip_address, self.settings.sip_port

    @property
    def sip_tls(self) -> tuple[str, int]:
        return self.settings.sip_address, self.settings.sip_tls_port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.sip_address}:{self.settings.sip_ws_port}"

    @property
    def token(self) -> str:
        return (Path(self.settings.var_dir) / "admin.token").read_text().strip()

    def start(self, attempts: int = 3) -> "TestNode":
        """Start the node. Its ports were free when picked (tests/harness/ports.py), but a single port is picked in the
        kernel's ephemeral range, where any outgoing socket of the machine may take it before the daemon binds it
        (seen once in a full run: RTPengine's control port, "Address already in use"): such a start is stopped and
        tried again on the same ports a moment later, when the short-lived socket is gone."""
        for attempt in range(attempts):
            try:
                self.node.start()
                return self
            except RuntimeError as exc:
                if "Address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.node.stop()
                time.sleep(1.0 + attempt)
        return self

    def stop(self) -> None:
        self.node.stop()

    def rpc(self, method: str, token: str | None = None, **params):
        return client.call(method, params, url=self.settings.api_url, token=token or self.token,
                           verify=self.settings.api_verify)

    def rpc_error(self, method: str, token: str | None = None, **params) -> dict:
        """The JSON-RPC error a call answers with (the test fails if it succeeds)."""
        try:
            got = self.rpc(method, token=token, **params)
        except client.RpcError as exc:
            return exc.error
        raise AssertionError(f"{method} succeeded where an error was expected: {got!r}")

    def component(self, name: str):
        return self.node.components[name]

    def kamailio_rpc(self, method: str, *params):
        from controlplane.adapters.kamailio_rpc import KamailioRpc

        from controlplane.sealed import shared_secret

        return KamailioRpc(self.settings.kamailio_rpc_url, secret=shared_secret(self.settings.rpc_secret_path)).call(method, *params)
