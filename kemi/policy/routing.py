"""Where a request goes: the routing decisions for REGISTER and for new calls.

Pure functions of (facts, snapshot). The shell has already checked digest credentials
(the result is in `facts.auth`); everything else is decided here, with a trace.
"""

from __future__ import annotations

import time

from .auth import challenge_realm, find_account
from .decision import (
    Action,
    CallParty,
    Challenge,
    Decision,
    GroupStep,
    Register,
    Reject,
    RouteToGroup,
    RouteToTrunk,
    RouteToUser,
    ToIvr,
    TrunkHop,
)
from .facts import AuthResult, RequestFacts
from . import features, fraud, hunting, ivr, voicemail
from .hunting import Group
from .forwarding import MAX_CHAIN, ForwardRule, first_applicable
from .live import QUIET, LiveView
from .location import geolocation_headers, pidf_lo
from .media import encryption_refusal
from .numbering import (
    CLIR_PREFIX,
    DestClass,
    Destination,
    Plan,
    classify,
    clean,
    country,
    is_emergency,
    is_sos_urn,
    permits,
    primary_emergency,
    short_number,
    to_e164,
)
from .snapshot import Snapshot, Tenant, User

# Methods that start something a user is called for (routed like a call).
ROUTABLE_INITIAL = frozenset({"INVITE", "MESSAGE", "OPTIONS", "INFO", "NOTIFY", "REFER", "UPDATE"})
ALLOWED = (
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "MESSAGE",
    "INFO",
    "NOTIFY",
    "REFER",
    "UPDATE",
    "SUBSCRIBE",  # message waiting only (kemi.policy.mwi)
)


def unsupported_method(method: str) -> Reject | None:
    """A new request with a method this node does not serve (e.g. SUBSCRIBE, PUBLISH): 405 with Allow."""
    if method in ROUTABLE_INITIAL or method in ("REGISTER", "ACK"):
        return None
    return Reject(405, "Method Not Allowed", f"{method} is not served here", headers=("Allow: " + ", ".join(ALLOWED),))


ROUTABLE_SCHEMES = ("sip", "sips", "tel")
# transports whose messages are framed by Content-Length alone (WebSocket frames each message itself, RFC 7118)
STREAM_TRANSPORTS = ("tcp", "tls", "sctp")


def malformed(ruri: str, parsed: bool, proto: str, content_length: str) -> Reject | None:
    """What the node answers itself before anything else reads the request: a Request-URI scheme it cannot route (416,
    RFC 3261 8.2.2.1) or a Request-URI of a routable scheme that does not parse (400); a request over a stream
    transport without Content-Length (400, RFC 3261 18.3 — the body's end cannot be known). `parsed`: Kamailio's URI
    parser accepted `ruri`. The rest of the syntax is Kamailio's sanity module's (docs/security.md)."""
    if parsed and proto == "udp" and ruri.startswith(("sip:", "sips:", "tel:")):
        return None  # the ordinary request: nothing to look at
    if parsed and is_sos_urn(ruri):
        return None  # an emergency call by URN (RFC 5031): routed like its country's emergency number
    scheme = ruri.partition(":")[0].lower() if ":" in ruri else ""
    if scheme and scheme not in ROUTABLE_SCHEMES and scheme.isascii() and scheme.isalnum():
        return Reject(416, "Unsupported URI Scheme", f"cannot route {scheme[:20]} URIs; sip, sips and tel are routed")
    if not parsed or not scheme:
        return Reject(400, "Bad Request-URI", "the Request-URI does not parse")
    if not content_length and proto.lower() in STREAM_TRANSPORTS:
        return Reject(400, "Missing Content-Length", f"Content-Length is mandatory over {proto.upper()}")
    return None


# Emergency calls (TRK-08, "Röchelruf": a caller who cannot speak) are never ended by the node's own timers: the
# emergency centre rings as long as it takes, and the call lasts until one side hangs up (a week bounds a lost BYE).
EMERGENCY_RING_S = 600
EMERGENCY_LIFETIME_S = 7 * 86400

SESSION_GRACE_S = 32  # RFC 4028 10: the refresh (or the BYE) comes at the latest min(32, SE/3) s before the end


def session_lifetime(session_expires: str, call_max_s: int, emergency: bool = False) -> int | None:
    """RFC 4028 session timers: a call (INVITE, re-INVITE or UPDATE) whose Session-Expires says how long it lives
    without
    a refresh lives that long plus a grace (then the node ends it, as a lost BYE), never past `call_max_s`. None: no
    (valid) Session-Expires — the call keeps the lifetime it has. Values below RFC 4028's minimum of 90 s count as 90.
    An emergency call lives EMERGENCY_LIFETIME_S whatever it says (TRK-08)."""
    if emergency:
        return EMERGENCY_LIFETIME_S
    value = session_expires.partition(";")[0].strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        return None
    return min(max(int(value), 90) + SESSION_GRACE_S, call_max_s)


# Option-tags this node supports as the UAS of a REGISTER (RFC 3261 8.2.2.3): none — no Path, outbound or GRUU.
REGISTER_SUPPORTED: frozenset[str] = frozenset()


def unsupported_require(method: str, require: str, supported: frozenset[str] = REGISTER_SUPPORTED) -> Reject | None:
    """A REGISTER (answered here, not relayed) whose Require names extensions this node does not support: 420 with
    Unsupported listing them (RFC 3261 8.2.2.3). Other requests are relayed: their Require is the far end's business."""
    if method != "REGISTER" or not require:
        return None
    tags = [t.strip() for t in require.split(",")]
    missing = [t for t in dict.fromkeys(tags) if t and t.lower() not in supported]
    if not missing:
        return None
    listed = ", ".join(missing)[:500]
    return Reject(420, "Bad Extension", f"extension not supported: {listed}", headers=(f"Unsupported: {listed}",))


def should_fail_over(code: int, cancelled: bool) -> bool:
    """A trunk's final answer that sends the call to the next trunk: server errors and timeouts."""
    return not cancelled and (code == 408 or 500 <= code < 600)


_CHALLENGE_WHY = {
    AuthResult.NONE: "no credentials",
    AuthResult.STALE: "stale nonce",
    AuthResult.FAILED: "wrong credentials",
}


def trunk_credentials(snapshot: Snapshot, trunk_name: str, already_answered: str | None) -> tuple[str, str, str] | None:
    """A carrier's 401/407: the (user, password, realm) to answer with — once per trunk and call, so
    wrong credentials end in the carrier's refusal, not a loop. None: pass the challenge's failure on."""
    if already_answered == trunk_name:
        return None
    trunk = next((t for t in snapshot.trunks if t.name == trunk_name), None)
    return trunk.auth if trunk is not None else None


def decide_register(facts: RequestFacts, snapshot: Snapshot) -> Decision:
    """`register_action` with the reason in words (route.simulate, logs)."""
    action = register_action(snapshot, facts.to_host, facts.auth, facts.auth_user, facts.auth_realm, facts.transport)
    if isinstance(action, Register):
        why = "REGISTER accepted for " + action.aor
    elif isinstance(action, Reject) and action.code == 403 and action.warning.startswith("TLS required"):
        why = f"REGISTER over {facts.transport.upper()} refused: the account requires TLS"
    elif isinstance(action, Reject):
        why = f"REGISTER for unknown domain {facts.to_host!r}"
    elif facts.auth is AuthResult.OK:  # verified against an account that vanished since
        why = "account no longer exists"
    else:
        why = "REGISTER challenged in realm " + action.realm + ": " + _CHALLENGE_WHY[facts.auth]
    return Decision(action, (why,), counts_as_call=False)


def register_action(
    snapshot: Snapshot, to_host: str, auth: AuthResult, auth_user: str, auth_realm: str, transport: str = "udp"
) -> Register | Challenge | Reject:
    """What a REGISTER gets: 403 for a domain not served here, a challenge in the To domain's realm unless its
    credentials were checked and its account still exists, 403 when its account requires TLS and it came otherwise,
    else its binding saved. The one decision for a REGISTER: the general request route asks it through
    `decide_register`, the ordinary REGISTER's straight path directly."""
    tenant = snapshot.tenant_for_domain(to_host)
    if tenant is None or not tenant.enabled:
        return Reject(403, "Forbidden", f"'{to_host}' is not a SIP domain served here")
    if auth is AuthResult.OK:
        acc = snapshot.active_accounts.get((auth_user, auth_realm.lower()))  # find_account, inline: every REGISTER
        if acc is not None:
            if acc.tls or tenant.tls:
                refused = encryption_refusal(transport, "", "REGISTER", True, False)
                if refused is not None:
                    return Reject(*refused)
            return Register(acc.aor, acc.tenant_id, acc.user_id)
    return Challenge(to_host.lower() or snapshot.default_realm, False)


def needs_credentials(snapshot: Snapshot, src_ip: str) -> bool:
    """Whether a new request without credentials from this source is challenged (`decide_initial` says so, whatever it
    asks for: tested): it is neither a carrier's trunk nor a trusted source. The INVITE's straight path
    (kemi/shell/ordinary.py) asks before it does anything."""
    return snapshot.trunk_for_source(src_ip) is None and not snapshot.is_trusted(src_ip)


def _caller(facts: RequestFacts, snapshot: Snapshot) -> tuple[CallParty | None, Decision | None, str]:
    """Identify the caller: an authenticated account, a carrier's trunk, or a trusted source. Else a challenge."""
    if facts.auth is AuthResult.OK:
        acc = find_account(snapshot, facts.auth_user, facts.auth_realm)
        if acc is not None:
            user = snapshot.users[acc.user_id]
            number = user.extension or acc.username
            return (
                CallParty(acc.tenant_id, acc.user_id, number),
                None,
                f"caller authenticated as {acc.aor} (user {user.id}, extension {number})",
            )
    if facts.auth is AuthResult.NONE:
        trunk = snapshot.trunk_for_source(facts.src_ip)
        if trunk is not None:
            digits = clean(facts.from_user)
            e164 = to_e164(digits, Plan(trunk.region), short_is_local=False) if digits else None
            shown = e164 or "anonymous"
            return (
                CallParty(None, None, shown, trunk=trunk.name),
                None,
                f"call from the public network via trunk {trunk.name}, caller {shown}",
            )
        if snapshot.is_trusted(facts.src_ip):
            return CallParty(None, None, facts.from_user), None, f"caller {facts.src_ip} is a trusted source"
    realm = challenge_realm(facts, snapshot)
    return (
        None,
        Decision(Challenge(realm, proxy=True), (f"{facts.method} challenged in realm {realm}",), counts_as_call=False),
        "",
    )


def account_policy(snapshot: Snapshot, acc) -> tuple[bool, bool]:
    """(TLS required, SRTP required) for an account: its own or its tenant's."""
    tenant = snapshot.tenants.get(acc.tenant_id)
    return acc.tls or bool(tenant and tenant.tls), acc.srtp or bool(tenant and tenant.srtp)


def callee_srtp(snapshot: Snapshot, action) -> bool:
    """Whether the callee's leg is offered SRTP: a user whose tenant requires it or every one of whose devices does;
    a hunt group of such a tenant. Trunks and the media server: plain RTP (RTPengine bridges)."""
    if isinstance(action, RouteToUser):
        tenant = snapshot.tenants.get(action.tenant_id)
        if tenant is not None and tenant.srtp:
            return True
        flags = [acc.srtp for acc in (snapshot.account_for_aor(aor) for aor in action.aors) if acc is not None]
        return bool(flags) and all(flags)
    if isinstance(action, RouteToGroup):
        tenant = snapshot.tenants.get(action.tenant_id)
        return bool(tenant and tenant.srtp)
    return False


def callee_web(snapshot: Snapshot, action) -> bool:
    """Whether a device the call may ring is a browser (a WebRTC account): its branches are then offered one by one."""
    if isinstance(action, RouteToUser):
        aors = action.aors
    elif isinstance(action, RouteToGroup):
        aors = tuple(aor for step in action.steps for _user, member_aors in step.members for aor in member_aors)
    else:
        return False
    return any(acc is not None and acc.webrtc for acc in map(snapshot.account_for_aor, aors))


def _encryption(facts: RequestFacts, snapshot: Snapshot, caller: CallParty) -> tuple[int, str, str] | None:
    """An authenticated caller's request its encryption policy refuses (kemi.policy.media.encryption_refusal) — never
    an emergency call, which no policy of ours may stop."""
    if caller.user_id is None or facts.auth is not AuthResult.OK:
        return None
    acc = find_account(snapshot, facts.auth_user, facts.auth_realm)
    if acc is None:
        return None
    tls, srtp = account_policy(snapshot, acc)
    if not (tls or srtp):
        return None
    refused = encryption_refusal(facts.transport, facts.offer, facts.method, tls, srtp)
    if refused is None:
        return None
    user = snapshot.users.get(acc.user_id)
    digits = clean(facts.ruri_user)
    if is_sos_urn(facts.ruri_user) or (user is not None and digits is not None and is_emergency(digits, user.plan)):
        return None
    return refused


def decide_initial(facts: RequestFacts, snapshot: Snapshot, now: float = 0.0, live: LiveView = QUIET) -> Decision:
    """A new call (or other dialog-less request): to a user of this node, or out to the public network.

    `now` (epoch seconds) is the time time plans are read at; `live` answers users' status and
    whether they are on a call. The caller passes both.
    """
    caller, early, why = _caller(facts, snapshot)
    if early is not None:
        return early
    assert caller is not None
    trace = [why]
    refused = _encryption(facts, snapshot, caller)
    if refused is not None:
        trace.append(refused[2])
        return Decision(Reject(*refused), tuple(trace), caller)
    if caller.user_id is not None and facts.method == "INVITE" and is_sos_urn(facts.ruri_user):
        user = snapshot.users[caller.user_id]
        number = primary_emergency(user.plan.region)
        trace.append(f"{facts.ruri_user[:40]} (RFC 5031): the emergency number {number} of {user.plan.region}")
        return _emergency(snapshot, snapshot.tenants[user.tenant_id], caller, user, number, trace, now)
    if caller.trunk is not None:
        return _from_trunk(facts, snapshot, caller, trace, now, live)

    ruri_tenant = snapshot.tenant_for_domain(facts.ruri_host)
    if ruri_tenant is not None:
        tenant_id = ruri_tenant.id
    elif facts.to_myself and caller.tenant_id is not None:
        tenant_id = caller.tenant_id
    else:
        trace.append(f"request domain {facts.ruri_host!r} is not served here")
        return Decision(
            Reject(403, "Forbidden", f"relaying to '{facts.ruri_host}' is not allowed"), tuple(trace), caller
        )
    if caller.tenant_id is not None and caller.tenant_id != tenant_id:
        trace.append(f"caller tenant {caller.tenant_id} may not call into tenant {tenant_id} directly")
        return Decision(
            Reject(403, "Forbidden", "calls to another company go through its public number"), tuple(trace), caller
        )
    tenant = snapshot.tenants[tenant_id]
    if not tenant.enabled:
        trace.append(f"tenant {tenant.name} is disabled")
        return Decision(Reject(403, "Forbidden", "this company's service is disabled"), tuple(trace), caller)
    if caller.tenant_id is None:
        caller = CallParty(tenant_id, None, caller.number)

    dialled = facts.ruri_user
    caller_user = snapshot.users.get(caller.user_id) if caller.user_id is not None else None
    if caller_user is not None and facts.method == "INVITE":
        digits = clean(dialled)
        if digits is not None and is_emergency(digits, caller_user.plan):
            return _emergency(snapshot, tenant, caller, caller_user, digits, trace, now)
    if caller_user is not None:
        lock = fraud.lock_refusal(
            snapshot.locks_for(tenant_id, caller_user.id), None
        )  # level 4: no calls at all (emergency passed above)
        if lock is not None:
            trace.append(f"the user is locked entirely by fraud control (lock {lock.id}): {lock.reason}")
            return Decision(
                Reject(403, "Forbidden", "this account is locked by fraud control"),
                tuple(trace),
                caller,
                CallParty(tenant_id, None, dialled),
            )
    if (
        caller_user is not None
        and facts.method == "INVITE"
        and dialled[:1] in ("*", "%")
        and not dialled.startswith(CLIR_PREFIX)
    ):
        return _feature_code(snapshot, caller, caller_user, tenant_id, dialled, trace)
    group_id = snapshot.group_extensions.get((tenant_id, dialled)) if snapshot.group_extensions else None
    if group_id is not None and facts.method == "INVITE":
        return _to_group(
            snapshot, tenant_id, group_id, caller, trace, live, CallParty(tenant_id, None, dialled), now=now
        )
    box_id = snapshot.mailbox_extensions.get((tenant_id, dialled)) if snapshot.mailbox_extensions else None
    if box_id is not None and facts.method == "INVITE":
        return _mailbox_extension(snapshot, tenant, box_id, caller, dialled, trace)
    menu_id = snapshot.ivr_extensions.get((tenant_id, dialled)) if snapshot.ivr_extensions else None
    if menu_id is not None and facts.method == "INVITE":
        trace.append(f"dialled {dialled}: the extension of IVR menu {menu_id}")
        return Decision(
            to_ivr(snapshot, tenant, menu_id, now, trace, caller),
            tuple(trace),
            caller,
            CallParty(tenant.id, None, dialled),
        )
    user_id = snapshot.extensions.get((tenant_id, dialled))
    if user_id is None and caller_user is not None and facts.method == "INVITE":
        return _outbound(facts, snapshot, tenant, caller, caller_user, trace, now, live)
    return _to_user(snapshot, tenant_id, user_id, dialled, caller, trace, f"in tenant {tenant.name}", now, live)


def _caller_keys(caller: CallParty, caller_user: User | None) -> set[str]:
    """How VIP and block lists may name this caller: u<user id>, the number they call from, their own number."""
    return {
        k
        for k in (
            f"u{caller.user_id}" if caller.user_id is not None else "",
            caller.number,
            caller_user.number if caller_user is not None else "",
        )
        if k
    }


def _to_group(
    snapshot: Snapshot,
    tenant_id: int,
    group_id: int,
    caller: CallParty,
    trace: list[str],
    live: LiveView,
    callee: CallParty,
    depth: int = 0,
    now: float = 0.0,
    priority: int = 0,
) -> Decision:
    """A call to a hunt group: whom to offer it to, step by step, from the members' live states."""
    action = _group_action(snapshot, tenant_id, group_id, caller, trace, live, depth, now, priority)
    return Decision(action, tuple(trace), caller, callee)


VIP_PRIORITY = 10  # a VIP caller waits ahead of every call without it (dialled-number priorities are 0..9)


def _agent_states(snapshot: Snapshot, group: Group, live: LiveView) -> hunting.GroupLive:
    members = group.all_members or tuple(dict.fromkeys(m for r in group.rings for m in r.members))
    now_live = live.agents(group.id, members, len(group.rings))
    if snapshot.no_device:
        states = now_live.states
        for m in snapshot.no_device.intersection(members):
            st = states.get(m, hunting.FREE)
            if st.registered:
                states[m] = st._replace(registered=False)
    return now_live


def _group_action(
    snapshot: Snapshot,
    tenant_id: int,
    group_id: int,
    caller: CallParty,
    trace: list[str],
    live: LiveView,
    depth: int,
    now: float = 0.0,
    priority: int = 0,
):
    group = snapshot.groups.get(group_id)
    if group is None or depth > 5:
        trace.append(f"group {group_id} cannot take the call")
        return Reject(480, "Temporarily Unavailable", "the group cannot take the call")
    glive = _agent_states(snapshot, group, live)
    states, waiting = glive.states, glive.waiting
    external = caller.user_id is None

    # Who is calling (ACD-08, ACD-11, ACD-13): block list, anonymous callers, VIPs wait ahead.
    vip = False
    if group.vip or group.blocked:
        keys = _caller_keys(caller, snapshot.users.get(caller.user_id) if caller.user_id is not None else None)
        hit = next((k for k in keys if k in group.blocked), None) if group.blocked else None
        if hit is not None:
            trace.append(f"caller {hit} is on the block list of group {group.id}")
            assert group.blocked is not None
            divert = group.blocked[hit]
            target = (
                _group_forward(snapshot, tenant_id, group, divert, caller, trace, live, depth, now)
                if divert is not None
                else None
            )
            return target or Reject(603, "Decline", "this group does not take calls from this number")
        vip = bool(group.vip and not group.vip.isdisjoint(keys))
        if vip:
            priority += VIP_PRIORITY
            trace.append("caller is a VIP of this group: waits ahead of other callers")
    if external and group.anonymous == "reject" and caller.number in ("", "anonymous"):
        trace.append(f"anonymous caller; group {group.id} rejects anonymous calls")
        return Reject(433, "Anonymity Disallowed", "this group does not take calls without a number")

    # The group's own status and forwarding: night service, holidays, time-controlled routing.
    if glive.status != "online":
        trace.append(f"group {group.id} is {glive.status}")
        if glive.status in ("dnd", "away"):
            rule = first_applicable(group.forwarding, glive.status, external, snapshot.time_plans, now, trace, vip)
            target = (
                _group_forward(snapshot, tenant_id, group, rule, caller, trace, live, depth, now)
                if rule is not None
                else None
            )
            if target is not None:
                return target
            if glive.status == "dnd":
                return Reject(480, "Temporarily Unavailable", f"group {group.name} is closed")
    if group.forwarding:
        rule = first_applicable(group.forwarding, "unconditional", external, snapshot.time_plans, now, trace, vip)
        target = (
            _group_forward(snapshot, tenant_id, group, rule, caller, trace, live, depth, now)
            if rule is not None
            else None
        )
        if target is not None:
            return target

    hp = hunting.plan(group, states, snapshot.skills, glive.pointers, waiting)
    trace.extend(hp.trace)
    present = _presentation(snapshot, group, trace)
    if group.queue_s and not (group.max_waiting and waiting >= group.max_waiting):
        queued = RouteToGroup(tenant_id, group.id, (), group.wrapup_s, group.queue_s, priority, present)
        if waiting:
            trace.append(
                f"{waiting} call(s) already waiting: this one waits its turn (priority {priority}), at most "
                f"{group.queue_s} s"
            )
            return queued
        if hp.overflow and hunting.anyone_present(group, states):
            trace.append(f"nobody free: the caller waits (priority {priority}) at most {group.queue_s} s for a member")
            return queued
    if hp.overflow:
        overflow = (
            _group_forward(snapshot, tenant_id, group, group.overflow, caller, trace, live, depth, now)
            if group.overflow
            else None
        )
        return overflow or Reject(480, "Temporarily Unavailable", f"no member of group {group.name} is available")
    steps = _steps(snapshot, group, hp)
    if group.callback_window_s and external and caller.number.startswith("+"):
        known = live.callback(caller.number)  # ACD: callback recognition
        if known is not None and known[1] >= now and known[0] in states and known[0] in snapshot.users:
            agent = known[0]
            ok, why = hunting.available(states.get(agent, hunting.FREE), group.rings[0])
            if ok and snapshot.users[agent].aors:
                first_ring = group.rings[0].member_s
                trace.append(
                    f"callback: user {agent} called {caller.number} recently; offered first for {first_ring} s"
                )
                steps = (GroupStep(((agent, snapshot.users[agent].aors),), first_ring),) + steps
            else:
                trace.append(f"callback: user {agent} called {caller.number} recently but is {why}")
    # the overflow target is decided when the call overflows (group_overflow), on the live state of then
    return RouteToGroup(tenant_id, group.id, steps, group.wrapup_s, group.queue_s, priority, present)


def _presentation(snapshot: Snapshot, group: Group, trace: list[str]) -> tuple[str, str] | None:
    """Whom the members see calling (ACD-19): the caller (None), the group, or nobody (CLIR)."""
    if group.presentation == "group":
        domain = snapshot.tenants[group.tenant_id].domain
        trace.append(f"members see the group ({group.number or group.extension}) as the caller")
        return group.name, f"sip:{group.number or group.extension}@{domain}"
    if group.presentation == "clir":
        trace.append("members see an anonymous caller")
        return "Anonymous", "sip:anonymous@anonymous.invalid"
    return None


def _steps(snapshot: Snapshot, group: Group, hp: hunting.HuntPlan) -> tuple[GroupStep, ...]:
    users, rings, devices = snapshot.users, group.rings, group.devices or {}
    return tuple(
        GroupStep(
            tuple((m, devices.get(m) or users[m].aors) for m in st.members),
            st.seconds,
            st.ring if rings[st.ring].strategy == "circular" else -1,
        )
        for st in hp.steps
    )


def offer_waiting(
    snapshot: Snapshot, group_id: int, live: LiveView, trace: list[str] | None = None
) -> RouteToGroup | None:
    """A call waiting in a group: its offer now, None while nobody is free."""
    group = snapshot.groups.get(group_id)
    if group is None:
        return None
    glive = _agent_states(snapshot, group, live)
    hp = hunting.plan(group, glive.states, snapshot.skills, glive.pointers)
    if hp.overflow:
        return None
    if trace is not None:
        trace.extend(hp.trace[1:-1])
    return RouteToGroup(group.tenant_id, group.id, _steps(snapshot, group, hp), group.wrapup_s, group.queue_s)


MAX_OVERFLOWS = 5  # overflows one call may go through: a chain of targets ends here


def group_overflow(
    snapshot: Snapshot,
    group_id: int,
    caller: CallParty,
    live: LiveView,
    now: float,
    trace: list[str],
    overflows: int = 1,
):
    """Nobody in the group answered, or a waiting call's time is up: where the call goes now (None: nowhere, 480).
    `overflows`: how many this call has gone through, this one included."""
    if overflows > MAX_OVERFLOWS:
        trace.append(f"overflowed {MAX_OVERFLOWS} times: no further")
        return None
    group = snapshot.groups.get(group_id)
    if group is None or group.overflow is None:
        return None
    return _group_forward(snapshot, group.tenant_id, group, group.overflow, caller, trace, live, 0, now)


def _group_forward(
    snapshot: Snapshot,
    tenant_id: int,
    group: Group,
    rule,
    caller: CallParty,
    trace: list[str],
    live: LiveView,
    depth: int,
    now: float,
):
    """Where a group's forwarding, overflow or block-list divert leads: another group, a user, a public number."""
    if rule.target_group is not None:
        trace.append(f"{rule.kind}: to group {rule.target_group}")
        return _group_action(
            snapshot, tenant_id, rule.target_group, caller, trace, live, depth + 1, now
        )  # no callback preference there
    if rule.target_mailbox is not None:
        return _to_mailbox(snapshot, tenant_id, rule, trace, caller)
    owner = next((snapshot.users[m] for r in group.rings for m in r.members if m in snapshot.users), None)
    if owner is None:
        return None
    return _forward_target(snapshot, tenant_id, owner, rule, caller, trace, now)


def _feature_code(
    snapshot: Snapshot, caller: CallParty, user: User, tenant_id: int, dialled: str, trace: list[str]
) -> Decision:
    parsed = features.parse(dialled)
    callee = CallParty(tenant_id, None, dialled)
    if parsed is None:
        trace.append(f"{dialled!r} is not a feature code")
        return Decision(Reject(404, "Not Found", f"{dialled} is not a feature code"), tuple(trace), caller, callee)
    kind, value = parsed
    if kind == "voicemail":  # one's own mailbox, to listen to (the PIN first)
        box = snapshot.mailbox_of_user(user.id)
        if box is None:
            trace.append(f"user {user.id} has no mailbox that takes calls")
            return Decision(Reject(404, "Not Found", "you have no mailbox"), tuple(trace), caller, callee)
        tenant = snapshot.tenants.get(tenant_id)
        action = voicemail.listen(tenant_id, box.id, tenant.language if tenant else "")
        trace.append(f"{dialled}: listening to {voicemail.describe(action)}")
        return Decision(action, tuple(trace), caller, callee)
    if kind in ("group_login", "group_logout"):
        gid = snapshot.group_extensions.get((tenant_id, value))
        group = snapshot.groups.get(gid) if gid is not None else None
        if group is None or not any(user.id in r.members for r in group.rings):
            trace.append(f"{value} is not a hunt group user {user.id} belongs to")
            return Decision(
                Reject(404, "Not Found", f"{value} is not a group you belong to"), tuple(trace), caller, callee
            )
        value = str(group.id)
    elif kind == "profile" and value != "0" and int(value) not in user.profile_codes:
        trace.append(f"user {user.id} has no profile {value}")
        return Decision(Reject(404, "Not Found", f"you have no profile {value}"), tuple(trace), caller, callee)
    elif kind == "forward_on":
        refusal = _forward_target_refusal(snapshot, tenant_id, user, value)
        if refusal is not None:
            trace.append(f"forwarding to {value!r} refused: {refusal.warning}")
            return Decision(refusal, tuple(trace), caller, callee)
    trace.append(f"feature code {dialled}: {kind}" + (f" {value}" if value else "") + f" for user {user.id}")
    return Decision(features.FeatureCode(user.id, kind, value, features.REPLIES[kind]), tuple(trace), caller, callee)


def _forward_target_refusal(snapshot: Snapshot, tenant_id: int, user: User, target: str) -> Reject | None:
    """Why a forwarding target set from the phone (*21) cannot be used, or None: an extension of another
    user of the tenant, or a number the user may call (the same barring and permission as dialling it)."""
    other = snapshot.extensions.get((tenant_id, target))
    if other is not None:
        return Reject(403, "Forbidden", "you cannot forward to yourself") if other == user.id else None
    digits = clean(target)
    e164 = to_e164(digits, user.plan) if digits else None
    if e164 is None:
        return Reject(484, "Address Incomplete", f"{target} is neither an extension nor a complete number")
    dest = classify(e164, user.plan)
    if dest.barred:
        return Reject(403, "Forbidden", dest.barred)
    if (dest.directory and not snapshot.tenants[tenant_id].allow_directory) or not permits(user.outbound, dest.cls):
        return Reject(403, "Forbidden", f"{dest.cls.value} numbers are not permitted for you")
    return None


def _to_user(
    snapshot: Snapshot,
    tenant_id: int,
    user_id: int | None,
    dialled: str,
    caller: CallParty,
    trace: list[str],
    where: str,
    now: float = 0.0,
    live: LiveView = QUIET,
) -> Decision:
    callee_none = CallParty(tenant_id, None, dialled)
    user = snapshot.users.get(user_id) if user_id is not None else None
    if user is None or not user.enabled:
        trace.append(f"dialled {dialled!r}: no such extension {where}")
        return Decision(
            Reject(404, "Not Found", f"extension {dialled} does not exist"), tuple(trace), caller, callee_none
        )
    trace.append(
        f"dialled {dialled} -> extension of user {user.id} ({user.name})"
        if not dialled.startswith("+")
        else f"dialled {dialled} -> user {user.id} ({user.name})"
    )
    callee = CallParty(tenant_id, user.id, dialled)
    external = caller.user_id is None
    caller_user = snapshot.users.get(caller.user_id) if caller.user_id is not None else None
    agents = snapshot.agents
    track = (
        (caller_user.id,)
        if caller_user is not None and (not caller_user.call_waiting or caller_user.id in agents)
        else ()
    )

    def done(action) -> Decision:
        if isinstance(action, RouteToUser) and (
            not snapshot.users[action.user_id].call_waiting or action.user_id in agents
        ):
            action = action._replace(track=track + (action.user_id,))
        elif isinstance(action, (RouteToUser, RouteToTrunk)) and track:
            action = action._replace(track=track)
        return Decision(action, tuple(trace), caller, callee)

    # Who is calling: VIP (TEAM-10) and priority override (TEAM-08) ring through DND and forwarding.
    keys = _caller_keys(caller, caller_user) if (user.vip or user.blocked) else ()
    vip = bool(user.vip and not user.vip.isdisjoint(keys))
    priority = caller_user is not None and caller_user.priority
    if vip or priority:
        trace.append("caller is " + ("a VIP of this user" if vip else "allowed to override (priority)"))

    # Screening (ACD-08, ACD-11): block list, anonymous callers.
    if user.blocked:
        hit = next((k for k in keys if k in user.blocked), None)
        if hit is not None:
            divert = user.blocked[hit]
            trace.append(f"caller {hit} is on the block list of user {user.id}")
            action = (
                _forward_target(snapshot, tenant_id, user, divert, caller, trace, now) if divert is not None else None
            )
            return done(action or Reject(603, "Decline", "the callee does not take calls from this number"))
    if external and user.anonymous == "reject" and caller.number in ("", "anonymous"):
        trace.append(f"anonymous caller; user {user.id} rejects anonymous calls")
        return done(Reject(433, "Anonymity Disallowed", "the callee does not take calls without a number"))

    # Boss-secretary (TEAM-07): calls go to the secretary, who puts them through.
    if user.secretary is not None and caller.user_id != user.secretary and not (vip or priority):
        sec = snapshot.users.get(user.secretary)
        if sec is not None and sec.enabled and sec.aors and sec.tenant_id == tenant_id:
            trace.append(f"boss-secretary: calls to user {user.id} go to the secretary, user {sec.id} ({sec.name})")
            return done(RouteToUser(tenant_id, sec.id, sec.aors))
        trace.append(f"boss-secretary: secretary user {user.secretary} cannot be rung; ringing the boss")

    # Status (TEL-13, TEL-14): DND and away, with status-based forwarding.
    status = live.status(user.id)
    if status != "online":
        trace.append(f"user {user.id} is {status}")
        if status == "dnd" and (vip or priority):
            trace.append("DND does not apply to this caller")
        elif status in ("dnd", "away") and not priority:
            rule = (
                first_applicable(user.forwarding, status, external, snapshot.time_plans, now, trace, vip)
                if user.forwarding
                else None
            )
            target = _forward_target(snapshot, tenant_id, user, rule, caller, trace, now) if rule is not None else None
            if target is not None:
                return done(target)
            if status == "dnd":
                return done(Reject(486, "Busy Here", "the callee does not want to be disturbed"))
        if status == "unreachable":
            rule = (
                first_applicable(user.forwarding, "unreachable", external, snapshot.time_plans, now, trace, vip)
                if user.forwarding
                else None
            )
            target = _forward_target(snapshot, tenant_id, user, rule, caller, trace, now) if rule is not None else None
            return done(target or Reject(480, "Temporarily Unavailable", "the callee is unreachable"))

    if not user.forwarding and user.call_waiting:
        if not user.aors:
            trace.append("user has no SIP account")
            return done(Reject(480, "Temporarily Unavailable", "callee has no SIP account"))
        trace.append("ring all devices of " + ", ".join(user.aors))
        return done(RouteToUser(tenant_id, user.id, user.aors))

    chain = [user.id]
    while not priority:  # unconditional forwarding, followed across users
        rule = first_applicable(user.forwarding, "unconditional", external, snapshot.time_plans, now, trace, vip)
        if rule is None:
            break
        if rule.target_user is None:
            action = _forward_target(snapshot, tenant_id, user, rule, caller, trace, now)
            if action is not None:
                return done(action)
            break
        if rule.target_user in chain:
            trace.append(
                f"forwarding loop ({' -> '.join(map(str, chain + [rule.target_user]))}): stopped, ringing user "
                f"{user.id}"
            )
            break
        if len(chain) >= MAX_CHAIN:
            trace.append(f"forwarded through {len(chain)} users: chain cut, ringing user {user.id}")
            break
        nxt = snapshot.users.get(rule.target_user)
        if nxt is None or not nxt.enabled or nxt.tenant_id != tenant_id:
            trace.append(f"{rule.describe()}: target is not an active user of this tenant; not forwarded")
            break
        trace.append(f"forwarded unconditionally from user {user.id} to user {nxt.id} ({nxt.name})")
        chain.append(nxt.id)
        user = nxt

    def fallback(kind: str):
        if priority or not user.forwarding:
            return None, None
        rule = first_applicable(user.forwarding, kind, external, snapshot.time_plans, now, trace, vip)
        return (_forward_target(snapshot, tenant_id, user, rule, caller, trace, now), rule) if rule else (None, None)

    on_busy, _ = fallback("busy")
    if not user.call_waiting and live.busy(user.id):  # busy-on-busy (TEL-11)
        trace.append(f"user {user.id} is on a call and has no call waiting: busy")
        return done(on_busy or Reject(486, "Busy Here", "the callee is on another call"))
    on_no_answer, na_rule = fallback("no_answer")
    on_unreachable, _ = fallback("unreachable")
    if not user.aors:
        trace.append(f"user {user.id} has no SIP account")
        if on_unreachable is not None:
            trace.append("unreachable: forwarded")
            return done(on_unreachable)
        return done(Reject(480, "Temporarily Unavailable", "callee has no SIP account"))
    trace.append(
        "ring all devices of "
        + ", ".join(user.aors)
        + (f" for {na_rule.timeout_s} s" if on_no_answer is not None else "")
    )
    return done(
        RouteToUser(
            tenant_id,
            user.id,
            user.aors,
            on_unreachable=on_unreachable or RouteToUser._field_defaults["on_unreachable"],
            on_busy=on_busy,
            on_no_answer=on_no_answer,
            no_answer_s=na_rule.timeout_s if on_no_answer is not None else 0,
        )
    )


def _mailbox_extension(
    snapshot: Snapshot, tenant: Tenant, box_id: int, caller: CallParty, dialled: str, trace: list[str]
) -> Decision:
    """A mailbox's own extension dialled (VM-09): its owner (the user, or a member of the group whose mailbox it is)
    listens, with the PIN; anyone else leaves a message (the unavailable greeting)."""
    box = snapshot.mailboxes[box_id]
    group = snapshot.groups.get(box.group_id) if box.group_id is not None else None
    owner = caller.user_id is not None and (
        caller.user_id == box.user_id or (group is not None and caller.user_id in group.all_members)
    )
    if owner:
        action = voicemail.listen(tenant.id, box.id, tenant.language)
        trace.append(f"dialled {dialled}: the extension of mailbox {box.id}, called by its owner: listening")
    else:
        action = voicemail.deposit(tenant.id, box.id, "unconditional", tenant.language, box.max_s)
        trace.append(f"dialled {dialled}: the extension of {voicemail.describe(action)}: leave a message")
    return Decision(action, tuple(trace), caller, CallParty(tenant.id, box.user_id, dialled))


def to_ivr(
    snapshot: Snapshot, tenant: Tenant, menu_id: int, now: float, trace: list[str], caller: CallParty | None = None
) -> ToIvr:
    """A call into an IVR menu (IVR-01): the menu, or the one its time plan names now, in the tenant's language."""

    def in_plan(plan_id: int) -> bool | None:
        plan = snapshot.time_plans.get(plan_id)
        return plan.active(now) if plan is not None else None

    entered, why = ivr.entry(snapshot.ivr_menus, menu_id, in_plan)
    if why:
        trace.append(why)
    menu = snapshot.ivr_menus[entered]
    return ToIvr(tenant.id, entered, menu.language or caller_language(tenant, caller))


def dial_extension(
    snapshot: Snapshot, tenant_id: int, dialled: str, caller: CallParty, now: float, live: LiveView, trace: list[str]
) -> Action | None:
    """Where a call to one of the tenant's extensions goes, as if the caller had dialled it (a user with their
    forwarding, a hunt group, a mailbox, another menu); None: no such extension (traced)."""
    tenant = snapshot.tenants.get(tenant_id)
    if tenant is None or not tenant.enabled:
        trace.append(f"tenant {tenant_id} is not served now")
        return None
    group_id = snapshot.group_extensions.get((tenant_id, dialled))
    if group_id is not None:
        return _to_group(
            snapshot, tenant_id, group_id, caller, trace, live, CallParty(tenant_id, None, dialled), now=now
        ).action
    box_id = snapshot.mailbox_extensions.get((tenant_id, dialled))
    if box_id is not None:
        box = snapshot.mailboxes[box_id]
        action = voicemail.deposit(tenant_id, box.id, "unconditional", caller_language(tenant, caller), box.max_s)
        trace.append(f"extension {dialled}: {voicemail.describe(action)}")
        return action
    menu_id = snapshot.ivr_extensions.get((tenant_id, dialled))
    if menu_id is not None:
        trace.append(f"extension {dialled}: IVR menu {menu_id}")
        return to_ivr(snapshot, tenant, menu_id, now, trace, caller)
    user_id = snapshot.extensions.get((tenant_id, dialled))
    if user_id is None:
        trace.append(f"extension {dialled} does not exist in tenant {tenant.name}")
        return None
    return _to_user(snapshot, tenant_id, user_id, dialled, caller, trace, f"in tenant {tenant.name}", now, live).action


def caller_language(tenant: Tenant | None, caller: CallParty | None) -> str:
    """The language a caller hears from this tenant (ACD-21: by their number when they call from the public
    network); '' : the node's."""
    if tenant is None:
        return ""
    external = caller is not None and caller.user_id is None
    return tenant.language_for(caller.number if caller is not None else "", external)


def menu_number(
    snapshot: Snapshot, tenant_id: int, e164: str, caller: CallParty, now: float, live: LiveView, trace: list[str]
) -> Action | None:
    """An IVR menu's transfer to a public number (set by the company's admin, never by the caller): one of the company's
    own numbers goes where a call to it from outside goes (its user, group or menu); any other goes out through the
    company's trunks, within its fraud policy's destinations (its outbound class, no high-risk number) — the company's
    call, not a user's, so no user's limits apply — presenting the caller's number when they have one."""
    tenant = snapshot.tenants.get(tenant_id)
    if tenant is None:
        return None
    own = snapshot.numbers.get(e164)
    if own is not None and own.tenant_id == tenant_id:
        trace.append(f"{e164} is a number of this company")
        if own.ivr_id is not None and own.ivr_id in snapshot.ivr_menus:
            return to_ivr(snapshot, tenant, own.ivr_id, now, trace, caller)
        if own.group_id is not None:
            callee = CallParty(tenant_id, None, e164)
            return _to_group(snapshot, tenant_id, own.group_id, caller, trace, live, callee, now=now).action
        return _to_user(snapshot, tenant_id, own.user_id, e164, caller, trace, "(not routed)", now, live).action
    trunks = snapshot.trunks_for(tenant_id, e164)
    if not trunks:
        trace.append(f"no trunk carries {e164} for this company")
        return None
    dest = classify(e164, Plan(trunks[0].region))
    policy = snapshot.fraud_policy(tenant_id)
    if dest.barred or not permits(DestClass(policy.outbound), dest.cls) or fraud.high_risk(e164, policy):
        trace.append(f"{e164} ({dest.barred or dest.cls.value}) is not a destination this company may call")
        return None
    presented = caller.number if caller.number.startswith("+") else None
    trace.append(f"out to {e164} via {', '.join(t.name for t in trunks)}, presenting {presented or 'no number'}")
    return RouteToTrunk(tenant_id, e164, tuple(TrunkHop(t.name, t.uri(e164)) for t in trunks), presented, tenant.domain)


def _to_mailbox(
    snapshot: Snapshot, tenant_id: int, rule: ForwardRule, trace: list[str], caller: CallParty | None = None
):
    """A forwarding or overflow to a mailbox (VM-01): its greeting by the rule's kind, in the tenant's language."""
    box = snapshot.mailboxes.get(rule.target_mailbox or 0)
    if box is None or box.tenant_id != tenant_id:
        trace.append(f"{rule.describe()}: the mailbox takes no messages now; not forwarded")
        return None
    tenant = snapshot.tenants.get(tenant_id)
    action = voicemail.deposit(tenant_id, box.id, rule.kind, caller_language(tenant, caller), box.max_s)
    trace.append(f"{rule.kind} forwarding to {voicemail.describe(action)}")
    return action


def _forward_target(
    snapshot: Snapshot,
    tenant_id: int,
    user: User,
    rule: ForwardRule,
    caller: CallParty,
    trace: list[str],
    now: float = 0.0,
):
    """Where a forwarding rule leads: another user's devices, a mailbox, an IVR menu (a personal IVR), or a public
    number through the trunks."""
    if rule.target_mailbox is not None:
        return _to_mailbox(snapshot, tenant_id, rule, trace, caller)
    if rule.target_ivr is not None:
        menu = snapshot.ivr_menus.get(rule.target_ivr)
        tenant = snapshot.tenants.get(tenant_id)
        if menu is None or menu.tenant_id != tenant_id or tenant is None:
            trace.append(f"{rule.describe()}: the menu no longer exists; not forwarded")
            return None
        trace.append(f"{rule.kind} forwarding to IVR menu {menu.id}{f' ({menu.name})' if menu.name else ''}")
        return to_ivr(snapshot, tenant, menu.id, now, trace, caller)
    if rule.target_user is not None:
        target = snapshot.users.get(rule.target_user)
        if target is None or not target.enabled or target.tenant_id != tenant_id or not target.aors:
            trace.append(f"{rule.describe()}: target user cannot be rung; not forwarded")
            return None
        trace.append(f"{rule.kind} forwarding to user {target.id} ({target.name})")
        return RouteToUser(tenant_id, target.id, target.aors)
    e164 = rule.target_number or ""
    own = snapshot.numbers.get(e164)
    if own is not None and own.tenant_id == tenant_id and own.user_id is not None:
        target = snapshot.users.get(own.user_id)
        if target is not None and target.enabled and target.aors:
            trace.append(f"{rule.kind} forwarding to {e164}, a number of user {target.id}")
            return RouteToUser(tenant_id, target.id, target.aors)
    dest = classify(e164, user.plan)
    if (
        dest.barred
        or (dest.directory and not snapshot.tenants[tenant_id].allow_directory)
        or not permits(user.outbound, dest.cls)
    ):
        trace.append(
            f"{rule.describe()}: user {user.id} may not call {e164} ({dest.barred or dest.cls.value}); not forwarded"
        )
        return None
    policy = snapshot.fraud_policy(tenant_id)
    risky = fraud.high_risk(e164, policy) or (
        "" if permits(DestClass(policy.outbound), dest.cls) else f"{dest.cls.value} (not for this company)"
    )
    lock = fraud.lock_refusal(snapshot.locks_for(tenant_id, user.id), dest.cls.value)
    if risky or lock is not None:  # forwarding out is calling out, paid by the forwarding user
        trace.append(
            f"{rule.describe()}: "
            + (f"{risky} is not permitted" if risky or lock is None else f"fraud control lock {lock.id}")
            + "; not forwarded"
        )
        return None
    trunks = snapshot.trunks_for(tenant_id, e164)
    if not trunks:
        trace.append(f"{rule.describe()}: no trunk carries {e164}; not forwarded")
        return None
    presented = user.number  # B: the forwarding user
    if rule.present == "caller":  # A: the original caller (MOB-06)
        a_user = snapshot.users.get(caller.user_id) if caller.user_id is not None else None
        presented = (
            a_user.number if a_user is not None else caller.number if caller.number.startswith("+") else None
        ) or user.number
    trace.append(
        f"{rule.kind} forwarding to {e164} via {', '.join(t.name for t in trunks)}, presenting "
        f"{presented or 'no number'}"
    )
    _prefix, rate = snapshot.tariff.rate_for(e164) if snapshot.tariff is not None else ("", 0.0)
    return RouteToTrunk(
        tenant_id,
        e164,
        tuple(TrunkHop(t.name, t.uri(e164)) for t in trunks),
        presented,
        snapshot.tenants[tenant_id].domain,
        fraud=(user.id, dest.cls.value, rate),
    )


def _from_trunk(
    facts: RequestFacts, snapshot: Snapshot, caller: CallParty, trace: list[str], now: float, live: LiveView
) -> Decision:
    """A call from a carrier: routed by the dialled public number (DID) only."""
    trunk = next(t for t in snapshot.trunks if t.name == caller.trunk)
    digits = clean(facts.ruri_user)
    e164 = to_e164(digits, Plan(trunk.region), short_is_local=False) if digits else None
    if e164 is None and digits and digits.isdigit():
        e164 = "+" + digits  # carriers often send E.164 without the '+'
    number = snapshot.numbers.get(e164) if e164 else None
    if number is None:
        trace.append(f"dialled {facts.ruri_user!r} ({e164 or 'not a number'}) is not a number of this platform")
        return Decision(
            Reject(404, "Not Found", "this number is not assigned"),
            tuple(trace),
            caller,
            CallParty(None, None, e164 or facts.ruri_user),
        )
    assert e164 is not None  # a number was found under it
    tenant = snapshot.tenants.get(number.tenant_id)
    if tenant is None or not tenant.enabled:
        trace.append(f"number {e164} belongs to a disabled tenant")
        return Decision(
            Reject(403, "Forbidden", "this company's service is disabled"),
            tuple(trace),
            caller,
            CallParty(number.tenant_id, None, e164),
        )
    caller = CallParty(tenant.id, None, caller.number, trunk=caller.trunk)
    trace.append(f"number {e164} belongs to tenant {tenant.name}")
    if number.ivr_id is not None and facts.method == "INVITE" and number.ivr_id in snapshot.ivr_menus:
        trace.append(f"number {e164} leads to IVR menu {number.ivr_id}")
        return Decision(
            to_ivr(snapshot, tenant, number.ivr_id, now, trace, caller),
            tuple(trace),
            caller,
            CallParty(tenant.id, None, e164),
        )
    if number.voicemail and facts.method == "INVITE":
        return _central_voicemail(snapshot, tenant, facts, caller, e164, Plan(trunk.region), trace)
    if number.group_id is not None:
        trace.append(f"number {e164} rings hunt group {number.group_id}")
        return _to_group(
            snapshot,
            tenant.id,
            number.group_id,
            caller,
            trace,
            live,
            CallParty(tenant.id, None, e164),
            now=now,
            priority=number.priority,
        )
    return _to_user(
        snapshot, tenant.id, number.user_id, e164, caller, trace, "(number not routed to a user)", now, live
    )


def _central_voicemail(
    snapshot: Snapshot, tenant: Tenant, facts: RequestFacts, caller: CallParty, e164: str, plan: Plan, trace: list[str]
) -> Decision:
    """The tenant's central voicemail number (VM-08). A call forwarded to it (its Diversion header) by a user's
    mobile or own number leaves a message in that user's mailbox — the busy greeting when the mobile was busy; one
    forwarded by any other number is not in service. A user calling it from their mobile listens (with the PIN);
    anyone else names a mailbox first (remote access)."""
    language = caller_language(tenant, caller)
    if facts.diversion:
        by, why = voicemail.diverted_by(facts.diversion)
        digits = clean(by) if by else None
        forwarded = (to_e164(digits, plan, short_is_local=False) or "") if digits else ""
        if not forwarded and digits and digits.isdigit():
            forwarded = "+" + digits  # carriers often send E.164 without the '+'
        user = snapshot.user_by_phone(tenant.id, forwarded) if forwarded else None
        box = snapshot.mailbox_of_user(user.id) if user is not None else None
        if user is None or box is None:
            trace.append(
                f"forwarded to the central voicemail {e164} by {forwarded or repr(by[:40]) or 'an unreadable number'}: "
                + ("no user's mobile or number" if user is None else f"user {user.id} has no mailbox that takes calls")
            )
            return Decision(
                Reject(404, "Not Found", "no mailbox for the number that forwarded the call"),
                tuple(trace),
                caller,
                CallParty(tenant.id, None, e164),
            )
        action = voicemail.deposit(
            tenant.id, box.id, "busy" if why == "user-busy" else "unavailable", language, box.max_s
        )
        trace.append(
            f"forwarded to the central voicemail {e164} by {forwarded} ({why or 'no reason given'}), user {user.id}: "
            f"{voicemail.describe(action)}"
        )
        return Decision(action, tuple(trace), caller, CallParty(tenant.id, user.id, forwarded))
    user = snapshot.user_by_phone(tenant.id, caller.number) if caller.number.startswith("+") else None
    box = snapshot.mailbox_of_user(user.id) if user is not None else None
    if user is not None and box is not None:
        trace.append(f"the central voicemail {e164} called from {caller.number}, user {user.id}'s phone: listening")
        return Decision(
            voicemail.listen(tenant.id, box.id, language), tuple(trace), caller, CallParty(tenant.id, user.id, e164)
        )
    action = voicemail.remote(tenant.id, language)
    trace.append(f"the central voicemail {e164}: {voicemail.describe(action)}")
    return Decision(action, tuple(trace), caller, CallParty(tenant.id, None, e164))


def is_emergency_call(snapshot: Snapshot, account, dialled: str) -> bool:
    """Does this account's call to `dialled` go to an emergency number (read in its user's country)?
    Such calls pass every fraud control: an account's cool-down included."""
    user = snapshot.users.get(account.user_id)
    if user is not None and is_sos_urn(dialled):
        return True
    digits = clean(dialled)
    return user is not None and digits is not None and is_emergency(digits, user.plan)


def _emergency(
    snapshot: Snapshot, tenant: Tenant, caller: CallParty, user: User, digits: str, trace: list[str], now: float
) -> Decision:
    """An emergency number of the caller's country: always out, whatever the user's locks, permissions, status or
    forwarding, by the site's emergency route (its emergency trunk, then every other trunk of the tenant), with the
    caller's number and location (a header, and a PIDF-LO body with Geolocation headers per RFC 6442)."""
    trunks = snapshot.emergency_trunks(tenant.id, user)
    trace.append(
        f"emergency number {digits} in {user.plan.region}: routed regardless of locks, permissions, status and "
        "forwarding"
    )
    callee = CallParty(tenant.id, None, digits)
    if not trunks:
        trace.append("no trunk available for emergency calls")
        return Decision(
            Reject(503, "Service Unavailable", "no trunk is available for emergency calls"),
            tuple(trace),
            caller,
            callee,
        )
    location = snapshot.location_of(user)
    where = location.describe()
    trace.append(
        f"caller number {user.number or 'none'}, location "
        f"{where if location.known else 'unknown (country ' + location.country + ' only)'}"
    )
    trace.append("emergency route: " + ", ".join(t.name for t in trunks) + "; not ended by the platform's timers")
    content_id = f"location-{user.id}@{tenant.domain}"
    entity = f"pres:{(user.number or str(user.id)).lstrip('+')}@{tenant.domain}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    action = RouteToTrunk(
        tenant.id,
        digits,
        tuple(TrunkHop(t.name, t.uri(digits)) for t in trunks),
        user.number,
        tenant.domain,
        privacy=False,
        emergency=True,
        location=where,
        ring_s=EMERGENCY_RING_S,
        geolocation=(content_id, pidf_lo(location, entity, stamp), geolocation_headers(content_id)),
    )
    return Decision(action, tuple(trace), caller, callee)


def _outbound(
    facts: RequestFacts,
    snapshot: Snapshot,
    tenant: Tenant,
    caller: CallParty,
    user: User,
    trace: list[str],
    now: float,
    live: LiveView,
) -> Decision:
    """Not an extension: a public number, read in the caller's numbering plan."""
    dialled, rule = tenant.rewrite(facts.ruri_user)
    if rule:
        trace.append(f"dial plan rule {rule!r}: {facts.ruri_user} -> {dialled}")
    acc = find_account(snapshot, facts.auth_user, facts.auth_realm) if facts.auth is AuthResult.OK else None
    privacy = acc.clir if acc is not None and acc.clir is not None else user.clir
    if dialled.startswith(CLIR_PREFIX):
        dialled, privacy = dialled[len(CLIR_PREFIX) :], True
        trace.append(f"{CLIR_PREFIX} prefix: number suppressed for this call")
    digits = clean(dialled)
    short = short_number(digits, user.plan) if digits is not None else None
    if digits is not None and short is not None:
        if user.locked:
            trace.append("outgoing calls of this user are locked")
            return Decision(
                Reject(403, "Forbidden", "outgoing calls are locked for this user"),
                tuple(trace),
                caller,
                CallParty(tenant.id, None, digits),
            )
        short_e164 = "+" + country(user.plan.region).code + digits
        trace.append(
            f"dialled {dialled} -> short number {digits} of {user.plan.region}, destination class {short.value}"
        )
        return _out_to(snapshot, tenant, caller, user, trace, Destination(short_e164, short), digits, acc, privacy)
    if digits is None or (not user.plan.area_code and digits.isdigit() and not _has_prefix(digits, user.plan)):
        trace.append(f"dialled {dialled!r}: no such extension in tenant {tenant.name}, and not a public number")
        return Decision(
            Reject(404, "Not Found", f"extension {dialled} does not exist"),
            tuple(trace),
            caller,
            CallParty(tenant.id, None, dialled),
        )
    if user.locked:
        trace.append("outgoing calls of this user are locked")
        return Decision(
            Reject(403, "Forbidden", "outgoing calls are locked for this user"),
            tuple(trace),
            caller,
            CallParty(tenant.id, None, dialled),
        )
    e164 = to_e164(digits, user.plan)
    if e164 is None:
        trace.append(f"dialled {dialled!r} is not a complete number")
        return Decision(
            Reject(484, "Address Incomplete", f"{dialled} is not a complete telephone number"),
            tuple(trace),
            caller,
            CallParty(tenant.id, None, dialled),
        )
    own = snapshot.numbers.get(e164)
    if own is not None and own.tenant_id == tenant.id:
        trace.append(f"{e164} is a number of this tenant: connected internally")
        return _to_user(
            snapshot, tenant.id, own.user_id, e164, caller, trace, "(number not routed to a user)", now, live
        )
    dest = classify(e164, user.plan)
    trace.append(f"dialled {dialled} -> {e164}, destination class {dest.cls.value}")
    return _out_to(snapshot, tenant, caller, user, trace, dest, e164, acc, privacy)


def _out_to(
    snapshot: Snapshot,
    tenant: Tenant,
    caller: CallParty,
    user: User,
    trace: list[str],
    dest: Destination,
    target: str,
    acc,
    privacy: bool,
) -> Decision:
    """A call out to `dest` (`target`: what the carrier is sent, the E.164 number or a national short number): barring,
    the user's and the company's permissions, high-risk destinations, fraud locks, then the trunks."""
    e164 = dest.e164
    callee = CallParty(tenant.id, None, e164 if target == e164 else target)
    if dest.barred:
        trace.append("barred range: " + dest.barred)
        return Decision(Reject(403, "Forbidden", dest.barred), tuple(trace), caller, callee)
    if dest.directory and not tenant.allow_directory:
        trace.append("directory services are not enabled for this tenant")
        return Decision(
            Reject(403, "Forbidden", "directory services are not enabled for this company"),
            tuple(trace),
            caller,
            callee,
        )
    if not permits(user.outbound, dest.cls):
        trace.append(f"user's outbound permission is {user.outbound.value}")
        return Decision(
            Reject(403, "Forbidden", f"{dest.cls.value} calls are not permitted for this user"),
            tuple(trace),
            caller,
            callee,
        )
    policy = snapshot.fraud_policy(tenant.id)
    if not permits(DestClass(policy.outbound), dest.cls):
        trace.append(f"the company's outbound permission is {policy.outbound}")
        return Decision(
            Reject(403, "Forbidden", f"{dest.cls.value} calls are not permitted for this company"),
            tuple(trace),
            caller,
            callee,
        )
    risky = fraud.high_risk(e164, policy)
    if risky:
        trace.append(f"{risky} is on the high-risk list and not enabled for this tenant")
        return Decision(
            Reject(403, "Forbidden", f"calls to {risky} (high-risk destination) are not enabled for this company"),
            tuple(trace),
            caller,
            callee,
        )
    lock = fraud.lock_refusal(snapshot.locks_for(tenant.id, user.id), dest.cls.value)
    if lock is not None:
        what = f"{lock.dest_class} calls are blocked" if lock.level == 2 else "outgoing calls are locked"
        trace.append(f"{what} by fraud control (lock {lock.id}, level {lock.level}): {lock.reason}")
        return Decision(Reject(403, "Forbidden", f"{what} by fraud control"), tuple(trace), caller, callee)
    trunks = snapshot.trunks_for(tenant.id, e164)
    if not trunks:
        trace.append("no trunk carries this destination for this tenant")
        return Decision(
            Reject(503, "Service Unavailable", "no trunk is available for this destination"),
            tuple(trace),
            caller,
            callee,
        )
    presented = (acc.presented_number if acc is not None else None) or user.presented_number or user.number
    trace.append(
        f"presenting {presented or 'no number'}"
        + (" (suppressed: Privacy id)" if privacy else "")
        + "; trunks "
        + ", ".join(t.name for t in trunks)
    )
    window = snapshot.callback_agents.get(user.id) if snapshot.callback_agents else None
    prefix, rate = snapshot.tariff.rate_for(e164) if snapshot.tariff is not None else ("", 0.0)
    if prefix:
        trace.append(f"tariff {prefix}: {rate:.4f} per minute")
    action = RouteToTrunk(
        tenant.id,
        target,
        tuple(TrunkHop(t.name, t.uri(target)) for t in trunks),
        presented,
        tenant.domain,
        privacy=privacy,
        track=() if user.call_waiting and user.id not in snapshot.agents else (user.id,),
        callback=(user.id, window) if window else None,
        fraud=(user.id, dest.cls.value, rate),
    )
    return Decision(action, tuple(trace), caller, callee)


def _has_prefix(digits: str, plan) -> bool:
    c = country(plan.region)
    return (
        digits.startswith("+")
        or digits.startswith(c.intl_prefix)
        or digits.startswith(c.national_prefix)
        or bool(c.directory and c.directory.fullmatch(digits))
    )
