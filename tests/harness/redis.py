"""A private Redis for tests: Debian's `redis-server` on the configuration the Ansible role `redis` writes (its
template rendered here: the same users and limits as in production), on its own loopback address and a free port.

Started and stopped by the tests themselves (never the system's service). `freeze`/`thaw` make it hang (SIGSTOP) and
come back, as a Redis that stops answering does.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import jinja2

from .ports import free_port

TEMPLATE = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "redis" / "templates" / "redis.conf.j2"


class RedisServer:
    def __init__(self, host: str = "127.0.0.11", password: str = "test-redis-operator-pw") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cm-redis-"))
        self.host, self.port = host, free_port(host)
        self.password = password  # the operator's user `callmanager`
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> RedisServer:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server; scripts/install-debian.sh)")
        (self.root / "redis").mkdir()
        conf = jinja2.Template(TEMPLATE.read_text(), undefined=jinja2.StrictUndefined).render(
            ansible_host=self.host, redis_port=self.port, redis_password=self.password, callmanager_lib_dir=self.root,
            redis_max_memory="64mb")
        (self.root / "redis.conf").write_text(conf)
        self.log = open(self.root / "redis.log", "a")
        self.proc = subprocess.Popen(["redis-server", str(self.root / "redis.conf")], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                if self.cli("PING") == "PONG":
                    return self
            except RuntimeError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "redis.log").read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"Redis did not start: {log}")
            time.sleep(0.05)

    def cli(self, *args: str, operator: bool = True) -> str:
        """redis-cli as the operator's user (`operator=False`: as the SIP nodes connect, without AUTH)."""
        login = ["--user", "callmanager", "--pass", self.password] if operator else []
        done = subprocess.run(["redis-cli", "-h", self.host, "-p", str(self.port), "--no-auth-warning", *login, *args],
                              capture_output=True, text=True, timeout=10)
        out = done.stdout.strip()
        if done.returncode != 0 or out.startswith(("ERR", "NOPERM", "NOAUTH", "WRONGPASS", "(error)")):
            raise RuntimeError(f"redis-cli {args[0]}: {out} {done.stderr.strip()}")
        return out

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)
