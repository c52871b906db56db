"""Apply policy outcomes to KSR: replies, challenges, lookups, headers, relays and new branches.

With `ksr_read` (what comes in), `ksr_dialog` (transactions, dialogs, media) and the hunt groups' `ksr_groups`, the
only modules that call Kamailio: the route functions read facts, call the policy, and apply its outcome here.
"""

from __future__ import annotations

import KSR

from kemi.contract import (
    ERRORS,
    PROFILE_CALLS,
    AVP_CALL,
    AVP_TRUNK_PASSWORD,
    AVP_TRUNK_REALM,
    AVP_TRUNK_USER,
    DLG_CALL,
    logged_out_key,
    user_key,
    ACD,
    LIVE_VERSION,
    NODE,
    STATUS,
)
from kemi.policy.announce import WARNING_HEADER as ANNOUNCE_WARNING
from kemi.policy.callstate import CallState
from kemi.policy.voicemail import CALLER_HEADER as VOICEMAIL_CALLER
from kemi.policy.cluster import ANSWER, REPLICATE, RESYNC_KEY, RESYNC_REQUESTS, dmq_listener, own_path_uri
from kemi.policy.decision import Reject, RouteToTrunk
from kemi.policy.features import FeatureCode
from kemi.policy.location import with_location
from kemi.policy.sip_text import plain, quoted

from . import ksr_read as read
from .barrier import settled


def reply(code: int, reason: str, warning: str = "", headers: tuple[str, ...] = ()) -> None:
    for header in headers:
        KSR.hdr.append_to_reply(header + "\r\n")
    if warning:
        KSR.hdr.append_to_reply(f"Warning: 399 callmanager {quoted(warning)}\r\n")
    settled()
    KSR.sl.send_reply(code, reason)


def reply_in_transaction(code: int, reason: str, warning: str = "") -> None:
    """The node's own final answer to a relayed transaction (from its failure route): tm sends it."""
    if warning:
        KSR.hdr.append_to_reply(f"Warning: 399 callmanager {quoted(warning)}\r\n")
    settled()
    KSR.tm.t_reply(code, reason)


def announcement(uri: str, warning: str) -> None:
    """The request goes to the media server's announcement (kemi.policy.announce), with the refusal's explanation for
    the media server to send on (its Warning)."""
    set_ruri(uri)
    KSR.hdr.remove(ANNOUNCE_WARNING)  # only the node says what the media server sends on
    if warning:
        KSR.hdr.append(f"{ANNOUNCE_WARNING}: {quoted(warning)}\r\n")


def to_mailbox(uri: str, caller: str) -> None:
    """The request goes to a mailbox on the media server (kemi.policy.voicemail), with who is calling as the node
    identified them (a header of that name from the caller is removed first: only the node says who called)."""
    set_ruri(uri)
    KSR.hdr.remove(VOICEMAIL_CALLER)
    KSR.hdr.append(f"{VOICEMAIL_CALLER}: {quoted(caller, 64)}\r\n")


def send_request(method: str, uri: str, headers: str, body: str) -> None:
    """A request of the node's own (tm as a UAC): `headers` with From and To, CRLF-ended; a failure is logged."""
    if KSR.tm.t_uac_send(method, uri, "", "", headers, body) < 0:
        KSR.warn(f"callmanager: {method} to {uri} could not be sent\n")


def reject(r: Reject) -> None:
    reply(r.code, r.reason, r.warning, r.headers)


def challenge(realm: str) -> None:
    # auth_challenge answers 401 to REGISTER and 407 to everything else; flag 1 = qop=auth.
    settled()
    KSR.auth.auth_challenge(realm, 1)


def drop() -> None:
    """No answer, on purpose (a banned source, a flood, a request on the wrong listener, a malformed one sanity
    answered)."""
    settled()
    KSR.set_drop()


def lookup_aors(aors: tuple[str, ...]) -> bool:
    """Point the request at every registered contact of the AORs; False when none is registered."""
    found = False
    for aor in aors:
        if not found:
            found = KSR.registrar.lookup_uri("location", aor) > 0
        else:
            KSR.registrar.lookup_to_dset("location", aor)
    return found


def set_avp(name: str, value: str) -> None:
    KSR.pv.sets(f"$avp({name})", value)


def unset_avp(name: str) -> None:
    KSR.pv.unset(f"$avp({name})")


def set_dlg_var(name: str, value: str) -> None:
    KSR.pv.sets(f"$dlg_var({name})", value)


def set_ruri(uri: str) -> None:
    KSR.pv.sets("$ru", uri)


# ---------------------------------------------------------------- relaying

FAILURE_ROUTE, BRANCH_REPLY_ROUTE = "ksr_failure_route", "ksr_branch_reply"
MEDIA_BRANCH_ROUTE = "ksr_media_branch"  # each branch of a call not plain RTP gets its own offer (kamailio_app.py)


def own_path(add: bool) -> None:
    """A REGISTER about to be saved in a cluster: any Path the phone sent removed, this node's own added when `add`
    (kemi.policy.cluster.path_needed: this node's address and where the phone really is), and the message rewritten so
    that the registrar stores it. (The path module's add_path_received cannot be used here: its address is filled in
    when a message is sent, and this one is not — msg_apply_changes has no socket to fill it from.)"""
    changed = False
    if KSR.hdr.is_present("Path") > 0:
        KSR.hdr.remove("Path")
        changed = True
    if add:
        KSR.hdr.append(f"Path: <{own_path_uri(*read.several('$Ri', '$Rp', '$si', '$sp', '$pr'))}>\r\n")
        changed = True
    if changed:
        KSR.textopsx.msg_apply_changes()


def relay() -> None:
    """Relay the request statefully (an error reply if tm cannot)."""
    settled()
    if KSR.tm.t_relay() < 0:
        KSR.sl.sl_reply_error()


def keep(state: CallState) -> None:
    """The call's state goes with the transaction and the dialog; its replies and failure come back to the shell."""
    blob = state.to_json()
    KSR.pv.sets(f"$avp({AVP_CALL})", blob)
    KSR.pv.sets(f"$dlg_var({DLG_CALL})", blob)
    KSR.tm.t_on_failure(FAILURE_ROUTE)
    KSR.tm.t_on_reply(BRANCH_REPLY_ROUTE)


def relay_branch(state: CallState, timers_ms: tuple[int, int] | None = None) -> bool:
    """New branches of a call (a request route's first relay, or a failure / queue route's next try): its state kept,
    its routes armed, the ringing timers set (`timers_ms`: final response, invite), relayed. False: tm refused."""
    if timers_ms is not None:
        KSR.tm.t_set_fr(*timers_ms)
    keep(state)
    if state.media_plan:  # a call not plain RTP: each new branch gets its own offer (ksr_dialog.media_branch)
        KSR.tm.t_on_branch(MEDIA_BRANCH_ROUTE)
    settled()
    return KSR.tm.t_relay() > 0


def answer_trunk_challenge(user: str, password: str, realm: str) -> bool:
    """Credentials for the carrier's challenge, for uac_auth only (never kept in the call's state). False: uac could
    not."""
    set_avp(AVP_TRUNK_USER, user)
    set_avp(AVP_TRUNK_PASSWORD, password)
    if realm:
        set_avp(AVP_TRUNK_REALM, realm)
    return KSR.uac.uac_auth() >= 0


def presence(publish: bool) -> None:
    """A PUBLISH (from the node's control plane) or SUBSCRIBE (a phone's, allowed by kemi.policy.mwi) handed to the
    presence module, which answers it — in a transaction, so a retransmission is absorbed."""
    settled()
    if KSR.tm.t_newtran() < 0:
        KSR.sl.sl_reply_error()
        return
    if publish:
        KSR.presence.handle_publish()
    else:
        KSR.presence.handle_subscribe()
    KSR.tm.t_release()


def consume_credentials() -> None:
    KSR.auth.consume_credentials()


def feature_code_live(fc: FeatureCode) -> None:
    """The part of a feature code that is live at once (DND, group log-in/out), in shared memory."""
    if fc.kind == "dnd_on":
        KSR.htable.sht_sets(STATUS.name, user_key(fc.user_id), "dnd")
    elif fc.kind == "dnd_off":
        KSR.htable.sht_rm(STATUS.name, user_key(fc.user_id))
    elif fc.kind == "group_logout":
        KSR.htable.sht_seti(ACD.name, logged_out_key(fc.value, fc.user_id), 1)
    elif fc.kind == "group_login":
        KSR.htable.sht_rm(ACD.name, logged_out_key(fc.value, fc.user_id))
    else:
        return
    KSR.htable.sht_inc(ACD.name, LIVE_VERSION)  # the workers read statuses and log-ins again on their next group call


# Identity headers a phone may send; towards a carrier only what the policy decided is sent.
LOCATION_HEADER = "X-Callmanager-Location"  # the caller's address on emergency calls (docs/routing.md)
_IDENTITY_HEADERS = ("P-Asserted-Identity", "P-Preferred-Identity", "Privacy", LOCATION_HEADER)


def caller_identity(action: RouteToTrunk) -> None:
    """P-Asserted-Identity with the presented number, Privacy: id for CLIR, the location for emergency calls."""
    for name in _IDENTITY_HEADERS:
        KSR.hdr.remove(name)
    if action.caller_number:
        KSR.hdr.append(f"P-Asserted-Identity: <sip:{action.caller_number}@{action.caller_domain};user=phone>\r\n")
    if action.privacy:
        KSR.hdr.append("Privacy: id\r\n")
    if action.emergency and action.location:
        KSR.hdr.append(f"{LOCATION_HEADER}: {plain(action.location)}\r\n")


def location_by_value(content_id: str, pidf: str, headers: tuple[str, ...], trace: list[str]) -> None:
    """RFC 6442: the caller's location as a PIDF-LO part of the INVITE's body, named by Geolocation headers. Written
    after RTPengine's offer (its changes applied first, so the SDP part is the one that leaves). Never at the cost of
    the call: whatever fails here, the emergency call goes out with the location header only."""
    try:
        KSR.textopsx.msg_apply_changes()
        body, content_type = with_location(read.one("$rb"), read.one("$cT"), content_id, pidf)
        if KSR.textops.set_body(body, content_type) < 0:
            raise RuntimeError("set_body refused the multipart body")
        for name in ("Geolocation", "Geolocation-Routing"):
            KSR.hdr.remove(name)
        for h in headers:
            KSR.hdr.append(plain(h, 500) + "\r\n")
        trace.append("location sent by value (PIDF-LO, RFC 6442)")
    except Exception as exc:  # noqa: BLE001 — an emergency call is never lost to its location body
        KSR.err(f"callmanager: emergency call without PIDF-LO body (location header only): {exc!r}\n")
        trace.append(f"location sent in a header only: the PIDF-LO body could not be added ({type(exc).__name__})")


def present_as(display: str, uri: str) -> None:
    """Hunt-group presentation: the members see this caller (From, restored in-dialog by uac), no asserted identity."""
    KSR.hdr.remove("P-Asserted-Identity")
    KSR.hdr.remove("Remote-Party-ID")
    KSR.uac.uac_replace_from(quoted(display) if display else "", uri)


def track_call(user_id: int) -> None:
    """Count the current dialog as a call of this user (dialog profile `calls`, value u<id>)."""
    KSR.dialog.set_dlg_profile(PROFILE_CALLS, user_key(user_id))


def warn(line: str) -> None:
    KSR.warn(line + "\n")


def notice(line: str) -> None:
    KSR.notice(line + "\n")


def count_hop() -> bool:
    """Max-Forwards decremented (added when absent); False: it reached zero (483)."""
    return KSR.maxfwd.process_maxfwd(10) >= 0


def replies_to_shell() -> None:
    """The replies to this request (a re-INVITE) come to the branch reply route (media, NAT)."""
    KSR.tm.t_on_reply(BRANCH_REPLY_ROUTE)


def save_registration() -> bool:
    """The binding saved; save() answers the REGISTER itself (an error reply when it cannot). False: not saved."""
    settled()
    if KSR.registrar.save("location", 0) < 0:
        KSR.sl.sl_reply_error()
        return False
    return True


def cluster_message(method: str, from_peer: bool) -> None:
    """A message on the cluster's DMQ listener (kemi.policy.cluster.dmq_listener): replication from another SIP node of
    the cluster (registrations, replicated htables) handed to DMQ; a peer's probe (OPTIONS) answered; anything else —
    another method, a source that is not one of the node's `dmq_peers` — dropped without a word."""
    settled()
    what = dmq_listener(method, from_peer)
    if what == REPLICATE:
        KSR.dmq.handle_message()
    elif what == ANSWER:
        KSR.sl.sl_send_reply(200, "OK")
    else:
        KSR.set_drop()


def cluster_resync() -> bool:
    """When the control plane saw a DMQ peer come back (htable NODE, RESYNC_KEY): ask every peer for all its
    registrations and replicated items (kemi.policy.cluster.RESYNC_REQUESTS). True when it asked."""
    if not KSR.htable.sht_get(NODE.name, RESYNC_KEY):
        return False
    KSR.htable.sht_rm(NODE.name, RESYNC_KEY)
    for peer, body in RESYNC_REQUESTS:
        KSR.dmq.bcast_message(peer, body, "application/json")
    KSR.info("callmanager: a cluster peer came back: asked the peers for their registrations and replicated items\n")
    return True


def websocket_handshake() -> None:
    """A browser's upgrade to SIP over WebSocket: Kamailio's websocket module answers it (101, or its own refusal)."""
    if KSR.websocket.handle_handshake() < 0:
        notice("callmanager: a WebSocket handshake was refused by the websocket module")


def http_reply(code: int, reason: str, body: str) -> None:
    KSR.xhttp.xhttp_reply(code, reason, "text/plain", body)


def rpc_dispatch() -> None:
    KSR.jsonrpcs.dispatch()


def count_error(kind: str) -> None:
    """One more in the routing errors the NOC sees (callmanager_routing_errors_total{route=kind})."""
    KSR.htable.sht_inc(ERRORS.name, kind)
