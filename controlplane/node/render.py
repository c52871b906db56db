"""Render per-node files: the Kamailio `#!define` include. The shipped cfg itself is never templated."""
from __future__ import annotations

import json
from pathlib import Path

from .settings import ROOT, NodeSettings

MAIN_CFG = ROOT / "kamailio" / "kamailio.cfg"
TEMPLATE = ROOT / "kamailio" / "node.cfg.template"
KEMI_SCRIPT = ROOT / "kemi" / "kamailio_app.py"


def render_kamailio(settings: NodeSettings) -> Path:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    text = TEMPLATE.read_text().format(
        sip_address=settings.sip_address,
        sip_port=settings.sip_port,
        rpc_address=settings.kamailio_rpc_address,
        rpc_port=settings.kamailio_rpc_port,
        ctl_socket=settings.run_dir / "kamailio_ctl",
        rtpengine_ng_address=settings.rtpengine_address,
        rtpengine_ng_port=settings.rtpengine_ng_port,
        kemi_script=KEMI_SCRIPT,
        children=settings.kamailio_children,
        log_level=settings.kamailio_log_level,
        log_prefix_define="#!define WITH_LOG_PREFIX" if settings.kamailio_log_prefix else "# no log prefix (kamailio_log_prefix off)",
        invite_timeout_ms=settings.invite_timeout_s * 1000,
        call_max_s=settings.call_max_s,
        dialog_keepalive_s=settings.dialog_keepalive_s or 3600,  # 0: no dialog asks for keep-alives (kemi settings)
        ban_s=settings.edge_ban_s,
        edge_expire_s=3 * settings.edge_window_s,
        main_cfg=MAIN_CFG,
    )
    out = settings.run_dir / "kamailio-node.cfg"
    out.write_text(text)
    return out


RULES = ROOT / "grafana" / "prometheus" / "rules.yml"


def prometheus_config(targets: list[dict], *, scrape_interval_s: float = 15.0, rule_files: list[str] | None = None) -> dict:
    """Prometheus' configuration for callmanager nodes: one job, one target per node, labelled with its node name and
    data center (the dashboards and alert rules group by them). `targets`: [{"address": "host:port", "node": ..., "datacenter": ...}]."""
    interval = f"{max(1, round(scrape_interval_s * 1000))}ms"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files if rule_files is not None else [str(RULES)],
        "scrape_configs": [{
            "job_name": "callmanager",
            "scrape_timeout": f"{max(1, round(min(scrape_interval_s, 10.0) * 1000))}ms",
            "static_configs": [{"targets": [t["address"]], "labels": {"node": t["node"], "datacenter": t["datacenter"]}} for t in targets],
        }],
    }


def render_prometheus(settings: NodeSettings) -> Path:
    """The single node's prometheus.yml (JSON is YAML): its own control plane's /metrics."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    doc = prometheus_config([{"address": f"{settings.api_address}:{settings.api_port}", "node": settings.node_name,
                              "datacenter": settings.datacenter}], scrape_interval_s=settings.prometheus_scrape_interval_s,
                            rule_files=[f.strip() for f in settings.prometheus_rule_files.split(",") if f.strip()] or None)
    out = settings.run_dir / "prometheus.yml"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out
