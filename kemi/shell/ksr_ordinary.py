"""The ordinary messages on straight paths, from their one-crossing read to their answer: a REGISTER, and an ACK or a
BYE within a dialog.

They are most of what a node handles, and what each costs is the Python it runs, cold: between two messages the caches
hold Kamailio's own work and the other processes'. Measured inside Kamailio (docs/benchmarks.md §11), every step of the
general request route costs several µs per message — building the 25-field `Message`, the edge's verdict, the facts,
the decision object — whatever its bytecode count. So an ordinary REGISTER (UDP, a sip: Request-URI, no To tag, a node
that is not draining) and an in-dialog ACK or BYE (UDP, sip:) are handled here on the `fields` list of the message
read, with their Kamailio calls inline, and the same decisions: the edge's (`Edge.admit`, its counters), the
credentials' (`credentials.judged_auth` whenever the check is not a plain success), the policy's (`register_action`,
the function `decide_register` asks; the media flags). tests/unit/test_ordinary_paths.py runs these paths and the
general one on the same messages and compares every Kamailio call they make. Anything else returns before any step
has run, and the general path takes the message.
"""

from __future__ import annotations

import KSR

from kemi.policy.auth import auth_result, find_account
from kemi.policy.decision import Challenge, Register, Reject
from kemi.policy.edge import KEY_MAX
from kemi.policy.facts import AuthResult
from kemi.policy.media import rtpengine_flags
from kemi.policy.routing import register_action, unsupported_require

from . import barrier, wire
from . import ksr_apply as apply
from . import ksr_fraud as fraud_gate
from . import ksr_groups as groups
from . import ksr_read as read
from .credentials import DECOY_HA1, judged_auth
from .flags import FLB_NATB, FLB_NATSIPPING, FLT_NATS, NAT_TEST
from .ksr_dialog import MEDIA_DONE
from .ksr_read import (
    F_AUTH_REALM,
    F_AUTH_USER,
    F_BANNED,
    F_CALL_ID,
    F_CONTENT_TYPE,
    F_DRAIN,
    F_LOCAL_PORT,
    F_LOCKED_UNTIL,
    F_METHOD,
    F_PROTO,
    F_REQUESTS,
    F_REQUIRE,
    F_SCHEME,
    F_SRC_IP,
    F_SRC_PORT,
    F_TO_HOST,
    F_TO_TAG,
    F_USER_AGENT,
    SANITY_CHECKS,
    SANITY_URI_CHECKS,
)

ENABLED = [True]  # tests switch the straight paths off to compare them with the general one
DONE, NOT_MINE, NO_DIALOG = 1, 0, -1  # what `in_dialog` did
_SETTLED = barrier._SETTLED  # the barrier's mark: this request has its answer (barrier.settled)


def register(v: list[str], snap, edge, rpc_port: int) -> bool:
    """An ordinary REGISTER (`v`: its `ksr_read.fields`), start to end: dropped, refused, challenged or saved.
    False: not an ordinary REGISTER — nothing was done, the general request route takes it."""
    if (
        v[F_METHOD] != "REGISTER"
        or v[F_TO_TAG]
        or v[F_PROTO] != "udp"
        or v[F_SCHEME] != "sip"
        or v[F_DRAIN] == "1"
        or v[F_LOCAL_PORT] == str(rpc_port)
        or not ENABLED[0]
    ):
        return False
    ksr = KSR
    ip = v[F_SRC_IP]
    if not _common_checks(ksr, v, snap, edge, "REGISTER"):
        return True
    if ksr.tmx.t_precheck_trans() > 0:  # a retransmission: tm answers it (its last reply again) or absorbs it
        ksr.tm.t_check_trans()
        _SETTLED[0] = True
        return True
    if ksr.tm.t_check_trans() == 0:
        _SETTLED[0] = True
        return True
    ksr.force_rport()
    nated = ksr.nathelper.nat_uac_test(NAT_TEST) > 0
    if nated:
        ksr.setflag(FLT_NATS)
        ksr.nathelper.fix_nated_register()
    to_host = v[F_TO_HOST]
    to_host = to_host.lower() if to_host.isascii() else wire.lower(to_host)
    user = v[F_AUTH_USER]
    realm = to_host or snap.default_realm  # kemi.policy.auth.realm_for: a REGISTER authenticates in the To domain
    result = AuthResult.NONE
    if user:
        acc = find_account(snap, user, realm)
        rc = ksr.auth.pv_auth_check(realm, acc.ha1 if acc is not None else DECOY_HA1, 1, 1)
        result = auth_result(rc)
        if result is AuthResult.OK or result is AuthResult.FAILED:
            checked_ok = result is AuthResult.OK
            ar = v[F_AUTH_REALM]
            if not (  # the common case of credentials.judged_auth, inline: right, no cool-down, no address rule
                checked_ok
                and (acc is None or not acc.allowed)
                and (not edge.s.enabled or (v[F_LOCKED_UNTIL] in ("", "0") and _exact_key(user, realm, ar)))
            ):
                result = judged_auth(read.message(values=v), snap, acc, user, realm, checked_ok, rc)
    if result is AuthResult.OK:
        edge.authenticated(ip, snap)
    elif not edge.unauthenticated(ip, snap, "REGISTER " + result.value) or edge.banned_now:
        _SETTLED[0] = True  # banned just now (a flood, or one failed authentication too many): no answer
        ksr.set_drop()
        return True
    action = register_action(snap, to_host, result, user, realm)
    if isinstance(action, Register):
        refused = unsupported_require("REGISTER", v[F_REQUIRE])
        if refused is not None:
            apply.reject(refused)
            return True
        ksr.auth.consume_credentials()
        if nated:
            ksr.setbflag(FLB_NATB)
            ksr.setbflag(FLB_NATSIPPING)
        _SETTLED[0] = True
        if ksr.registrar.save("location", 0) < 0:  # save() answers the REGISTER itself
            ksr.sl.sl_reply_error()
        elif action.user_id in snap.agents:
            groups.mark_registered(action.user_id, action.aor)  # the queue monitor sees an agent's device at once
    elif isinstance(action, Challenge):
        _SETTLED[0] = True
        ksr.auth.auth_challenge(action.realm, 1)  # 401, qop=auth
    elif isinstance(action, Reject):
        apply.reject(action)
    return True


def in_dialog(v: list[str], snap, edge, rpc_port: int, fraud_checks: bool) -> int:
    """An ACK or a BYE within a dialog (`v`: its `ksr_read.fields`): relayed on the dialog's route, its media session
    updated. NOT_MINE: not such a request — nothing was done, the general request route takes it. NO_DIALOG: it
    passed the common checks but loose_route matched no dialog — the general path's `no_dialog` answers it."""
    method = v[F_METHOD]
    if (
        (method != "ACK" and method != "BYE")
        or not v[F_TO_TAG]
        or v[F_PROTO] != "udp"
        or v[F_SCHEME] != "sip"
        or v[F_LOCAL_PORT] == str(rpc_port)
        or not ENABLED[0]
    ):
        return NOT_MINE
    ksr = KSR
    if not _common_checks(ksr, v, snap, edge, method):
        return DONE
    if ksr.rr.loose_route() <= 0:
        return NO_DIALOG
    nated = ksr.nathelper.nat_uac_test(NAT_TEST) > 0
    if nated:
        ksr.setflag(FLT_NATS)
    ksr.nathelper.handle_ruri_alias()
    bye = method == "BYE"
    if (bye and not ksr.isflagset(MEDIA_DONE)) or "application/sdp" in v[F_CONTENT_TYPE].lower():
        ksr.rtpengine.rtpengine_manage(rtpengine_flags(nated))
    if fraud_checks and not bye:
        fraud_gate.acked()  # from now on the spend monitor sees the call (and may end it)
    _SETTLED[0] = True
    if ksr.tm.t_relay() < 0:
        ksr.sl.sl_reply_error()
    return DONE


def _common_checks(ksr, v: list[str], snap, edge, method: str) -> bool:
    """What every request passes first, as on the general request route: the edge (banned, a scanner, a flood),
    the sanity checks, Max-Forwards. False: the request got its answer or its deliberate drop."""
    ip = v[F_SRC_IP]
    requests = v[F_REQUESTS]
    if not edge.admit(ip, v[F_BANNED], v[F_USER_AGENT], snap, int(requests) if requests.isdigit() else 0):
        _SETTLED[0] = True  # banned, a scanner, or a flood: not a word back
        ksr.set_drop()
        return False
    if ksr.sanity.sanity_check(SANITY_CHECKS, SANITY_URI_CHECKS) < 0:  # sanity answered (400, 420, 505)
        port = v[F_SRC_PORT]
        edge.insane(ip, int(port) if port.isdigit() else 0, method, v[F_CALL_ID], snap)
        _SETTLED[0] = True
        ksr.set_drop()
        return False
    if ksr.maxfwd.process_maxfwd(10) < 0:
        apply.reply(483, "Too Many Hops")
        return False
    return True


def _exact_key(user: str, realm: str, auth_realm: str) -> bool:
    """The message read printed the account's cool-down under this account's key (credentials.judged_auth)."""
    lowered = auth_realm.lower() if auth_realm.isascii() else wire.lower(auth_realm)
    return lowered == realm and len(user) + 1 + len(realm) < KEY_MAX
