"""Render per-node files: the Kamailio `#!define` include. The shipped cfg itself is never templated."""
from __future__ import annotations

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
        ban_s=settings.edge_ban_s,
        edge_expire_s=3 * settings.edge_window_s,
        main_cfg=MAIN_CFG,
    )
    out = settings.run_dir / "kamailio-node.cfg"
    out.write_text(text)
    return out
