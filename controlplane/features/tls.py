"""The node's TLS certificate for operators (platform tokens): what Kamailio serves, and a reload without a restart.

`tls.reload` is how a renewed certificate goes live: the files named by the node settings (tls_certificate,
tls_private_key, tls_ca_file) are checked first — readable PEM, the key the certificate's, not expired — and only then
is Kamailio told to load them (its RPC `tls.reload`: new connections get the new certificate, open ones keep theirs).
A pair that does not check out is refused with `tls_invalid` and Kamailio keeps the certificate it has. docs/tls.md.
"""

from __future__ import annotations

import ssl
import time

from controlplane.adapters.kamailio_rpc import KamailioRpcError
from controlplane.api.errors import TlsInvalid, component_down
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.node import render, tls


def certificate_doc(settings, now: float) -> dict:
    """{listener, certificate: {...}} for tls.status (and the reload's answer); TlsInvalid when it cannot be read."""
    cert, key = settings.tls_files
    try:
        info = tls.check_pair(cert, key)
    except tls.TlsProblem as exc:
        raise TlsInvalid(str(exc), file=str(cert)) from None
    return {
        "listener": f"tls:{settings.sip_address}:{settings.sip_tls_port}" if settings.sip_tls_port else None,
        "api": settings.api_base if settings.api_tls else None,
        "certificate_file": str(cert),
        "ca_file": str(settings.tls_ca_path),
        "configured": bool(settings.tls_certificate),
        "certificate": info.as_doc(now),
    }


def _enabled(ctx) -> None:
    if not (ctx.app.settings.sip_tls_port or ctx.app.settings.api_tls):
        raise TlsInvalid("this node has no TLS listener (node settings sip_tls_port 0, api_tls false)")


@method("tls.status", Params, errors=("forbidden", "tls_invalid"), perm=Perm.PLATFORM)
def status(ctx, p: Params):
    """The certificate this node's TLS listener serves: subject, names, issuer, validity, SHA-256 fingerprint,
    whether it is the self-signed one the node made (no tls_certificate configured)."""
    ctx.principal.require_platform()
    _enabled(ctx)
    return certificate_doc(ctx.app.settings, time.time())


@method("tls.reload", Params, errors=("forbidden", "tls_invalid", "unavailable"), perm=Perm.PLATFORM)
def reload(ctx, p: Params):
    """Load the certificate files again without a restart (after a renewal): checked first, then Kamailio's tls.reload,
    then the API's (api_tls). A missing, unreadable, mismatched or expired pair: tls_invalid, nothing changes.
    Returns tls.status."""
    ctx.principal.require_platform()
    _enabled(ctx)
    settings, now = ctx.app.settings, time.time()
    doc = certificate_doc(settings, now)
    if doc["certificate"]["expires_in_days"] <= 0:
        raise TlsInvalid(
            f"certificate {doc['certificate_file']} expired on {doc['certificate']['not_after']}; not loaded",
            file=doc["certificate_file"],
        )
    try:
        render.prepare_tls(settings, now)  # tls.cfg as the settings say (a self-signed pair renewed if it ends soon)
    except tls.TlsProblem as exc:
        raise TlsInvalid(str(exc)) from None
    if settings.sip_tls_port:  # Kamailio first: the one that can be away (unavailable: the API keeps its pair too)
        try:
            ctx.app.kamailio.call("tls.reload")
        except KamailioRpcError as exc:
            raise component_down("kamailio", exc) from None
    api_server = getattr(ctx.app, "api_server", None)
    if settings.api_tls and api_server is not None:
        try:
            api_server.reload_certificate(*settings.tls_files)  # the API's next connections (this one keeps its own)
        except (OSError, ssl.SSLError) as exc:  # checked above; changed on disk since: said, the old pair stays
            raise TlsInvalid(f"the API could not load {settings.tls_files[0]}: {exc}") from None
    return certificate_doc(settings, time.time())
