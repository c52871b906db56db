"""Render a node's configuration files from its settings with Jinja2 — the one template engine for `make run` and the
Ansible roles. The templates live next to their component (kamailio/node.cfg.j2, rtpengine/rtpengine.conf.j2,
grafana/prometheus/prometheus.yml.j2); the shipped kamailio.cfg itself is never templated.

    python -m controlplane.node.render check SETTINGS.json   render everything into a scratch directory and check
                                                             it as each daemon would (kamailio -c, promtool, RTPengine's
                                                             option list); exit 1 naming what is wrong

Ansible runs `check` as the `validate` of a host's settings file, so a variable that would break a daemon fails the run
on that host before the file is put in place and before any service restarts.
"""

from __future__ import annotations

import configparser
import functools
import ipaddress
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from kemi import contract

from .settings import ROOT, NodeSettings, dmq_peer, host_port

MAIN_CFG = ROOT / "kamailio" / "kamailio.cfg"
KEMI_SCRIPT = ROOT / "kemi" / "kamailio_app.py"
RULES = ROOT / "grafana" / "prometheus" / "rules.yml"
KAMAILIO_TEMPLATE = "kamailio/node.cfg.j2"
TLS_TEMPLATE = "kamailio/tls.cfg.j2"
# TLS 1.2's forward-secret AEAD suites (TLS 1.3's are OpenSSL's own, all modern)
TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!eNULL:!MD5:!DSS:!SHA1"
RTPENGINE_TEMPLATE = "rtpengine/rtpengine.conf.j2"
PROMETHEUS_TEMPLATE = "grafana/prometheus/prometheus.yml.j2"


def _cfg_str(value) -> str:
    """A value inside a double-quoted Kamailio string: no quote, backslash or line break can end it early."""
    text = str(value)
    if re.search(r'["\\\x00-\x1f]', text):
        raise ValueError(f"{text!r} cannot go into a Kamailio string (quote, backslash or control character)")
    return text


@functools.cache
def _jinja() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROOT)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["cfg_str"] = _cfg_str
    return env


def render_text(template: str, **variables) -> str:
    return _jinja().get_template(template).render(**variables)


@dataclass(frozen=True)
class Paths:
    """Where a node's files are on its host (derived from the settings and the installed release)."""

    run_dir: Path
    usrloc_db: Path  # the db_text directory Kamailio keeps the registrations in across restarts
    tls_cfg: Path  # the tls module's profiles (kamailio/tls.cfg.j2)
    kemi_script: Path = KEMI_SCRIPT
    main_cfg: Path = MAIN_CFG


def _paths(settings: NodeSettings) -> Paths:
    return Paths(
        run_dir=settings.run_dir, usrloc_db=settings.var / "registrations", tls_cfg=settings.run_dir / "tls.cfg"
    )


DBTEXT_SCHEMA = Path("/usr/share/kamailio/dbtext/kamailio")  # Debian's kamailio package
USRLOC_TABLES = ("location", "location_attrs")


def prepare_registrations(settings: NodeSettings) -> Path:
    """The db_text directory of the registrations: Kamailio's own empty tables (from its package) the first time;
    left as it is afterwards (it holds the registrations Kamailio wrote when it last stopped)."""
    where = _paths(settings).usrloc_db
    where.mkdir(parents=True, exist_ok=True)
    versions = [
        ln
        for ln in (DBTEXT_SCHEMA / "version").read_text().splitlines()
        if ln.startswith("id(") or ln.split(":")[1:2] in (["version"], *([t] for t in USRLOC_TABLES))
    ]
    if not (where / "version").exists():
        _write(where / "version", "\n".join(versions) + "\n")
    for table in USRLOC_TABLES:
        if not (where / table).exists():
            _write(where / table, (DBTEXT_SCHEMA / table).read_text())
    return where


def kamailio_cfg(settings: NodeSettings, tls_cfg: Path | None = None) -> str:
    paths = _paths(settings)
    if tls_cfg is not None:
        paths = Paths(paths.run_dir, paths.usrloc_db, tls_cfg)
    return render_text(
        KAMAILIO_TEMPLATE,
        s=settings,
        paths=paths,
        contract=contract.cfg_defines(
            ban_s=settings.edge_ban_s, edge_window_s=settings.edge_window_s, cluster=bool(settings.dmq_port)
        ),
        dmq_peers=[dmq_peer(p) for p in settings.dmq_peers],
        redis=host_port(settings.redis_address, "redis_address") if settings.redis_address else None,
    )


def tls_cfg(settings: NodeSettings, cert: Path | None = None, key: Path | None = None) -> str:
    """The tls module's profiles: the node's certificate and key (`cert`/`key` instead: a check's scratch pair)."""
    own_cert, own_key = settings.tls_files
    return render_text(
        TLS_TEMPLATE,
        cert=cert or own_cert,
        key=key or own_key,
        ca=settings.tls_ca_path,
        server_ca=settings.tls_ca_file,  # providers' client certificates are checked only against CAs named for them
        ciphers=TLS_CIPHERS,
    )


def prepare_tls(settings: NodeSettings, now: float | None = None):
    """Before Kamailio starts: the certificate it serves, checked (a self-signed one made if none is configured), and
    its tls.cfg. Returns (CertInfo, made); raises tls.TlsProblem naming the file and the reason."""
    import time

    from . import tls

    cert, key = settings.tls_files
    info, made = tls.ensure_certificate(
        cert,
        key,
        bool(settings.tls_certificate),
        settings.node_name,
        settings.tls_addresses,
        time.time() if now is None else now,
    )
    if not settings.tls_ca_path.exists():
        raise tls.TlsProblem(f"tls_ca_file {settings.tls_ca_path}: no such file")
    _write(_paths(settings).tls_cfg, tls_cfg(settings))
    return info, made


def rtpengine_conf(settings: NodeSettings) -> str:
    return render_text(RTPENGINE_TEMPLATE, s=settings, paths=_paths(settings))


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def prometheus_yml(
    targets: list[dict],
    *,
    scrape_interval_s: float = 15.0,
    rule_files: list[str] | None = None,
    scheme: str = "http",
    ca_file: str = "",
) -> str:
    """Prometheus' configuration for callmanager nodes: one job, one target per node, labelled with its node name and
    data center (the dashboards and alert rules group by them). `targets`: [{"address": "host:port", "node": ...,
    "datacenter": ...}]. The Ansible role prometheus renders the same template with the same variables."""
    return render_text(
        PROMETHEUS_TEMPLATE,
        prometheus_scrape_interval=_duration(scrape_interval_s),
        prometheus_scrape_timeout=_duration(min(scrape_interval_s, 10.0)),
        prometheus_rule_files=rule_files if rule_files is not None else [str(RULES)],
        prometheus_targets=targets,
        prometheus_scheme=scheme,
        prometheus_ca_file=ca_file,
    )


def _single_node_prometheus(settings: NodeSettings) -> str:
    return prometheus_yml(
        [
            {
                "address": f"{settings.api_address}:{settings.api_port}",
                "node": settings.node_name,
                "datacenter": settings.datacenter,
            }
        ],
        scrape_interval_s=settings.prometheus_scrape_interval_s,
        rule_files=[f.strip() for f in settings.prometheus_rule_files.split(",") if f.strip()] or None,
        scheme="https" if settings.api_tls else "http",
        ca_file=settings.api_verify if isinstance(settings.api_verify, str) else "",
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def render_kamailio(settings: NodeSettings) -> Path:
    prepare_registrations(settings)
    if settings.sip_tls_port:
        prepare_tls(settings)
    return _write(settings.run_dir / "kamailio-node.cfg", kamailio_cfg(settings))


def render_rtpengine(settings: NodeSettings) -> Path:
    return _write(settings.run_dir / "rtpengine.conf", rtpengine_conf(settings))


def render_prometheus(settings: NodeSettings) -> Path:
    """The single node's prometheus.yml: its own control plane's /metrics."""
    return _write(settings.run_dir / "prometheus.yml", _single_node_prometheus(settings))


# -- checks, as each daemon would see the file ---------------------------------------------------------------------


def check_kamailio(path: Path) -> str | None:
    """`kamailio -c`: Kamailio parses the whole configuration (the shipped cfg included) and loads its modules."""
    try:
        done = subprocess.run(["kamailio", "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return "kamailio is not installed"
    if done.returncode != 0:
        errors = [ln for ln in (done.stderr + done.stdout).splitlines() if "ERROR" in ln or "CRITICAL" in ln] or (
            done.stderr + done.stdout
        ).splitlines()[-5:]
        return "kamailio -c refused the configuration: " + " | ".join(errors[:5])
    return None


@functools.cache
def rtpengine_options() -> frozenset[str]:
    """The long options this RTPengine knows (from its own --help): the keys its configuration file may hold."""
    done = subprocess.run(["rtpengine", "--help"], capture_output=True, text=True, timeout=30)
    return frozenset(re.findall(r"--([a-z0-9-]+)", done.stdout + done.stderr))


def check_rtpengine(path: Path) -> str | None:
    """RTPengine ignores keys it does not know and starts anyway, and has no configuration test; so: the file parses,
    every key is an option this RTPengine knows, numbers are numbers, addresses are addresses."""
    try:
        known = rtpengine_options()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"rtpengine's options could not be read (is it installed?): {exc}"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text())
    except configparser.Error as exc:
        return f"{path}: not an RTPengine configuration file: {exc}"
    if not parser.has_section("rtpengine"):
        return f"{path}: no [rtpengine] section"
    problems = []
    for key, value in parser.items("rtpengine"):
        if key not in known:
            problems.append(f"unknown option {key}")
        elif key in (
            "port-min",
            "port-max",
            "log-level",
            "delete-delay",
            "timeout",
            "silent-timeout",
            "num-threads",
            "table",
        ):
            if not re.fullmatch(r"-?\d+", value):
                problems.append(f"{key} = {value!r} is not a number")
        elif key == "interface":
            try:
                ipaddress.ip_address(value.split("!")[0].split("/")[-1])
            except ValueError:
                problems.append(f"interface = {value!r} is not an address")
        elif key in ("listen-ng", "listen-cli"):
            host, _, port = value.rpartition(":")
            if not port.isdigit() or not 1 <= int(port) <= 65535:
                problems.append(f"{key} = {value!r} has no port")
    return f"{path}: " + "; ".join(problems) if problems else None


def check_prometheus(path: Path) -> str | None:
    try:
        done = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return "promtool is not installed"
    return (
        None
        if done.returncode == 0
        else "promtool refused the configuration: " + (done.stderr or done.stdout).strip()[-500:]
    )


def check_all(settings: NodeSettings, scratch: Path) -> list[str]:
    """Render every file of the node into `scratch` and check each; the problems found (empty: all good)."""
    problems = []
    scratch_tls = scratch / "tls.cfg"
    if settings.sip_tls_port:  # kamailio -c loads the certificates: the configured pair, else a scratch self-signed one
        from . import tls

        cert, key = settings.tls_files
        try:
            if settings.tls_certificate:
                tls.check_pair(cert, key)
            else:
                cert, key = scratch / "check.crt", scratch / "check.key"
                tls.make_self_signed(cert, key, settings.node_name, [settings.sip_address])
            _write(scratch_tls, tls_cfg(settings, cert, key))
        except tls.TlsProblem as exc:
            return [f"tls: {exc}"]
    for name, text, check in (
        ("kamailio-node.cfg", lambda s: kamailio_cfg(s, scratch_tls), check_kamailio),
        ("rtpengine.conf", rtpengine_conf, check_rtpengine),
        ("prometheus.yml", _single_node_prometheus, check_prometheus),
    ):
        try:
            path = _write(scratch / name, text(settings))
        except (ValueError, jinja2.TemplateError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        problem = check(path)
        if problem:
            problems.append(problem)
    return problems


def main(argv: list[str] | None = None) -> int:
    from .settings import load_settings

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "check":
        print("usage: python -m controlplane.node.render check SETTINGS.json", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args[1], env={})
    except ValueError as exc:
        print(f"{args[1]}: {exc}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="callmanager-check-") as scratch:
        # The checks render into scratch; the node's run directory is where the daemons will look at run time.
        problems = check_all(settings, Path(scratch))
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"{args[1]}: settings, Kamailio, RTPengine and Prometheus configuration ok")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
