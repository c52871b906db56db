"""The KEMI route functions, one small function per stage of a request.

The request route reads the message once (`ksr_read.message`) and hands it to the stage that
owns it: CANCEL, in-dialog, new request (REGISTER or a call). Decisions come from
`kemi.policy`; this module only moves facts in and applies outcomes, with as few crossings
into Kamailio as the work needs (each costs about a microsecond per request).
"""
from __future__ import annotations

import json
import secrets
import hmac
import time
import uuid

import KSR

from kemi.policy import cdr, drain, numbering
from kemi.policy.auth import auth_result, find_account, identity_must_match, realm_for
from kemi.policy.edge import KEY_MAX, bounded_key, judge_auth
from kemi.policy.decision import CallParty, Challenge, Decision, Register, Reject, RouteToGroup, RouteToTrunk, RouteToUser, action_from_doc, action_to_doc
from kemi.policy.features import FeatureCode
from kemi.policy.forwarding import fallback_case
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.media import rtpengine_flags
from kemi.policy.sip_text import is_word
from kemi.policy.snapshot import Snapshot
from kemi.policy.routing import (ROUTABLE_INITIAL, decide_initial, decide_register, group_overflow, is_emergency_call, should_fail_over,
                                 STREAM_TRANSPORTS, malformed, session_lifetime, trunk_credentials, unsupported_method,
                                 unsupported_require)

from . import acd
from . import barrier
from . import fraud as fraud_gate
from . import ksr_apply as apply
from . import ksr_read as read
from .context import CTX, load_context, store_context
from .edge import Edge
from .cdr_spool import CdrSpool
from .flags import FLB_NATB, FLB_NATSIPPING, FLT_NATS, NAT_TEST
from .settings import ShellSettings
from .snapshot_holder import SnapshotHolder

SETTINGS = ShellSettings.from_env()
SNAPSHOTS = SnapshotHolder(SETTINGS.snapshot_path, SETTINGS.snapshot_check_interval, log=lambda m: KSR.info(m + "\n"))
SPOOL = CdrSpool(SETTINGS.spool_dir)
LIVE = read.KsrLiveView()
EDGE = Edge(SETTINGS.edge, SPOOL)
# Unknown accounts are checked against this: same work and same answer as a wrong password.
DECOY_HA1 = secrets.token_hex(16)
SERVED = ROUTABLE_INITIAL | {"REGISTER"}  # new requests with any other method: 405 (the policy says why)
RANG = "cm_rang"  # AVP: when a device of the current call first rang (180/183); also its post-dial delay
MEDIA_DONE = 8  # message flag: the dialog's end deleted the media session already (its MOS is on the CDR)
_PREPARED = [False]  # this worker's current request was prepared as a call (prepare_call), reset by request_route
DIALOG_TIMEOUT = "cm_dlgto"  # AVP: the dialog module's timeout_avp (kamailio.cfg)
RPC_KEY_HEADER = "X-Callmanager-Rpc-Key"  # controlplane/adapters/kamailio_rpc.py sends the node's secret in it
EMERGENCY = "cm_em"  # dialog variable: "1" on an emergency call, which no timer of the node ends
TRACKED = "cm_busy"  # dialog variable: users on this call, counted busy from the answer to the end
END_REQUESTS = "cmend"  # htable: calls the control plane asks to end (end_requested_calls)
END_CHECK_TICKS = 25  # the ACD timer (20 ms) looks at END_REQUESTS every 0.5 s
TIMEOUT_EVENT = "cm_timeout"  # any name: with it, the dialog module calls ksr_dialog_event("dialog:timeout")
_TICKS = [0]
# sanity checks (module docs): R-URI SIP version (505) and scheme (416), mandatory headers, CSeq method and number,
# Content-Length against the body, Expires, Proxy-Require (420: none supported), URIs parse (400), first Via;
# R-URI, From and To URIs parsed (docs/security.md, "Malformed input").
SANITY_CHECKS = 1 | 2 | 4 | 32 | 64 | 128 | 256 | 512 | 1024 | 16384
SANITY_URI_CHECKS = 1 | 2 | 4


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
    _PREPARED[0] = False
    barrier.begin()
    msg = read.message(EDGE.request_counter())  # one read (the source's request counted in it); every later stage gets it
    if SETTINGS.fault_header and read.one(f"$hdr({SETTINGS.fault_header})"):
        raise RuntimeError(f"fault injected by the test header {SETTINGS.fault_header}")
    if msg.local_port == SETTINGS.rpc_port:  # SIP is not served on the RPC listener
        apply.drop()
        return 1
    snap = SNAPSHOTS.get()
    if not EDGE.admit(msg.src_ip, msg.banned, msg.user_agent, snap, msg.requests):  # banned, a scanner, or a flood: not a word back
        apply.drop()
        return 1
    refused = malformed(msg.scheme + ":" if msg.scheme and msg.scheme != "urn" else read.request_uri(), bool(msg.scheme), msg.proto,
                        read.one("$cl") if msg.proto in STREAM_TRANSPORTS else "")  # Content-Length: read for TCP/TLS/WS only
    if refused is not None:
        if msg.method != "ACK" and EDGE.unauthenticated(msg.src_ip, snap, f"malformed request: {refused.reason}"):
            apply.reject(refused)
        else:
            apply.drop()
        return 1
    if KSR.sanity.sanity_check(SANITY_CHECKS, SANITY_URI_CHECKS) < 0:  # malformed: answered (400, 420, 505) by sanity
        KSR.notice(f"callmanager: refused a malformed request from {msg.src_ip}:{msg.src_port} ({msg.method[:20]!a}, Call-ID "
                   f"{msg.call_id[:80]!a}): sanity checks; answered when it has a Via to answer to\n")
        EDGE.unauthenticated(msg.src_ip, snap, "malformed request")
        apply.drop()
        return 1
    if KSR.maxfwd.process_maxfwd(10) < 0:
        apply.reply(483, "Too Many Hops")
        return 1
    if msg.scheme == "urn":  # urn:service:sos (malformed() let no other URN through): the policy reads the whole URN
        msg = msg._replace(ruri_user=read.request_uri()[:100])
    method = msg.method
    if method == "OPTIONS" and not msg.ruri_user and read.is_myself_ruri():
        refused = drain.ping_answer(draining(), SETTINGS.drain_retry_after_s)
        if refused is not None:
            apply.reject(refused)
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


def draining() -> bool:
    """Is this node being drained (node.drain over the control plane's API sets the htable item)?"""
    return read.one("$sht(node=>drain)") == "1"


def new_request(msg: read.Message, snap: Snapshot) -> None:
    if draining():
        refused = drain.refuse_new(msg.method, read.request_uri(), msg.ruri_user, {s.region for s in snap.sites.values()},
                                   SETTINGS.drain_retry_after_s)
        if refused is not None:
            apply.reject(refused)
            return
    if msg.method not in SERVED:
        if EDGE.unauthenticated(msg.src_ip, snap, f"{msg.method} not served"):
            apply.reject(unsupported_method(msg.method))
        return
    nated = detect_nat(msg.method)
    facts = authenticated_facts(msg, snap)
    if facts.auth is AuthResult.OK:
        EDGE.authenticated(msg.src_ip, snap)
    elif not EDGE.unauthenticated(msg.src_ip, snap, f"{msg.method} {facts.auth.value}") or EDGE.banned_now:
        apply.drop()  # banned just now (a flood, or one failed authentication too many): no answer to this one either
        return
    if msg.method == "REGISTER":
        registrar(facts, snap, nated)
    else:
        initial_request(facts, snap, nated)


def cancel() -> None:
    if KSR.tm.t_check_trans() > 0:
        KSR.rtpengine.rtpengine_manage("")
        relay()
    else:  # RFC 3261 9.2: a CANCEL matching no transaction
        apply.reply(481, "Call/Transaction Does Not Exist")


def in_dialog(msg: read.Message, snap: Snapshot) -> None:
    if msg.method in ("INVITE", "UPDATE"):  # a session refresh: the dialog lives on from now (loose_route applies it)
        session_timer()
    if KSR.rr.loose_route() > 0:
        nated = KSR.nathelper.nat_uac_test(NAT_TEST) > 0
        if nated:
            KSR.setflag(FLT_NATS)
            if msg.method in ("INVITE", "UPDATE"):  # a re-INVITE / UPDATE from a NATed party: fix its Contact
                KSR.nathelper.set_contact_alias()
        KSR.nathelper.handle_ruri_alias()
        if (msg.method == "BYE" and not KSR.isflagset(MEDIA_DONE)) or read.has_sdp():
            KSR.rtpengine.rtpengine_manage(rtpengine_flags(nated))
        if msg.method == "INVITE":
            KSR.tm.t_on_reply("ksr_branch_reply")
        elif msg.method == "ACK" and SETTINGS.fraud_checks:
            fraud_gate.acked()  # from now on the spend monitor sees the call (and may end it)
        relay()
        return
    if msg.method == "ACK":
        if KSR.tm.t_check_trans() > 0:
            relay()  # ACK for a negative reply to a stateful forward
        return
    if EDGE.unauthenticated(msg.src_ip, snap, f"{msg.method} matching no dialog"):
        apply.reply(404, "Not here", "no dialog matches this request")


def is_retransmission() -> bool:
    """A retransmission of a request whose transaction exists: tm answers it (its last reply again) or absorbs it."""
    if KSR.tmx.t_precheck_trans() > 0:
        KSR.tm.t_check_trans()
        barrier.settled()
        return True
    if KSR.tm.t_check_trans() == 0:
        barrier.settled()
        return True
    return False


def detect_nat(method: str) -> bool:
    KSR.force_rport()
    if KSR.nathelper.nat_uac_test(NAT_TEST) <= 0:
        return False
    KSR.setflag(FLT_NATS)
    if method == "REGISTER":
        KSR.nathelper.fix_nated_register()
    elif method in ("INVITE", "SUBSCRIBE"):
        KSR.nathelper.set_contact_alias()
    return True


def session_timer(emergency: bool | None = None) -> None:
    """RFC 4028: a call whose phones refresh the session lives as long as its Session-Expires says (then call_ended);
    an emergency call as long as its parties want. `emergency` None: a refresh in a dialog (its mark is read)."""
    expires = read.one("$hdr(Session-Expires)")
    if emergency is None:
        if not expires:
            return
        emergency = read.one(f"$dlg_var({EMERGENCY})") == "1"
    lifetime = session_lifetime(expires, SETTINGS.call_max_s, emergency)
    if lifetime:
        KSR.pv.seti(f"$avp({DIALOG_TIMEOUT})", lifetime)


def relay() -> None:
    barrier.settled()
    if KSR.tm.t_relay() < 0:
        KSR.sl.sl_reply_error()


# ---------------------------------------------------------------- authentication


def authenticated_facts(msg: read.Message, snap: Snapshot) -> RequestFacts:
    """The request's facts with the result of checking its digest credentials; failures counted."""
    result, user, realm = AuthResult.NONE, msg.auth_user, msg.auth_realm
    if user:
        method_realm = realm_for(msg.method, msg.to_host, msg.from_host, snap.default_realm)
        acc = find_account(snap, user, method_realm)
        rc = KSR.auth.pv_auth_check(method_realm, acc.ha1 if acc is not None else DECOY_HA1, 1, 1 if identity_must_match(msg.method) else 0)
        result = auth_result(rc)
        if result is AuthResult.OK or result is AuthResult.FAILED:
            result = judged_auth(msg, snap, acc, user, method_realm, result is AuthResult.OK, rc)
        if result is AuthResult.OK:
            realm = method_realm
    return RequestFacts(msg.method, msg.ruri_user, msg.ruri_host, msg.from_user, msg.from_host, msg.to_user, msg.to_host,
                        msg.src_ip, msg.src_port, msg.call_id, user, realm, result,
                        msg.method != "REGISTER" and msg.ruri_host not in snap.domains and read.is_myself_ruri())


def judged_auth(msg: read.Message, snap: Snapshot, acc, user: str, realm: str, checked_ok: bool, rc: int) -> AuthResult:
    """Right or wrong credentials, adjusted for the account's cool-down and address restriction (any
    account name, known or not, is treated alike); failures counted, sources banned, accounts cooled down."""
    account = bounded_key(f"{user}@{realm}")  # a key in shared memory: bounded in bytes whatever the sender wrote
    if not EDGE.s.enabled:
        locked = 0.0
    elif msg.exact and msg.auth_realm == realm and len(account) < KEY_MAX:  # read with the message (key: the credentials' user@realm)
        locked = float(msg.locked_until) if msg.locked_until.isdigit() else 0.0
    else:
        locked = EDGE.locked_until(account)
    now = time.time()
    if checked_ok and locked <= now and not (acc is not None and acc.allowed):
        return AuthResult.OK  # the common case: nothing more to read
    emergency = locked > now and msg.method == "INVITE" and acc is not None and is_emergency_call(snap, acc, msg.ruri_user)
    verdict = judge_auth(checked_ok, locked, acc.allowed if acc is not None else (), msg.src_ip, emergency, now)
    if verdict.ok:
        return AuthResult.OK
    tenant_id, user_id = (acc.tenant_id, acc.user_id) if acc is not None else (None, None)
    if checked_ok and verdict.count_account:  # the right password from an address the account may not be used from
        EDGE.refused_address(account, msg.src_ip, tenant_id, user_id)
    EDGE.auth_failed(user, realm, msg.src_ip, snap, verdict.why, tenant_id, user_id, count_account=verdict.count_account, method=msg.method)
    KSR.notice(f"callmanager: authentication refused for {account} from {msg.src_ip}: {verdict.why} (rc {rc}, Call-ID {msg.call_id})\n")
    return AuthResult.FAILED  # answered exactly like a wrong password


# ---------------------------------------------------------------- REGISTER


def registrar(facts: RequestFacts, snap: Snapshot, nated: bool) -> None:
    action = decide_register(facts, snap).action
    if isinstance(action, Register):  # answered here: what it requires must be supported (once authenticated: one read)
        refused = unsupported_require("REGISTER", read.one("$(hdr(Require)[*])"))
        if refused is not None:
            apply.reject(refused)
            return
        KSR.auth.consume_credentials()
        if nated:
            KSR.setbflag(FLB_NATB)
            KSR.setbflag(FLB_NATSIPPING)
        barrier.settled()  # save() answers the REGISTER itself
        if KSR.registrar.save("location", 0) < 0:
            KSR.sl.sl_reply_error()
        elif action.user_id in snap.agents:
            acd.mark_registered(action.user_id, action.aor)  # the queue monitor sees an agent's device come and go at once
    elif isinstance(action, Challenge):
        apply.challenge(action.realm)
    elif isinstance(action, Reject):
        apply.reject(action)


# ---------------------------------------------------------------- new calls


def initial_request(facts: RequestFacts, snap: Snapshot, nated: bool) -> None:
    decision = decide_initial(facts, snap, time.time(), LIVE)
    action = decision.action
    if isinstance(action, Challenge):
        apply.challenge(action.realm)
        return
    ctx = call_context(decision, facts.call_id)
    if isinstance(action, Reject):
        finish_locally(ctx, action, facts.method)
        return
    if isinstance(action, FeatureCode):
        feature_code(ctx, action)
        return
    route(ctx, action, facts.method, nated)


def feature_code(ctx: dict, fc: FeatureCode) -> None:
    """Apply what is live at once (DND), answer the phone, and hand the code to the control plane with the record."""
    if fc.kind == "dnd_on":
        KSR.htable.sht_sets("status", f"u{fc.user_id}", "dnd")
    elif fc.kind == "dnd_off":
        KSR.htable.sht_rm("status", f"u{fc.user_id}")
    elif fc.kind == "group_logout":
        KSR.htable.sht_seti("acd", f"out:g{fc.value}:u{fc.user_id}", 1)
    elif fc.kind == "group_login":
        KSR.htable.sht_rm("acd", f"out:g{fc.value}:u{fc.user_id}")
    if fc.kind in ("dnd_on", "dnd_off", "group_logout", "group_login"):
        KSR.htable.sht_inc("acd", read.LIVE_VERSION)  # the workers read statuses and log-ins again on their next group call
    ctx["feature"] = {"user_id": fc.user_id, "kind": fc.kind, "value": fc.value}
    finish_locally(ctx, Reject(603, fc.reply, f"feature code done: {fc.reply}"), "INVITE")


def route(ctx: dict, action, method: str, nated: bool) -> None:
    if isinstance(action, RouteToUser):
        route_to_user(ctx, action, method, nated)
    elif isinstance(action, RouteToTrunk):
        route_to_trunk(ctx, action, nated)
    elif isinstance(action, RouteToGroup):
        route_to_group(ctx, action, method, nated)
    elif isinstance(action, Reject):
        finish_locally(ctx, action, method)


def call_context(decision: Decision, call_id: str) -> dict:
    return cdr.call_context(
        decision.caller,
        decision.callee,
        cdr_id=str(uuid.uuid4()),
        call_id=call_id,
        start_ts=time.time(),
        trace=decision.trace,
    )


def finish_locally(ctx: dict, rej: Reject, method: str) -> None:
    apply.reject(rej)
    if cdr.is_call_attempt(method):
        SPOOL.put(cdr.record(ctx, code=rej.code, reason=rej.reason, end_ts=time.time()))


def route_to_user(ctx: dict, action: RouteToUser, method: str, nated: bool) -> None:
    KSR.auth.consume_credentials()
    if not apply.lookup_aors(action.aors):
        fallback = action.on_unreachable
        ctx["trace"].append("no registered device" + (": forwarded (unreachable)" if not isinstance(fallback, Reject) else ""))
        route(ctx, fallback, method, nated)
        return
    if method != "INVITE":  # MESSAGE, OPTIONS, ... to a user: relay, no dialog, no media
        relay()
        return
    fallbacks = {"busy": action_to_doc(action.on_busy), "no_answer": action_to_doc(action.on_no_answer),
                 "unreachable": action_to_doc(action.on_unreachable)}
    if any(fallbacks.values()):
        ctx["fallback"] = fallbacks
    if any(fallbacks.values()):  # ring this long, then forward (no answer); silent devices count as unreachable
        KSR.tm.t_set_fr(action.no_answer_s * 1000, SETTINGS.device_timeout_ms)
    start_call(ctx, nated, action.track)


def route_to_trunk(ctx: dict, action: RouteToTrunk, nated: bool) -> None:
    KSR.auth.consume_credentials()
    if action.fraud is not None:  # a call out someone pays for (never an emergency call): limits first, priced on its CDR
        refused = fraud_gate.admit(SNAPSHOTS.get(), action.tenant_id, action.fraud[0]) if SETTINGS.fraud_checks else ""
        if refused:
            ctx["trace"].append(f"fraud control: {refused}")
            finish_locally(ctx, Reject(403, "Forbidden", f"call limit reached: {refused}"), "INVITE")
            return
        ctx["fraud"] = list(action.fraud)
    apply.caller_identity(action)
    first, rest = action.hops[0], action.hops[1:]
    ctx["hops"] = [[h.name, h.uri] for h in rest]
    ctx["trunk"] = first.name
    ctx["trace"].append(f"trying trunk {first.name}")
    apply.set_ruri(first.uri)
    if action.emergency:
        ctx["emergency"] = True
    KSR.tm.t_set_fr(action.ring_s * 1000, SETTINGS.trunk_timeout_ms)  # no answer at all from a carrier: next trunk soon
    if action.ring_s:  # the policy's ringing time (emergency calls: as long as the emergency centre takes)
        KSR.tm.t_set_max_lifetime((action.ring_s + 30) * 1000, 0)
    if action.callback is not None:  # an agent calls out: if this number calls the group back, they get it first
        agent, window = action.callback
        KSR.htable.sht_sets("acd", f"cb:{action.target}", f"{agent}:{int(time.time()) + window}")
    prepare_call(ctx, nated, action.track, emergency=action.emergency)
    if action.geolocation is not None:  # after RTPengine's offer (prepare_call): its SDP goes in the multipart body
        apply.location_by_value(*action.geolocation, ctx["trace"])
        store_context(ctx)  # with the trace line saying how the location went
    if action.fraud is not None and SETTINGS.fraud_checks:
        fraud_gate.track(action.tenant_id, *action.fraud)
    relay()


def start_call(ctx: dict, nated: bool, track: tuple[int, ...] = ()) -> None:
    """A new call leaves: record-route, dialog, call context, media anchoring, relay."""
    prepare_call(ctx, nated, track)
    relay()


def prepare_call(ctx: dict, nated: bool, track: tuple[int, ...] = (), emergency: bool = False) -> None:
    """Everything a new call needs before it is relayed (or held in a queue). Once per request: a call prepared
    for a group's queue that then cannot wait goes on to the overflow already record-routed, in its dialog and
    offered to RTPengine (a second offer appended RTPengine's SDP to the body a second time)."""
    again = _PREPARED[0]
    _PREPARED[0] = True
    if not again:
        KSR.rr.record_route()
        KSR.pv.sets("$dlg_ctx(timeout_route)", TIMEOUT_EVENT)  # the dialog's timeout runs dialog:timeout (call_ended) first
        session_timer(emergency)
        KSR.dialog.dlg_manage()
        if emergency:  # TRK-08: no timer of the node ends it (neither keepalives nor session timers)
            apply.set_dlg_var(EMERGENCY, "1")
        elif SETTINGS.dialog_keepalive:  # in-dialog OPTIONS to both phones: a call whose BYE was lost ends (call_ended)
            KSR.dialog.dlg_set_property("ka-src")
            KSR.dialog.dlg_set_property("ka-dst")
    for user_id in track:  # busy-on-busy users and agents: on a call while this dialog lives
        apply.track_call(user_id)
    if track:
        apply.set_dlg_var(TRACKED, ",".join(map(str, track)))
    store_context(ctx)
    KSR.tm.t_on_failure("ksr_failure_route")
    KSR.tm.t_on_reply("ksr_branch_reply")
    if not again:
        KSR.rtpengine.rtpengine_manage(rtpengine_flags(nated))


# ---------------------------------------------------------------- replies and failures


def branch_reply_route() -> int:
    code, bflags, content_type, group_mark = read.reply()
    if group_mark and 200 <= code < 300:
        acd.note_answering_agent(group_mark)
    if code in (180, 183) and not read.avp(RANG):
        apply.set_avp(RANG, repr(time.time()))  # the devices rang: a timeout now means "no answer", not "unreachable"
    nated = bool(bflags & (1 << FLB_NATB)) or KSR.nathelper.nat_uac_test(1) > 0
    if nated:
        KSR.nathelper.set_contact_alias()
    if 100 < code < 300 and read.has_sdp(content_type):
        KSR.rtpengine.rtpengine_manage(rtpengine_flags(nated))
    return 1


def failure_route() -> int:
    cancelled = KSR.tm.t_is_canceled() > 0
    code, reason = read.transaction_reply()
    if cancelled:
        code, reason = 487, "Request Terminated"
    ctx = load_context()
    if ctx is not None and ctx.get("claimed") and (cancelled or not (ctx.get("group") or {}).get("steps")):
        acd.release_all(ctx)  # the caller gave up, or no step is left: nobody is being offered this call any more
    if ctx is not None and (ctx.get("queue") or {}).get("held"):
        acd.leave_queue(ctx)  # it waited in a group's queue until its time was up, or the caller gave up
        if not cancelled and queue_overflow(ctx):
            return 1
    if ctx is not None and not cancelled:
        if code in (401, 407) and ctx.get("trunk") and answer_trunk_challenge(ctx, code):
            return 1
        if ctx.get("hops") and should_fail_over(code, cancelled) and next_trunk(ctx, code, reason):
            return 1
        if ctx.get("fallback") and forward_after_failure(ctx, code, reason):
            return 1
        if ctx.get("group") and group_after_failure(ctx, code, reason):
            return 1
    KSR.rtpengine.rtpengine_delete0()
    if ctx is not None:
        ctx["trace"].append(f"final reply {code} {reason}" + (" (caller cancelled)" if cancelled else ""))
        SPOOL.put(cdr.record(ctx, code=code, reason=reason, end_ts=time.time(), cancelled=cancelled, ring_ts=_float(read.avp(RANG))))
    return 1


def forward_after_failure(ctx: dict, code: int, reason: str) -> bool:
    """Busy, no answer or unreachable: the forwarding decided with the call, as a new branch."""
    case = fallback_case(code, False, read.avp(RANG) != "")
    action = action_from_doc(ctx["fallback"].get(case)) if case else None
    ctx["fallback"] = None  # one forwarding per call leg
    if action is None:
        return False
    ctx["trace"].append(f"{code} {reason}: {case}, forwarding")
    return divert(ctx, action)


def divert(ctx: dict, action) -> bool:
    """From the failure route: the call goes on as new branches to a user, a trunk or a hunt group."""
    KSR.tm.t_reset_fr()
    if isinstance(action, RouteToUser):
        if not apply.lookup_aors(action.aors):
            ctx["trace"].append("forwarding target has no registered device")
            return False
    elif isinstance(action, RouteToGroup):
        ctx["queue"] = None  # a queue of the group it overflows from is left behind
        if not action.steps:  # the target group's queue: wait there
            return acd.hold(ctx, action, first=False)
        if not acd.start_offer(ctx, action, SETTINGS.device_timeout_ms, SNAPSHOTS.get(), LIVE):
            return False
        acd.queue_place(ctx, action)
    elif isinstance(action, RouteToTrunk):
        if action.fraud is not None:  # forwarded out: the forwarding user's limits, and they pay
            refused = fraud_gate.admit(SNAPSHOTS.get(), action.tenant_id, action.fraud[0]) if SETTINGS.fraud_checks else ""
            if refused:
                ctx["trace"].append(f"fraud control: {refused}; not forwarded")
                return False
            ctx["fraud"] = list(action.fraud)
            if SETTINGS.fraud_checks:
                fraud_gate.track(action.tenant_id, *action.fraud)
        apply.caller_identity(action)
        ctx["hops"] = [[h.name, h.uri] for h in action.hops[1:]]
        ctx["trunk"] = action.hops[0].name
        ctx["trace"].append(f"trying trunk {action.hops[0].name}")
        apply.set_ruri(action.hops[0].uri)
        KSR.tm.t_set_fr(0, SETTINGS.trunk_timeout_ms)
    else:
        return False
    store_context(ctx)
    KSR.tm.t_on_failure("ksr_failure_route")
    KSR.tm.t_on_reply("ksr_branch_reply")
    return KSR.tm.t_relay() > 0


# ---------------------------------------------------------------- hunt groups


def route_to_group(ctx: dict, action: RouteToGroup, method: str, nated: bool) -> None:
    KSR.auth.consume_credentials()
    if method != "INVITE":
        finish_locally(ctx, Reject(480, "Temporarily Unavailable", "a hunt group takes calls only"), method)
        return
    acd.queue_place(ctx, action)  # groups with a queue: unanswered offers leave the call waiting for the rest of its time
    if action.present is not None:
        apply.present_as(*action.present)
    if action.steps and acd.start_offer(ctx, action, SETTINGS.device_timeout_ms, SNAPSHOTS.get(), LIVE):
        start_call(ctx, nated)
        return
    if not action.steps or ctx.get("contested"):  # nobody free now, or every planned member taken by simultaneous calls
        if action.queue_s:
            prepare_call(ctx, nated)
            if acd.hold(ctx, action, first=True):
                return
        ctx["trace"].append("the call cannot wait")
    else:
        ctx["trace"].append("no member of the group has a registered device")
    route(ctx, overflow_of(ctx, action.group_id) or Reject(480, "Temporarily Unavailable", "no member of the group can be reached"),
          method, nated)


def overflow_of(ctx: dict, group_id: int):
    """The group's overflow target now, on the live state of this moment (None: nowhere)."""
    ctx["overflows"] = ctx.get("overflows", 0) + 1
    caller = CallParty(ctx.get("tenant_id"), ctx.get("caller_user_id"), ctx.get("caller") or "")
    return group_overflow(SNAPSHOTS.get(), group_id, caller, LIVE, time.time(), ctx["trace"], ctx["overflows"])


def queue_overflow(ctx: dict) -> bool:
    """A waiting call's time is up: the group's overflow target (False: nothing more, the caller gets the final reply)."""
    q = ctx["queue"]
    ctx["queue"] = None
    group = SNAPSHOTS.get().groups.get(q["g"])
    ctx["trace"].append(f"waited {time.time() - q['since']:.0f} s, no member became free"
                        + (": overflow" if group is not None and group.overflow is not None else ""))
    overflow = overflow_of(ctx, q["g"])
    return overflow is not None and divert(ctx, overflow)


def acd_timer() -> int:
    acd.tick(SNAPSHOTS.get(), LIVE)
    _TICKS[0] += 1
    if _TICKS[0] % END_CHECK_TICKS == 0:
        end_requested_calls()
    return 1


def acd_resume() -> int:
    """A waiting call's turn: offer it; when its time is up, the overflow; nothing left: 480."""
    ctx = load_context()
    if ctx is None:
        return 1
    if not acd.resume(ctx, SNAPSHOTS.get(), LIVE, SETTINGS.device_timeout_ms) and not queue_overflow(ctx):
        store_context(ctx)
        KSR.tm.t_reply(480, "Temporarily Unavailable")
    return 1


def group_after_failure(ctx: dict, code: int, reason: str) -> bool:
    """A step's time is up (or all its members failed): the next step, then the overflow."""
    group = ctx["group"]
    if group["steps"]:
        ctx["trace"].append(f"{code} {reason}: next step of group {group['id']}")
        KSR.tm.t_reset_fr()
        if acd.next_step(ctx, group["steps"], group["id"], SETTINGS.device_timeout_ms):
            store_context(ctx)
            KSR.tm.t_on_failure("ksr_failure_route")
            KSR.tm.t_on_reply("ksr_branch_reply")
            return KSR.tm.t_relay() > 0
    ctx["group"] = None
    if ctx.get("queue") and acd.hold(ctx, None, first=False):
        return True  # unanswered: it waits again for the rest of its time
    ctx["trace"].append(f"{code} {reason}: nobody in group {group['id']} answered")
    overflow = overflow_of(ctx, group["id"])
    return overflow is not None and divert(ctx, overflow)


def answer_trunk_challenge(ctx: dict, code: int) -> bool:
    """The carrier asks for credentials: answer once per trunk with the trunk's (never kept in the call context)."""
    name = ctx["trunk"]
    creds = trunk_credentials(SNAPSHOTS.get(), name, ctx.get("auth_tried"))
    if creds is None:
        return False
    user, password, realm = creds
    apply.set_avp("cm_auser", user)
    apply.set_avp("cm_apass", password)
    if realm:
        apply.set_avp("cm_arealm", realm)
    ctx["auth_tried"] = name
    ctx["trace"].append(f"{code} from trunk {name}: answering its challenge as {user}")
    if KSR.uac.uac_auth() < 0:
        ctx["trace"].append("could not answer the challenge (realm or algorithm not matching)")
        return False
    store_context(ctx)
    KSR.tm.t_on_failure("ksr_failure_route")
    KSR.tm.t_on_reply("ksr_branch_reply")
    return KSR.tm.t_relay() > 0


def next_trunk(ctx: dict, code: int, reason: str) -> bool:
    """Serial failover: relay the call to the next trunk; False when none could be tried."""
    while ctx["hops"]:
        name, uri = ctx["hops"].pop(0)
        ctx["trunk"] = name
        ctx["trace"].append(f"{code} {reason} from the trunk: failing over to trunk {name}")
        store_context(ctx)
        apply.set_ruri(uri)
        KSR.tm.t_set_fr(0, SETTINGS.trunk_timeout_ms)
        KSR.tm.t_on_failure("ksr_failure_route")
        KSR.tm.t_on_reply("ksr_branch_reply")
        if KSR.tm.t_relay() > 0:
            return True
        code, reason = 503, "relay failed"
    return False


def dialog_event(evname: str) -> int:
    if evname == "dialog:start":
        apply.set_dlg_var("cm_answer_ts", f"{time.time()!r}/{read.avp(RANG)}")  # answered at / first rang at
        tracked, mark = read.dlg_vars(TRACKED, fraud_gate.MARK)
        acd.calls_started(tracked)
        if mark:  # a call out under the fraud limits: in progress from now
            fraud_gate.answered(mark)
    elif evname == "dialog:end":
        call_ended("answered; dialog ended")
    elif evname == "dialog:timeout":  # runs before the dialog module sends its BYEs (kamailio.cfg: send_bye)
        call_ended("answered; dialog ended by the node: no BYE within the call limit or the keep-alives went unanswered")
    return 1


def call_ended(why: str) -> None:
    """Everything an answered call holds is given back, once per dialog whichever comes first: its hunt-group agents
    and busy users, its count of calls out in progress, its media session, and its record is written.
    Kamailio 5.6 runs the dialog-end event of a dialog it ends itself (dlg_bye_all: timeouts, dlg.end_dlg) with the
    dialog's state read after its BYEs were sent: when a phone's 200 to a BYE is handled first, the state is already
    'deleted' and no event runs (the fraudcalls +1 of earlier notes, and a missing CDR). So every end the node makes
    runs this first (dialog:timeout, end_requested_calls) and the dialog-end event, if it still runs, finds it done."""
    if read.claim_dialog_end() > 1:  # another process accounted this call's end already
        return
    acd.agent_call_ended()
    acd.calls_ended(read.dlg_var(TRACKED))
    blob = read.dlg_var(CTX)
    if blob:
        ctx = json.loads(blob)
        if ctx.get("fraud") and SETTINGS.fraud_checks:
            fraud_gate.ended(ctx["tenant_id"], ctx["fraud"][0])
        answered, _, rang = read.dlg_var("cm_answer_ts").partition("/")
        ctx["trace"].append(why)
        SPOOL.put(cdr.record(ctx, code=200, reason="OK", end_ts=time.time(), answer_ts=_float(answered) or ctx["start_ts"],
                             ring_ts=_float(rang), quality=media_quality()))


def end_requested_calls() -> None:
    """Calls the control plane asked to end (htable `cmend`: <h_entry>:<h_id> = JSON [Call-ID, From tag, To tag,
    reason]; the fraud monitor's spend limits): each call's end is accounted here, then the dialog module sends
    its BYEs to both sides."""
    requests = []
    KSR.htable.sht_iterator_start("cme", END_REQUESTS)
    while KSR.htable.sht_iterator_next("cme") >= 0:
        requests.append((read.one("$shtitkey(cme)"), read.one("$shtitval(cme)")))
    KSR.htable.sht_iterator_end("cme")
    for key, value in requests:
        KSR.htable.sht_rm(END_REQUESTS, key)
        try:
            call_id, from_tag, to_tag, reason = json.loads(value)
        except (ValueError, TypeError):
            KSR.warn(f"callmanager: request to end call {key!r} unreadable: {value[:200]!r}\n")
            continue
        if KSR.dialog.dlg_get(str(call_id), str(from_tag), str(to_tag)) < 0:
            continue  # over already: its own end did the accounting
        call_ended(f"answered; ended by the node: {reason}"[:300])
        KSR.dialog.dlg_bye("all")


def media_quality() -> dict[str, str] | None:
    """Delete the dialog's media session now (whoever or whatever ended it) and keep RTPengine's verdict on it:
    average MOS, jitter, loss and round trip of the call (from RTCP; empty when the phones sent none)."""
    call_id, from_tag = read.one("$dlg(callid)"), read.one("$dlg(from_tag)")
    if not (is_word(call_id) and is_word(from_tag)):  # a value in a flag string must not add flags: left to RTPengine's timeout
        KSR.warn(f"callmanager: media session of a dialog with an unusual Call-ID or tag left to RTPengine's timeout: {call_id[:80]!a}\n")
        return None
    KSR.rtpengine.rtpengine_delete(f"call-id={call_id} from-tag={from_tag}")
    KSR.setflag(MEDIA_DONE)  # a BYE that ended it: its own rtpengine_manage would delete the session a second time
    return read.media_quality()


def _float(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


# ---------------------------------------------------------------- Kamailio's own JSON-RPC


def xhttp_event() -> int:
    if read.local_port() != SETTINGS.rpc_port:
        KSR.xhttp.xhttp_reply(403, "Forbidden", "text/plain", "RPC is served on its own listener only\n")
    elif not (SETTINGS.rpc_secret and hmac.compare_digest(read.one(f"$hdr({RPC_KEY_HEADER})").encode(), SETTINGS.rpc_secret.encode())):
        KSR.xhttp.xhttp_reply(401, "Unauthorized", "text/plain", "this listener answers the node's control plane only\n")
    elif read.one("$hu").startswith("/RPC"):
        KSR.jsonrpcs.dispatch()
    else:
        KSR.xhttp.xhttp_reply(404, "Not Found", "text/plain", "try /RPC\n")
    return 1
