"""The ordinary messages on straight paths, from their one-crossing read to their answer: a REGISTER, the first INVITE
of a call (without credentials: challenged; with them: authenticated, decided and routed), and an ACK or a BYE within a
dialog; and the checks every request passes first (`admitted`, `checked`), which both paths share.

They are most of what a node handles, and what each costs is the Python it runs, cold: between two messages the caches
hold Kamailio's own work and the other processes'. Measured inside Kamailio (docs/benchmarks.md §12), every step of the
general request route costs several µs per message — building the 25-field `Message`, the edge's verdict, the facts,
the decision object — whatever its bytecode count; merging functions buys nothing, doing fewer things does. So an
ordinary REGISTER (UDP, or TCP/TLS with a Content-Length; a sip: Request-URI, no To tag, a node that is not draining),
an INVITE like it without credentials from a source that needs them (`needs_credentials`) or with credentials
(`calls.initial_request` then decides and routes it as on the general path), and an in-dialog ACK or BYE (the same
transports, sip:) are handled on the `fields` list of the message read, without a `Message` or the request's facts,
through the same `ksr_dialog`/`ksr_apply` steps and the same decisions: the edge's (`Edge.admit`, its counters), the
credentials' (`kemi.policy.edge.plainly_accepted`, else `credentials.judged_auth`), the policy's (`register_action`,
which `decide_register` asks too; `registrar` applies it for both paths; `needs_credentials`, which `decide_initial`
agrees with). tests/unit/test_ordinary_paths.py runs these paths and the general one on the same messages and compares
every Kamailio call they make. Anything else returns before any step has run, and the general path takes the message.
"""

from __future__ import annotations

import time

from kemi.policy.auth import auth_result, find_account, identity_must_match, realm_for
from kemi.policy.cluster import nat_pinged, path_needed
from kemi.policy.decision import Challenge, Register, Reject
from kemi.policy.edge import bounded_key, plainly_accepted
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.media import offer_profile
from kemi.policy.routing import needs_credentials, register_action, unsupported_require

from . import barrier, calls, wire
from . import ksr_apply as apply
from . import ksr_dialog as dialog
from . import ksr_fraud as fraud_gate
from . import ksr_groups as groups
from . import ksr_read as read
from .credentials import DECOY_HA1, cooldown, judged_auth
from .ksr_read import (
    F_AUTH_REALM,
    F_AUTH_USER,
    F_BANNED,
    F_CALL_ID,
    F_CONTENT_TYPE,
    F_DRAIN,
    F_FROM_HOST,
    F_FROM_USER,
    F_LOCAL_PORT,
    F_LOCKED_UNTIL,
    F_METHOD,
    F_PROTO,
    F_REQUESTS,
    F_REQUIRE,
    F_RURI_HOST,
    F_RURI_USER,
    F_SCHEME,
    F_SRC_IP,
    F_SRC_PORT,
    F_TO_HOST,
    F_TO_TAG,
    F_TO_USER,
    F_USER_AGENT,
)

ENABLED = [True]  # tests switch the straight paths off to compare them with the general one
DONE, NOT_MINE, NO_DIALOG = 1, 0, -1  # what `in_dialog` did


def register(v: list[str], snap, edge, rpc_port: int, clustered: bool = False) -> bool:
    """An ordinary REGISTER (`v`: its `ksr_read.fields`), start to end: dropped, refused, challenged or saved.
    False: not an ordinary REGISTER — nothing was done, the general request route takes it."""
    if not _new_straight(v, "REGISTER", rpc_port):
        return False
    if not _first_steps(v, snap, edge, "REGISTER"):
        return True
    nated = dialog.detect_nat("REGISTER")
    to_host = wire.lower(v[F_TO_HOST])
    user = v[F_AUTH_USER]
    realm = to_host or snap.default_realm  # kemi.policy.auth.realm_for: a REGISTER authenticates in the To domain
    result = _credentials(v, snap, edge, "REGISTER", user, realm)
    if result is None:
        return True
    proto = v[F_PROTO]
    registrar(register_action(snap, to_host, result, user, realm, proto), snap, nated, v[F_REQUIRE], proto, clustered)
    return True


def challenge(v: list[str], snap, edge, rpc_port: int) -> bool:
    """An INVITE without credentials (`v`: its `ksr_read.fields`) from a source that needs them (the first INVITE of
    nearly every call), start to end: dropped, or challenged. False: not such an INVITE — nothing was done, the
    general request route takes it."""
    if v[F_AUTH_USER] or not _new_straight(v, "INVITE", rpc_port) or not needs_credentials(snap, v[F_SRC_IP]):
        return False
    ip = v[F_SRC_IP]
    if not _first_steps(v, snap, edge, "INVITE"):
        return True
    dialog.detect_nat("INVITE")
    if not edge.unauthenticated(ip, snap, "INVITE none") or edge.banned_now:
        apply.drop()  # banned just now (a flood): no answer
        return True
    apply.challenge(realm_for("INVITE", "", wire.lower(v[F_FROM_HOST]), snap.default_realm))
    return True


def offer_of(content_type: str) -> str:
    """An INVITE's SDP profile (kemi.policy.media): the body read only when it is SDP."""
    return offer_profile(read.body()) if read.has_sdp(content_type) else ""


def call(v: list[str], snap, edge, rpc_port: int) -> bool:
    """The first INVITE of a call with credentials (`v`: its `ksr_read.fields`; the second INVITE of nearly every
    call), start to end: dropped, refused or challenged, or decided and routed by `calls.initial_request` as on the
    general path — only the `Message` and the checks that cannot apply to it (a URI scheme or stream transport
    `malformed` looks at, OPTIONS, CANCEL, draining, a method not served) are left out. False: not such an INVITE —
    nothing was done, the general request route takes it."""
    if not v[F_AUTH_USER] or not _new_straight(v, "INVITE", rpc_port):
        return False
    if not _first_steps(v, snap, edge, "INVITE"):
        return True
    nated = dialog.detect_nat("INVITE")
    user = v[F_AUTH_USER]
    from_host = wire.lower(v[F_FROM_HOST])
    realm = realm_for("INVITE", "", from_host, snap.default_realm)  # an INVITE authenticates in the From domain
    result = _credentials(v, snap, edge, "INVITE", user, realm)
    if result is None:
        return True
    ip = v[F_SRC_IP]
    ruri_host = wire.lower(v[F_RURI_HOST])
    facts = RequestFacts(
        "INVITE",
        v[F_RURI_USER],
        ruri_host,
        v[F_FROM_USER],
        from_host,
        v[F_TO_USER],
        wire.lower(v[F_TO_HOST]),
        ip,
        wire.number(v[F_SRC_PORT]),
        v[F_CALL_ID],
        user,
        realm if result is AuthResult.OK else wire.lower(v[F_AUTH_REALM]),
        result,
        ruri_host not in snap.domains and read.is_myself_ruri(),
        transport=v[F_PROTO],
        offer=offer_of(wire.lower(v[F_CONTENT_TYPE])),
    )
    calls.initial_request(facts, snap, nated)
    return True


def registrar(action, snap, nated: bool, require: str, proto: str = "udp", clustered: bool = False) -> None:
    """A REGISTER's decision applied (both paths): the binding saved (what it requires supported; in a cluster with
    this node's Path when only this node can reach the phone), or challenged, or refused."""
    if isinstance(action, Register):  # answered here: what it requires must be supported (once authenticated: one read)
        refused = unsupported_require("REGISTER", require)
        if refused is not None:
            apply.reject(refused)
            return
        apply.consume_credentials()
        if nated:
            dialog.mark_nated_registration(pinged=nat_pinged(proto))
        if clustered:
            apply.own_path(path_needed(clustered, nated, proto))
        if apply.save_registration() and action.user_id in snap.agents:
            groups.mark_registered(action.user_id, action.aor)  # the queue monitor sees an agent's device at once
    elif isinstance(action, Challenge):
        apply.challenge(action.realm)
    elif isinstance(action, Reject):
        apply.reject(action)


def in_dialog(v: list[str], snap, edge, rpc_port: int, fraud_checks: bool, clustered: bool = False) -> int:
    """An ACK or a BYE within a dialog (`v`: its `ksr_read.fields`): relayed on the dialog's route, its media session
    updated. NOT_MINE: not such a request — nothing was done, the general request route takes it. NO_DIALOG: it
    passed the common checks but loose_route matched no dialog — the general path's `no_dialog` answers it."""
    method = v[F_METHOD]
    if (
        (method != "ACK" and method != "BYE")
        or not v[F_TO_TAG]
        or v[F_SCHEME] != "sip"
        or v[F_LOCAL_PORT] == str(rpc_port)
        or not ENABLED[0]
        or not _straight_transport(v)
    ):
        return NOT_MINE
    if not _common_checks(v, snap, edge, method):
        return DONE
    if not dialog.loose_route():
        return NO_DIALOG
    if clustered and dialog.relayed_for_peer():  # a leg relayed for a peer: no media, no accounting here
        dialog.follow_alias()
        apply.relay()
        return DONE
    nated = dialog.nated_in_dialog(method, clustered)
    dialog.media_in_dialog(method, nated, wire.lower(v[F_CONTENT_TYPE]))
    if fraud_checks and method == "ACK":
        fraud_gate.acked()  # from now on the spend monitor sees the call (and may end it)
    apply.relay()
    return DONE


def _new_straight(v: list[str], method: str, rpc_port: int) -> bool:
    """A new request of this method (no To tag) to a sip: URI over a transport a straight path takes, on a node that
    is not draining, not on the RPC listener: one a straight path may take."""
    return (
        v[F_METHOD] == method
        and not v[F_TO_TAG]
        and v[F_SCHEME] == "sip"
        and v[F_DRAIN] != "1"
        and v[F_LOCAL_PORT] != str(rpc_port)
        and ENABLED[0]
        and _straight_transport(v)
    )


def _straight_transport(v: list[str]) -> bool:
    """UDP; or TCP or TLS with a Content-Length (read only for them, as the general path does: without one the general
    path answers 400, kemi.policy.routing.malformed). WebSocket requests take the general path."""
    proto = v[F_PROTO]
    if proto == "udp":
        return True
    return (proto == "tcp" or proto == "tls") and bool(read.one("$cl"))


def _first_steps(v: list[str], snap, edge, method: str) -> bool:
    """The common checks, then a retransmission left to tm. False: the request has its answer (or its drop)."""
    if not _common_checks(v, snap, edge, method):
        return False
    if dialog.is_retransmission():  # tm answers it (its last reply again) or absorbs it
        barrier.settled()
        return False
    return True


def _credentials(v: list[str], snap, edge, method: str, user: str, realm: str) -> AuthResult | None:
    """The digest credentials of a new request checked against the account's HA1 (a decoy for unknown accounts) and
    judged with its cool-down and address rule (as `credentials.authenticated_facts` on the general path), then the
    edge told. None: the source was banned just now — dropped without an answer."""
    ip = v[F_SRC_IP]
    result = AuthResult.NONE
    if user:
        acc = find_account(snap, user, realm)
        rc = read.check_credentials(realm, acc.ha1 if acc is not None else DECOY_HA1, identity_must_match(method))
        result = auth_result(rc)
        if result is AuthResult.OK or result is AuthResult.FAILED:
            checked_ok = result is AuthResult.OK
            locked = cooldown(bounded_key(f"{user}@{realm}"), v[F_LOCKED_UNTIL], wire.lower(v[F_AUTH_REALM]), realm)
            if not plainly_accepted(checked_ok, locked, acc.allowed if acc is not None else (), time.time()):
                result = judged_auth(read.message(values=v), snap, acc, user, realm, checked_ok, rc, locked)
    if result is AuthResult.OK:
        edge.authenticated(ip, snap)
    elif not edge.unauthenticated(ip, snap, f"{method} {result.value}") or edge.banned_now:
        apply.drop()  # banned just now (a flood, or one failed authentication too many): no answer
        return None
    return result


def _common_checks(v: list[str], snap, edge, method: str) -> bool:
    requests, port = v[F_REQUESTS], v[F_SRC_PORT]
    return admitted(edge, snap, v[F_SRC_IP], v[F_BANNED], v[F_USER_AGENT], wire.number(requests)) and checked(
        edge, snap, v[F_SRC_IP], wire.number(port), method, v[F_CALL_ID]
    )


def admitted(edge, snap, ip: str, banned: str, user_agent: str, requests: int) -> bool:
    """The edge's verdict on a request (every request, first): False — banned, a scanner or a flood, dropped without a
    word."""
    if edge.admit(ip, banned, user_agent, snap, requests):
        return True
    apply.drop()
    return False


def checked(edge, snap, ip: str, port: int, method: str, call_id: str) -> bool:
    """The sanity checks and Max-Forwards (every request, after the edge and the malformed-input check): False — the
    request got its answer (sanity's 400/420/505, or 483) or its deliberate drop."""
    if not read.sane():  # malformed: answered (400, 420, 505) by sanity
        edge.insane(ip, port, method, call_id, snap)
        apply.drop()
        return False
    if not apply.count_hop():
        apply.reply(483, "Too Many Hops")
        return False
    return True
