"""The KEMI route functions, one small function per stage of a request.

Each helper returns `Flow.CONTINUE` (go on with the next stage) or `Flow.DONE` (the request
has been answered, relayed or dropped). Decisions come from `kemi.policy`; this module only
moves facts in and applies outcomes.
"""
from __future__ import annotations

import dataclasses
import json
import secrets
import time
import uuid

import KSR

from kemi.policy import cdr
from kemi.policy.auth import auth_result, challenge_realm, failure_counter_keys, ha1_for_check, identity_must_match
from kemi.policy.decision import Challenge, Decision, Flow, Register, Reject, RouteToUser
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.media import rtpengine_flags
from kemi.policy.routing import decide_initial, decide_register, unsupported_method

from . import ksr_apply as apply
from . import ksr_read as read
from .cdr_spool import CdrSpool
from .flags import FLB_NATB, FLB_NATSIPPING, FLT_NATS, NAT_TEST
from .settings import ShellSettings
from .snapshot_holder import SnapshotHolder

SETTINGS = ShellSettings.from_env()
SNAPSHOTS = SnapshotHolder(SETTINGS.snapshot_path, SETTINGS.snapshot_check_interval, log=lambda m: KSR.info(m + "\n"))
SPOOL = CdrSpool(SETTINGS.spool_dir)
# Unknown accounts are checked against this: same work and same answer as a wrong password.
DECOY_HA1 = secrets.token_hex(16)
CTX = "cm_ctx"  # name of the AVP / dialog variable that carries the call context


def child_init(rank: int) -> int:
    SNAPSHOTS.get()
    return 0


# ---------------------------------------------------------------- request route


def request_route() -> int:
    if read.local_port() == SETTINGS.rpc_port:  # SIP is not served on the RPC listener
        KSR.set_drop()
        return 1
    for stage in (request_init, cancel, in_dialog, retransmission):
        if stage() is Flow.DONE:
            return 1
    facts = read.request_facts()  # read once; every later stage gets these
    refused = unsupported_method(facts.method)
    if refused is not None:
        apply.reject(refused)
        return 1
    detect_nat()
    if facts.method == "REGISTER":
        registrar(facts)
    elif facts.method != "ACK":  # an ACK that matches no transaction and no dialog is absorbed
        initial_request(facts)
    return 1


def request_init() -> Flow:
    """Sanity checks: malformed requests answered 400 (by sanity) or dropped; loops 483."""
    if KSR.sanity.sanity_check_defaults() < 0:
        KSR.set_drop()
        return Flow.DONE
    if KSR.maxfwd.process_maxfwd(10) < 0:
        apply.reply(483, "Too Many Hops")
        return Flow.DONE
    if KSR.is_OPTIONS() and not read.request_facts().ruri_user and KSR.is_myself_ruri() > 0:
        apply.reply(200, "OK")  # keep-alive / monitoring ping to the server itself
        return Flow.DONE
    return Flow.CONTINUE


def cancel() -> Flow:
    if not KSR.is_CANCEL():
        return Flow.CONTINUE
    if KSR.tm.t_check_trans() > 0:
        KSR.rtpengine.rtpengine_manage("")
        KSR.tm.t_relay()
    return Flow.DONE


def in_dialog() -> Flow:
    if KSR.siputils.has_totag() < 0:
        return Flow.CONTINUE
    if KSR.rr.loose_route() > 0:
        if KSR.nathelper.nat_uac_test(NAT_TEST) > 0:
            KSR.setflag(FLT_NATS)
            if KSR.is_method_in("IU"):  # a re-INVITE / UPDATE from a NATed party: fix its Contact
                KSR.nathelper.set_contact_alias()
        KSR.nathelper.handle_ruri_alias()
        if KSR.is_BYE() or read.has_sdp():
            KSR.rtpengine.rtpengine_manage(media_flags())
        if KSR.is_INVITE():
            KSR.tm.t_on_reply("ksr_branch_reply")
        relay()
        return Flow.DONE
    if KSR.is_ACK():
        if KSR.tm.t_check_trans() > 0:
            relay()  # ACK for a negative reply to a stateful forward
        return Flow.DONE
    apply.reply(404, "Not here", "no dialog matches this request")
    return Flow.DONE


def retransmission() -> Flow:
    if KSR.is_ACK():
        return Flow.CONTINUE
    if KSR.tmx.t_precheck_trans() > 0:
        KSR.tm.t_check_trans()
        return Flow.DONE
    if KSR.tm.t_check_trans() == 0:
        return Flow.DONE
    return Flow.CONTINUE


def detect_nat() -> None:
    KSR.force_rport()
    if KSR.nathelper.nat_uac_test(NAT_TEST) > 0:
        KSR.setflag(FLT_NATS)
        if KSR.is_REGISTER():
            KSR.nathelper.fix_nated_register()
        elif KSR.is_INVITE() or KSR.is_method_in("S"):
            KSR.nathelper.set_contact_alias()


def media_flags() -> str:
    return rtpengine_flags(nated=KSR.isflagset(FLT_NATS))


def relay() -> None:
    if KSR.tm.t_relay() < 0:
        KSR.sl.sl_reply_error()


# ---------------------------------------------------------------- authentication


def authenticated_facts(facts: RequestFacts) -> RequestFacts:
    """The request's facts with the result of checking its digest credentials; failures counted."""
    snap = SNAPSHOTS.get()
    user, realm = read.credentials()
    if not user:
        return facts
    method_realm = challenge_realm(facts, snap)
    ha1 = ha1_for_check(snap, user, method_realm, DECOY_HA1)
    rc = KSR.auth.pv_auth_check(method_realm, ha1, 1, 1 if identity_must_match(facts.method) else 0)
    result = auth_result(rc)
    if result is AuthResult.FAILED:
        for key in failure_counter_keys(user, method_realm, facts.src_ip):
            KSR.htable.sht_inc("authfail", key)  # atomic, shared by all workers (initval=0 creates it)
        KSR.notice(f"callmanager: digest authentication failed for {user}@{method_realm} from {facts.src_ip} (rc {rc})\n")
    return dataclasses.replace(facts, auth=result, auth_user=user, auth_realm=method_realm if result is AuthResult.OK else realm)


# ---------------------------------------------------------------- REGISTER


def registrar(facts: RequestFacts) -> None:
    decision = decide_register(authenticated_facts(facts), SNAPSHOTS.get())
    action = decision.action
    if isinstance(action, Challenge):
        apply.challenge(action.realm)
    elif isinstance(action, Reject):
        apply.reject(action)
    elif isinstance(action, Register):
        KSR.auth.consume_credentials()
        if KSR.isflagset(FLT_NATS):
            KSR.setbflag(FLB_NATB)
            KSR.setbflag(FLB_NATSIPPING)
        if KSR.registrar.save("location", 0) < 0:
            KSR.sl.sl_reply_error()


# ---------------------------------------------------------------- new calls


def initial_request(facts: RequestFacts) -> None:
    facts = authenticated_facts(facts)
    decision = decide_initial(facts, SNAPSHOTS.get())
    action = decision.action
    if isinstance(action, Challenge):
        apply.challenge(action.realm)
        return
    ctx = call_context(decision, facts.call_id)
    if isinstance(action, Reject):
        finish_locally(ctx, action, facts.method)
        return
    if isinstance(action, RouteToUser):
        route_to_user(ctx, action, facts.method)


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


def route_to_user(ctx: dict, action: RouteToUser, method: str) -> None:
    KSR.auth.consume_credentials()
    if not apply.lookup_aors(action.aors):
        ctx["trace"].append("no registered device: " + action.on_unreachable.reason)
        finish_locally(ctx, action.on_unreachable, method)
        return
    if method != "INVITE":  # MESSAGE, OPTIONS, ... to a user: relay, no dialog, no media
        relay()
        return
    KSR.rr.record_route()
    KSR.dialog.dlg_manage()
    blob = json.dumps(ctx, separators=(",", ":"))
    apply.set_avp(CTX, blob)
    apply.set_dlg_var(CTX, blob)
    KSR.tm.t_on_failure("ksr_failure_route")
    KSR.tm.t_on_reply("ksr_branch_reply")
    KSR.rtpengine.rtpengine_manage(media_flags())
    relay()


# ---------------------------------------------------------------- replies and failures


def branch_reply_route() -> int:
    code = read.reply_code()
    nated = KSR.isbflagset(FLB_NATB) > 0 or KSR.nathelper.nat_uac_test(1) > 0
    if nated:
        KSR.nathelper.set_contact_alias()
    if 100 < code < 300 and read.has_sdp():
        KSR.rtpengine.rtpengine_manage(rtpengine_flags(nated))
    return 1


def failure_route() -> int:
    cancelled = KSR.tm.t_is_canceled() > 0
    code, reason = read.transaction_reply()
    if cancelled:
        code, reason = 487, "Request Terminated"
    KSR.rtpengine.rtpengine_delete0()
    blob = read.avp(CTX)
    if blob:
        ctx = json.loads(blob)
        ctx["trace"].append(f"final reply {code} {reason}" + (" (caller cancelled)" if cancelled else ""))
        SPOOL.put(cdr.record(ctx, code=code, reason=reason, end_ts=time.time(), cancelled=cancelled))
    return 1


def dialog_event(evname: str) -> int:
    if evname == "dialog:start":
        apply.set_dlg_var("cm_answer_ts", repr(time.time()))
    elif evname == "dialog:end":
        blob = read.dlg_var(CTX)
        if blob:
            ctx = json.loads(blob)
            answered = float(read.dlg_var("cm_answer_ts") or ctx["start_ts"])
            ctx["trace"].append("answered; dialog ended")
            SPOOL.put(cdr.record(ctx, code=200, reason="OK", end_ts=time.time(), answer_ts=answered))
    return 1


# ---------------------------------------------------------------- Kamailio's own JSON-RPC


def xhttp_event() -> int:
    if read.local_port() != SETTINGS.rpc_port:
        KSR.xhttp.xhttp_reply(403, "Forbidden", "text/plain", "RPC is served on its own listener only\n")
    elif (KSR.pv.gete("$hu") or "").startswith("/RPC"):
        KSR.jsonrpcs.dispatch()
    else:
        KSR.xhttp.xhttp_reply(404, "Not Found", "text/plain", "try /RPC\n")
    return 1
