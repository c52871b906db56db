"""`cm tls`: the certificate of the node's TLS listener (docs/tls.md)."""

from __future__ import annotations

from .common import _area, console, rpc, show

tls = _area("tls", "the node's TLS certificate: what it serves, reload after a renewal")
COLS = ["listener", "certificate_file", "configured"]


def _print(doc: dict) -> None:
    show(doc, COLS)
    c = doc["certificate"]
    console.print(
        f"{c['subject']}  names: {', '.join(c['names']) or '-'}\n"
        f"issuer: {c['issuer']}{'  (SELF-SIGNED)' if c['self_signed'] else ''}\n"
        f"valid {c['not_before']} .. {c['not_after']} ({c['expires_in_days']} days left)\n"
        f"sha256 {c['sha256']}",
        emoji=False,  # a fingerprint's ":CD:" is not a compact disc
        markup=False,
        highlight=False,
        soft_wrap=True,  # a fingerprint is copied whole: never broken across lines by the terminal's width
    )


@tls.command("status")
def status():
    """The certificate the node serves on its TLS listener."""
    doc = rpc("tls.status")
    show(doc) if _json() else _print(doc)


@tls.command("reload")
def reload():
    """Load the certificate files again (after a renewal), checked first; no restart."""
    doc = rpc("tls.reload")
    show(doc) if _json() else _print(doc)


def _json() -> bool:
    from .common import STATE

    return bool(STATE["json"])
