"""`make run` / `make stop`: start one node in the foreground, or stop the one that runs.

python -m controlplane.node.run start [--config FILE] [--sip-port N] ...
python -m controlplane.node.run stop
python -m controlplane.node.run exec COMPONENT --config FILE   one component in the foreground, for a service
                                                              manager (systemd, supervisor): rtpengine, kamailio,
                                                              controlplane or prometheus
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from . import processes
from .supervise import GiveUp, Supervisor
from .settings import NodeSettings, load_settings


class Node:
    """RTPengine, Kamailio and the control plane of one node, started in that order."""

    def __init__(self, settings: NodeSettings):
        self.settings = settings
        os.umask(
            0o077
        )  # the node's files (database, CDR spool, snapshot, keys, logs) are its owner's only; children inherit it
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_file = settings.run_dir / "node-settings.json"
        self.config_file.write_text(settings.to_json())
        self.components = {
            "rtpengine": processes.rtpengine(settings),
            **({"mediaserver": processes.mediaserver(settings)} if settings.media_server else {}),
            "controlplane": processes.controlplane(settings, self.config_file),
            "kamailio": processes.kamailio(settings),
        }
        if settings.prometheus:
            self.components["prometheus"] = processes.prometheus(settings)

    def start(self) -> None:
        try:
            for c in self.components.values():  # the control plane publishes the first snapshot before Kamailio starts
                c.start()
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for c in reversed(list(self.components.values())):
            c.stop()

    def _tls_line(self) -> str:
        s = self.settings
        if not s.sip_tls_port:
            return "  SIP over TLS   off (sip_tls_port 0)"
        from .tls import TlsProblem, inspect

        cert, _key = s.tls_files
        try:
            info = inspect(cert)
        except TlsProblem as exc:
            return f"  SIP over TLS   tls {s.sip_address}:{s.sip_tls_port}, certificate unreadable: {exc}"
        said = (
            "SELF-SIGNED, made for local use (set tls_certificate/tls_private_key for phones on a network)"
            if not s.tls_certificate
            else f"{info.subject}"
        )
        return f"  SIP over TLS   tls {s.sip_address}:{s.sip_tls_port}, certificate {cert}: {said}"

    def _phone_line(self) -> str:
        """Where the page is and which WebSocket it will use: WSS from an HTTPS page, plain WS (if on) from HTTP."""
        s = self.settings
        if s.api_tls:
            sip = f"SIP over wss port {s.wss_port}" if s.wss_port else "no WSS listener: it cannot register"
        elif s.sip_ws_port:
            sip = f"SIP over ws port {s.sip_ws_port}"
        elif s.wss_port:
            sip = f"SIP over wss port {s.wss_port}: the browser must trust its certificate"
        else:
            sip = "no WebSocket listener: it cannot register"
        return f"  web phone      {s.api_base}/phone/  (users log in with their API token; {sip})"

    def describe(self) -> str:
        s = self.settings
        return "\n".join(
            [
                f"callmanager node {s.node_name} is running:",
                f"  SIP            udp+tcp {s.sip_address}:{s.sip_port}",
                self._tls_line(),
                f"  admin API      {s.api_url}   (token: {s.var / 'admin.token'})",
                f"  metrics        {s.api_base}/metrics",
                self._phone_line(),
                (
                    f"  Prometheus     http://{s.prometheus_address}:{s.prometheus_port}/  (alerts: /alerts)"
                    if s.prometheus
                    else "  Prometheus     off (prometheus=false)"
                ),
                f"  Kamailio RPC   {s.kamailio_rpc_url}",
                f"  RTPengine ng   udp {s.rtpengine_address}:{s.rtpengine_ng_port}, RTP ports "
                f"{s.rtp_port_min}-{s.rtp_port_max}",
                (
                    f"  media server   udp {s.sip_address}:{s.media_server_port}"
                    + (f"-{s.media_server_port + s.media_server_workers - 1}" if s.media_server_workers > 1 else "")
                    + f" (announcements, {s.prompt_language})"
                    if s.media_server
                    else "  media server   off (media_server=false)"
                ),
                f"  logs           {s.log_dir}/",
                "Stop with Ctrl-C here, or `make stop` from another shell.",
            ]
        )


RUNNER_PID = "node.pid"  # the `start` process itself: it restarts components that exit, so `stop` ends it first


def stop_running(settings: NodeSettings) -> int:
    stopped = 0
    runner_file = settings.run_dir / RUNNER_PID
    runner = processes.read_pid(runner_file)
    if runner:  # it stops its components in order; without this its supervisor would restart what we stop
        try:
            os.kill(runner, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                os.kill(runner, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            print(f"stopped the node runner (pid {runner})")
            stopped += 1
        runner_file.unlink(missing_ok=True)
    for name in ("prometheus", "kamailio", "controlplane", "mediaserver", "rtpengine"):
        pidfile = settings.run_dir / f"{name}.pid"
        pid = processes.read_pid(pidfile)
        if pid:
            processes.terminate(pid)
            print(f"stopped {name} (pid {pid})")
            stopped += 1
        pidfile.unlink(missing_ok=True)
    if not stopped:
        print("no node is running (no pid files under", settings.run_dir, ")")
    return 0


COMPONENTS = ("rtpengine", "mediaserver", "controlplane", "kamailio", "prometheus")  # the order `start` uses
SNAPSHOT_WAIT_S = 60.0


def exec_component(settings: NodeSettings, config_file: str, name: str) -> int:
    """Replace this process with one component, rendered and set up exactly as `start` does it: systemd units and
    supervisor programs (ansible/roles) run this, so a host runs the same command lines as `make run`."""
    os.umask(0o077)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    make = {
        "rtpengine": processes.rtpengine,
        "kamailio": processes.kamailio,
        "prometheus": processes.prometheus,
        "mediaserver": processes.mediaserver,
        "controlplane": lambda s: processes.controlplane(s, Path(config_file)),
    }
    component = make[name](settings)
    if name == "kamailio":  # the control plane publishes the first snapshot; Kamailio routes from it
        deadline = time.monotonic() + SNAPSHOT_WAIT_S
        while not settings.snapshot_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not settings.snapshot_path.exists():
            print(
                f"no snapshot at {settings.snapshot_path} after {SNAPSHOT_WAIT_S:.0f}s; Kamailio starts without one "
                "and loads it when the control plane publishes it",
                file=sys.stderr,
                flush=True,
            )
    os.chdir(processes.ROOT)
    sys.stdout.flush()
    os.execvpe(component.argv[0], component.argv, processes.clean_env(component.env))
    return 1  # not reached


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["start", "stop", "exec"])
    ap.add_argument("component", nargs="?", choices=COMPONENTS, help="exec: the component to run")
    ap.add_argument("--config", help="JSON settings file (see docs/operations.md)")
    for name in NodeSettings.model_fields:
        ap.add_argument("--" + name.replace("_", "-"), dest=name, default=None)
    args = ap.parse_args(argv)
    overrides = {name: getattr(args, name) for name in NodeSettings.model_fields}
    try:
        settings = load_settings(args.config, **overrides)
    except ValueError as exc:  # a setting that cannot work: say which, start nothing
        print(f"bad node settings: {exc}", file=sys.stderr)
        return 2
    if args.action == "stop":
        return stop_running(settings)
    if args.action == "exec":
        if not args.component or not args.config:
            print("exec needs a COMPONENT and --config FILE", file=sys.stderr)
            return 2
        return exec_component(settings, args.config, args.component)
    for name in ("prometheus", "kamailio", "controlplane", "mediaserver", "rtpengine"):
        pid = processes.read_pid(settings.run_dir / f"{name}.pid")
        if pid:
            try:
                os.kill(pid, 0)
                print(f"{name} is already running (pid {pid}); `make stop` first", file=sys.stderr)
                return 1
            except ProcessLookupError:
                pass
    node = Node(settings)
    try:
        node.start()
    except RuntimeError as exc:
        print(f"node did not start: {exc}", file=sys.stderr)
        return 1
    print(node.describe(), flush=True)
    runner_file = settings.run_dir / RUNNER_PID
    runner_file.write_text(f"{os.getpid()}\n")
    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    supervisor = Supervisor(node.components, say=lambda line: print(line, file=sys.stderr, flush=True))
    code = 0
    try:
        while not stop["now"]:
            try:
                supervisor.check(time.monotonic())
            except GiveUp as exc:
                print(f"{exc}; stopping the node", file=sys.stderr, flush=True)
                code = 1
                break
            time.sleep(0.5)
    finally:
        print("stopping the node ...", flush=True)
        node.stop()
        if processes.read_pid(runner_file) == os.getpid():
            runner_file.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
