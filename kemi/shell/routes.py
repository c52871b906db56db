"""The KEMI route functions, one small function per stage of a request.

The request route reads the message once (`ksr_read.message`) and hands it to the stage that
owns it: CANCEL, in-dialog, new request (REGISTER or a call). Decisions come from
`kemi.policy`; this module only moves facts in and applies outcomes, with as few crossings
into Kamailio as the work needs (each costs about a microsecond per request).
"""

from __future__ import annotations

import hmac

from kemi.contract import DLG_EMERGENCY
from kemi.policy import drain, mwi, numbering
from kemi.policy.decision import Challenge, Reject, Subscribe
from kemi.policy.cluster import relayed_for_peer
from kemi.policy.facts import AuthResult
from kemi.policy.routing import (
    ROUTABLE_INITIAL,
    STREAM_TRANSPORTS,
    decide_register,
    malformed,
    session_lifetime,
    unsupported_method,
)
from kemi.policy.snapshot import Snapshot
from kemi.policy.webrtc import http_upgrade

from . import barrier, calls
from . import ordinary
from .credentials import authenticated_facts
from . import ksr_apply as apply
from . import ksr_dialog as dialog
from . import ksr_fraud as fraud_gate
from . import ksr_read as read
from .runtime import EDGE, SETTINGS, SNAPSHOTS

SERVED = ROUTABLE_INITIAL | {"REGISTER"}  # new requests with any other method: 405 (the policy says why)
RPC_KEY_HEADER = "X-Callmanager-Rpc-Key"  # controlplane/adapters/kamailio_rpc.py sends the node's secret in it
END_CHECK_TICKS = 25  # the ACD timer (20 ms) looks at the calls the control plane asks to end every 0.5 s
_TICKS = [0]


# Parsed once in Kamailio's main process (this module is imported at mod_init, before the fork):
# every worker starts with it, instead of each of a dozen processes parsing it at child_init.
# The numbering data of the countries in use is compiled here too, not on a worker's first call.
_first = SNAPSHOTS.get()
for _region in {u.plan.region for u in _first.users.values()} | {t.region for t in _first.trunks} | {"DE"}:
    try:
        numbering.country(_region)
    except KeyError:
        pass


def child_init(rank: int) -> int:
    return 0


# ---------------------------------------------------------------- request route


def request_route() -> int:
    try:
        return _request_route()
    finally:
        read.forget()


def _request_route() -> int:
    calls.new_request()
    barrier.begin()
    if SETTINGS.dmq_port and read.local_port() == SETTINGS.dmq_port:  # before the read: peers are not counted
        source, method = read.several("$si", "$rm")
        apply.cluster_message(method, source in SETTINGS.dmq_sources)
        return 1
    counter = EDGE.request_counter()
    values = read.fields(counter)  # one read (the source's request counted in it); every later stage gets it
    if SETTINGS.fault_header and read.one(f"$hdr({SETTINGS.fault_header})"):
        raise RuntimeError(f"fault injected by the test header {SETTINGS.fault_header}")
    clustered = bool(SETTINGS.dmq_port)
    if (
        clustered
        and values is not None
        and relayed_for_peer(values[read.F_SRC_IP], SETTINGS.dmq_sources, values[read.F_TO_TAG])
        and dialog.relay_for_peer()
    ):  # a call a peer sends on the Path of a phone registered here: relayed on over its binding or connection
        apply.relay()
        return 1
    if values is not None:  # an ordinary REGISTER, first INVITE (challenged or authenticated), ACK or BYE: straight
        snap = SNAPSHOTS.get()
        port = SETTINGS.rpc_port
        if (
            ordinary.register(values, snap, EDGE, port, clustered)
            or ordinary.challenge(values, snap, EDGE, port)
            or ordinary.call(values, snap, EDGE, port)
        ):
            return 1
        done = ordinary.in_dialog(values, snap, EDGE, port, SETTINGS.fraud_checks, clustered)
        if done == ordinary.NO_DIALOG:
            no_dialog(read.message(counter, values), snap)
        if done != ordinary.NOT_MINE:
            return 1
    msg = read.message(counter, values)
    if msg.local_port == SETTINGS.rpc_port:  # SIP is not served on the RPC listener
        apply.drop()
        return 1
    if msg.method == "PUBLISH" and not msg.to_tag and from_control_plane(mwi.KEY_HEADER):
        apply.presence(publish=True)  # a mailbox's message waiting, for the phones subscribed to it
        return 1
    snap = SNAPSHOTS.get()
    if not ordinary.admitted(EDGE, snap, msg.src_ip, msg.banned, msg.user_agent, msg.requests):
        return 1  # banned, a scanner, or a flood: not a word back
    refused = malformed(
        msg.scheme + ":" if msg.scheme and msg.scheme != "urn" else read.request_uri(),
        bool(msg.scheme),
        msg.proto,
        read.one("$cl") if msg.proto in STREAM_TRANSPORTS else "",
    )  # Content-Length: read for TCP/TLS/WS only
    if refused is not None:
        if msg.method != "ACK" and EDGE.unauthenticated(msg.src_ip, snap, f"malformed request: {refused.reason}"):
            apply.reject(refused)
        else:
            apply.drop()
        return 1
    if not ordinary.checked(EDGE, snap, msg.src_ip, msg.src_port, msg.method, msg.call_id):
        return 1  # sanity answered (400, 420, 505), or 483
    if msg.scheme == "urn":  # urn:service:sos (malformed() let no other URN through): the policy reads the whole URN
        msg = msg._replace(ruri_user=read.request_uri()[:100])
    method = msg.method
    if method == "OPTIONS" and not msg.ruri_user and read.is_myself_ruri():
        busy = drain.ping_answer(msg.draining, SETTINGS.drain_retry_after_s)
        if busy is not None:
            apply.reject(busy)
        else:
            apply.reply(200, "OK")  # keep-alive / monitoring ping to the server itself
        return 1
    if method == "CANCEL":
        cancel()
    elif msg.to_tag:
        in_dialog(msg, snap)
    elif method != "ACK" and not is_retransmission():  # an ACK matching no dialog is absorbed
        new_request(msg, snap)
    return 1


def new_request(msg: read.Message, snap: Snapshot) -> None:
    if msg.draining:
        refused = drain.refuse_new(
            msg.method,
            read.request_uri(),
            msg.ruri_user,
            {s.region for s in snap.sites.values()},
            SETTINGS.drain_retry_after_s,
        )
        if refused is not None:
            apply.reject(refused)
            return
    if msg.method == "SUBSCRIBE":
        subscribe(msg, snap)
        return
    if msg.method not in SERVED:
        refused = unsupported_method(msg.method)
        if EDGE.unauthenticated(msg.src_ip, snap, f"{msg.method} not served") and refused is not None:
            apply.reject(refused)
        return
    nated = dialog.detect_nat(msg.method)
    facts = authenticated_facts(msg, snap)
    if facts.auth is AuthResult.OK:
        EDGE.authenticated(msg.src_ip, snap)
    elif not EDGE.unauthenticated(msg.src_ip, snap, f"{msg.method} {facts.auth.value}") or EDGE.banned_now:
        apply.drop()  # banned just now (a flood, or one failed authentication too many): no answer to this one either
        return
    if msg.method == "REGISTER":
        ordinary.registrar(
            decide_register(facts, snap).action, snap, nated, msg.require, msg.proto, bool(SETTINGS.dmq_port)
        )
    else:
        calls.initial_request(facts, snap, nated)


def subscribe(msg: read.Message, snap: Snapshot) -> None:
    """A phone subscribing to its message waiting (kemi.policy.mwi)."""
    facts = authenticated_facts(msg, snap)
    if facts.auth is AuthResult.OK:
        EDGE.authenticated(msg.src_ip, snap)
    elif not EDGE.unauthenticated(msg.src_ip, snap, f"SUBSCRIBE {facts.auth.value}") or EDGE.banned_now:
        apply.drop()
        return
    action = mwi.decide_subscribe(facts, snap, read.one("$hdr(Event)")).action
    if isinstance(action, Subscribe):
        apply.consume_credentials()
        apply.presence(publish=False)
    elif isinstance(action, Challenge):
        apply.challenge(action.realm)
    elif isinstance(action, Reject):
        apply.reject(action)


def from_control_plane(header: str) -> bool:
    """Does the request carry the node's RPC secret (sent only by its own control plane)?"""
    return bool(SETTINGS.rpc_secret) and hmac.compare_digest(
        read.one(f"$hdr({header})").encode(), SETTINGS.rpc_secret.encode()
    )


def cancel() -> None:
    if dialog.has_transaction():
        dialog.cancel_media()
        apply.relay()
    else:  # RFC 3261 9.2: a CANCEL matching no transaction
        apply.reply(481, "Call/Transaction Does Not Exist")


def in_dialog(msg: read.Message, snap: Snapshot) -> None:
    if msg.method in ("INVITE", "UPDATE"):  # a session refresh: the dialog lives on from now (loose_route applies it)
        session_refresh()
    if dialog.loose_route():
        if SETTINGS.dmq_port and dialog.relayed_for_peer():  # a leg relayed for a peer: no media, no accounting here
            dialog.follow_alias()
            apply.relay()
            return
        nated = dialog.nated_in_dialog(msg.method, bool(SETTINGS.dmq_port))
        dialog.media_in_dialog(msg.method, nated)
        if msg.method == "INVITE":
            if SETTINGS.music_file and read.has_sdp():
                dialog.music_on_hold(SETTINGS.music_file)
            apply.replies_to_shell()
        elif msg.method == "ACK" and SETTINGS.fraud_checks:
            fraud_gate.acked()  # from now on the spend monitor sees the call (and may end it)
        apply.relay()
        return
    no_dialog(msg, snap)


def no_dialog(msg: read.Message, snap: Snapshot) -> None:
    """A request with a To tag that loose_route matched to no dialog."""
    if msg.method == "SUBSCRIBE":  # a refresh (or the end) of a subscription: the presence module knows it or says 481
        apply.presence(publish=False)
        return
    if msg.method == "ACK":
        if dialog.has_transaction():
            apply.relay()  # ACK for a negative reply to a stateful forward
        return
    if EDGE.unauthenticated(msg.src_ip, snap, f"{msg.method} matching no dialog"):
        apply.reply(404, "Not here", "no dialog matches this request")


def is_retransmission() -> bool:
    """A retransmission of a request whose transaction exists: tm answers it (its last reply again) or absorbs it."""
    if dialog.is_retransmission():
        barrier.settled()
        return True
    return False


def session_refresh() -> None:
    """RFC 4028: a call whose phones refresh the session lives as long as its Session-Expires says (then call_ended);
    an emergency call as long as its parties want."""
    expires = read.session_expires()
    if expires:
        dialog.dialog_lifetime(session_lifetime(expires, SETTINGS.call_max_s, read.dlg_var(DLG_EMERGENCY) == "1"))


# ---------------------------------------------------------------- REGISTER


# ---------------------------------------------------------------- the other routes Kamailio calls


def branch_reply_route() -> int:
    return calls.branch_reply_route()


def media_branch_route() -> int:
    return calls.media_branch_route()


def peer_reply_route() -> int:
    """A reply on a call leg relayed for a cluster peer (dialog.relay_for_peer)."""
    dialog.alias_reply()
    return 1


def failure_route() -> int:
    return calls.failure_route()


def acd_timer() -> int:
    calls.acd_timer()
    _TICKS[0] += 1
    if _TICKS[0] % END_CHECK_TICKS == 0:
        calls.end_requested_calls()
        if SETTINGS.dmq_port:
            apply.cluster_resync()
    return 1


def shared_timer() -> int:
    """A cluster node with the data center's Redis: its calls out in progress count on there (kamailio.cfg)."""
    fraud_gate.renew_shared()
    return 1


def acd_resume() -> int:
    return calls.acd_resume()


def dialog_event(evname: str) -> int:
    if evname == "dialog:start":
        calls.dialog_started()
    elif evname == "dialog:end":
        calls.call_ended("answered; dialog ended")
    elif evname == "dialog:timeout":  # runs before the dialog module sends its BYEs (kamailio.cfg: send_bye)
        calls.call_ended(
            "answered; dialog ended by the node: no BYE within the call limit or the keep-alives went unanswered",
            timed_out=True,
        )
    return 1


def xhttp_event() -> int:
    """HTTP to Kamailio: on the WS/WSS listeners a browser's upgrade to SIP over WebSocket (kemi.policy.webrtc); on
    its own listener Kamailio's JSON-RPC, for the node's control plane only; anything else refused."""
    port = read.local_port()
    if port in SETTINGS.ws_ports:
        answer = http_upgrade(*read.several("$rm", "$hdr(Upgrade)", "$hdr(Sec-WebSocket-Protocol)"))
        if answer is None:
            apply.websocket_handshake()
        else:
            apply.http_reply(*answer)
    elif port != SETTINGS.rpc_port:
        apply.http_reply(403, "Forbidden", "RPC is served on its own listener only\n")
    elif not (
        SETTINGS.rpc_secret
        and hmac.compare_digest(read.one(f"$hdr({RPC_KEY_HEADER})").encode(), SETTINGS.rpc_secret.encode())
    ):
        apply.http_reply(401, "Unauthorized", "this listener answers the node's control plane only\n")
    elif read.one("$hu").startswith("/RPC"):
        apply.rpc_dispatch()
    else:
        apply.http_reply(404, "Not Found", "try /RPC\n")
    return 1
