"""Start and stop the processes of one node: RTPengine, Kamailio, the control plane.

Each process is started by us, its PID written under `var/run/`, and only those PIDs are
ever signalled. Used by `make run` / `make stop` and by the scenario tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import probe
from .render import render_kamailio, render_prometheus, render_rtpengine
from .settings import ROOT, NodeSettings, dmq_peer

VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child daemons: no pyenv/venv leakage into Kamailio's embedded Python."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYENV", "PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env.update(extra or {})
    return env


@dataclass
class Component:
    name: str
    argv: list[str]
    pidfile: Path
    logfile: Path
    ready: list[tuple[str, str, int]] = field(default_factory=list)  # (proto, host, port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    # after its ports listen: it is ready once this answers True (Kamailio: a SIP OPTIONS answered — its workers may
    # still be setting up, measured ~1 s for the first request with TLS, while the ports already listen)
    answers: Callable[[], bool] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(self.env),
            cwd=ROOT,
            start_new_session=True,
        )
        log.close()
        self.pidfile.write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        for proto, host, port in self.ready:
            while not _listening(proto, host, port):
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}; see {self.logfile}:\n{tail(self.logfile)}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"{self.name} did not listen on {proto} {host}:{port} within {timeout}s; see "
                        f"{self.logfile}:\n{tail(self.logfile)}"
                    )
                time.sleep(0.05)
        while self.answers is not None and not self.answers():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.logfile}:\n{tail(self.logfile)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} listens but did not answer within {timeout}s; see {self.logfile}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        pid = self.proc.pid if self.proc else read_pid(self.pidfile)
        if pid:
            terminate(pid, timeout, self.proc)
        self.pidfile.unlink(missing_ok=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def terminate(pid: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the process we started (and its process group), SIGKILL after `timeout`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc is not None:
        proc.wait(5)


def _listening(proto: str, host: str, port: int) -> bool:
    if proto == "tcp":
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            return False
    # UDP: a bind on the same address fails while the daemon holds it.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def rtpengine(settings: NodeSettings) -> Component:
    run, logs = settings.run_dir, settings.log_dir
    argv = [
        "rtpengine",
        f"--config-file={render_rtpengine(settings)}",
        "--config-section=rtpengine",
        "--foreground",
        "--log-stderr",
    ]
    return Component(
        "rtpengine",
        argv,
        run / "rtpengine.pid",
        logs / "rtpengine.log",
        ready=[
            ("udp", settings.rtpengine_vip or settings.rtpengine_address, settings.rtpengine_ng_port),
            ("tcp", settings.rtpengine_address, settings.rtpengine_cli_port),
        ],
    )


def kamailio(settings: NodeSettings) -> Component:
    from controlplane.sealed import shared_secret

    cfg = render_kamailio(settings)
    run = settings.run_dir
    argv = [
        "kamailio",
        "-DD",
        "-E",
        "-f",
        str(cfg),
        "-P",
        str(run / "kamailio.pid.own"),
        "-Y",
        str(run),
        "-m",
        str(settings.kamailio_shm_mb),
        "-M",
        "16",
        "-x",
        "tlsf",
        "-w",
        str(run),
    ]
    env = {
        "CALLMANAGER_ROOT": str(ROOT),
        "CALLMANAGER_VAR": str(settings.var),
        "CALLMANAGER_SNAPSHOT": str(settings.snapshot_path),
        "CALLMANAGER_SPOOL": str(settings.spool_dir),
        "CALLMANAGER_KAMAILIO_RPC_PORT": str(settings.kamailio_rpc_port),
        "CALLMANAGER_WS_PORTS": ",".join(str(p) for p in (settings.sip_ws_port, settings.wss_port) if p),
        "CALLMANAGER_SNAPSHOT_CHECK_S": str(settings.snapshot_check_s),
        "CALLMANAGER_TRUNK_TIMEOUT_MS": str(settings.trunk_timeout_ms),
        "CALLMANAGER_DEVICE_TIMEOUT_MS": str(settings.device_timeout_ms),
        "CALLMANAGER_EDGE": json.dumps(settings.edge_doc()),
        "CALLMANAGER_FRAUD_CHECKS": "1" if settings.fraud_checks else "0",
        "CALLMANAGER_FAULT_HEADER": settings.kamailio_fault_header,
        "CALLMANAGER_CALL_MAX_S": str(settings.call_max_s),
        "CALLMANAGER_DIALOG_KEEPALIVE": "1" if settings.dialog_keepalive_s else "0",
        "CALLMANAGER_RPC_SECRET_FILE": str(settings.rpc_secret_path),
        "CALLMANAGER_DRAIN_RETRY_AFTER_S": str(settings.drain_retry_after_s),
        "CALLMANAGER_DMQ_PORT": str(settings.dmq_port),
        "CALLMANAGER_DMQ_SOURCES": ",".join(sorted({dmq_peer(p)[0] for p in settings.dmq_peers})),
        "CALLMANAGER_DMQ_NODE": f"{settings.dmq_node_index}/{len(settings.dmq_peers) + 1}",
        "CALLMANAGER_SIP_VIP": settings.sip_vip,
        "CALLMANAGER_NODE_NAME": settings.node_name,
        "CALLMANAGER_SHARED_COUNTERS": "1" if settings.redis_address else "0",
        "CALLMANAGER_MEDIA_SERVER": (
            f"{settings.sip_address}:{settings.media_server_port}" if settings.media_server else ""
        ),
        "CALLMANAGER_PROMPT_LANGUAGE": settings.prompt_language,
        "CALLMANAGER_MEDIA_WORKERS": str(settings.media_server_workers),
        "CALLMANAGER_MUSIC_FILE": (
            settings.music_file or str(ROOT / "mediaserver" / "prompts" / "music" / "default.wav")
        )
        if settings.music_on_hold
        else "",
    }
    shared_secret(settings.rpc_secret_path)  # made before Kamailio or the control plane reads it
    return Component(
        "kamailio",
        argv,
        run / "kamailio.pid",
        settings.log_dir / "kamailio.log",
        ready=[
            ("udp", settings.sip_address, settings.sip_port),
            ("tcp", settings.sip_address, settings.sip_port),
            *(
                ("tcp", settings.sip_address, port)
                for port in (settings.sip_tls_port, settings.sip_ws_port, settings.wss_port)
                if port
            ),
            ("tcp", settings.kamailio_rpc_address, settings.kamailio_rpc_port),
            *([("udp", settings.sip_address, settings.dmq_port)] if settings.dmq_port else []),
        ],
        env=env,
        answers=lambda: probe.probe(settings.sip_address, settings.sip_port, 0.5)[0],
    )


def _python_service(settings: NodeSettings, name: str, module: str, args: list[str], ready) -> Component:
    """A component of this project run as `python -m module` with the node's venv Python."""
    python = str(VENV_PYTHON if VENV_PYTHON.exists() else sys.executable)
    return Component(
        name, [python, "-m", module, *args], settings.run_dir / f"{name}.pid", settings.log_dir / f"{name}.log", ready
    )


def controlplane(settings: NodeSettings, config_file: Path) -> Component:
    return _python_service(
        settings,
        "controlplane",
        "controlplane.server",
        ["--config", str(config_file)],
        [("tcp", settings.api_address, settings.api_port)],
    )


def mediaserver(settings: NodeSettings) -> Component:
    """The media application server (mediaserver/): announcements, with the node's venv Python (pjsua2)."""
    args = ["--address", settings.sip_address, "--port", str(settings.media_server_port)]
    args += ["--lead-ms", str(settings.prompt_lead_ms), "--workers", str(settings.media_server_workers)]
    args += ["--prompts", settings.prompt_dir] if settings.prompt_dir else []
    args += [
        "--voicemail-spool",
        str(settings.voicemail_spool),
        "--voicemail-store",
        str(settings.voicemail_store),
    ]
    return _python_service(
        settings, "mediaserver", "mediaserver", args, [("udp", settings.sip_address, settings.media_server_port)]
    )


def prometheus(settings: NodeSettings) -> Component:
    cfg = render_prometheus(settings)
    data = settings.var / "prometheus"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        "prometheus",
        f"--config.file={cfg}",
        f"--storage.tsdb.path={data}",
        f"--storage.tsdb.retention.time={settings.prometheus_retention}",
        f"--web.listen-address={settings.prometheus_address}:{settings.prometheus_port}",
        "--web.enable-lifecycle",
    ]
    return Component(
        "prometheus",
        argv,
        settings.run_dir / "prometheus.pid",
        settings.log_dir / "prometheus.log",
        ready=[("tcp", settings.prometheus_address, settings.prometheus_port)],
    )
