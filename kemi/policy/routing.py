"""Where a request goes: the routing decisions for REGISTER and for new calls.

Pure functions of (facts, snapshot). The shell has already checked digest credentials
(the result is in `facts.auth`); everything else is decided here, with a trace.
"""
from __future__ import annotations

from .auth import challenge_realm, find_account
from .decision import CallParty, Challenge, Decision, Register, Reject, RouteToUser
from .facts import AuthResult, RequestFacts
from .snapshot import Snapshot

# Methods that start something a user is called for (routed like a call).
ROUTABLE_INITIAL = frozenset({"INVITE", "MESSAGE", "OPTIONS", "INFO", "NOTIFY", "REFER", "UPDATE"})
ALLOWED = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "INFO", "NOTIFY", "REFER", "UPDATE")


def unsupported_method(method: str) -> Reject | None:
    """A new request with a method this node does not serve (e.g. SUBSCRIBE, PUBLISH): 405 with Allow."""
    if method in ROUTABLE_INITIAL or method in ("REGISTER", "ACK"):
        return None
    return Reject(405, "Method Not Allowed", f"{method} is not served here", headers=("Allow: " + ", ".join(ALLOWED),))


def decide_register(facts: RequestFacts, snapshot: Snapshot) -> Decision:
    tenant = snapshot.tenant_for_domain(facts.to_host)
    if tenant is None or not tenant.enabled:
        return Decision(
            Reject(403, "Forbidden", f"'{facts.to_host}' is not a SIP domain served here"),
            (f"REGISTER for unknown domain {facts.to_host!r}",),
            counts_as_call=False,
        )
    realm = challenge_realm(facts, snapshot)
    if facts.auth is not AuthResult.OK:
        why = {
            AuthResult.NONE: "no credentials",
            AuthResult.STALE: "stale nonce",
            AuthResult.FAILED: "wrong credentials",
        }[facts.auth]
        return Decision(Challenge(realm, proxy=False), (f"REGISTER challenged in realm {realm}: {why}",), counts_as_call=False)
    acc = find_account(snapshot, facts.auth_user, facts.auth_realm)
    if acc is None:  # verified against an account that vanished since: treat as a failure
        return Decision(Challenge(realm, proxy=False), ("account no longer exists",), counts_as_call=False)
    return Decision(
        Register(acc.aor, acc.tenant_id, acc.user_id),
        (f"REGISTER accepted for {acc.aor} (tenant {acc.tenant_id}, user {acc.user_id})",),
        counts_as_call=False,
    )


def _caller(facts: RequestFacts, snapshot: Snapshot) -> tuple[CallParty | None, Decision | None, str]:
    """Identify the caller: an authenticated account, or a trusted source. Else a challenge."""
    if facts.auth is AuthResult.OK:
        acc = find_account(snapshot, facts.auth_user, facts.auth_realm)
        if acc is not None:
            user = snapshot.users[acc.user_id]
            number = user.extension or acc.username
            return CallParty(acc.tenant_id, acc.user_id, number), None, f"caller authenticated as {acc.aor} (user {user.id}, extension {number})"
    if facts.auth is AuthResult.NONE and snapshot.is_trusted(facts.src_ip):
        return CallParty(None, None, facts.from_user), None, f"caller {facts.src_ip} is a trusted source"
    realm = challenge_realm(facts, snapshot)
    return None, Decision(Challenge(realm, proxy=True), (f"{facts.method} challenged in realm {realm}",), counts_as_call=False), ""


def decide_initial(facts: RequestFacts, snapshot: Snapshot) -> Decision:
    """A new call (or other dialog-less request) to a user of this node."""
    caller, early, why = _caller(facts, snapshot)
    if early is not None:
        return early
    assert caller is not None
    trace = [why]

    ruri_tenant = snapshot.tenant_for_domain(facts.ruri_host)
    if ruri_tenant is not None:
        tenant_id = ruri_tenant.id
    elif facts.to_myself and caller.tenant_id is not None:
        tenant_id = caller.tenant_id
    else:
        trace.append(f"request domain {facts.ruri_host!r} is not served here")
        return Decision(Reject(403, "Forbidden", f"relaying to '{facts.ruri_host}' is not allowed"), tuple(trace), caller)
    if caller.tenant_id is not None and caller.tenant_id != tenant_id:
        trace.append(f"caller tenant {caller.tenant_id} may not call into tenant {tenant_id} directly")
        return Decision(Reject(403, "Forbidden", "calls to another company go through its public number"), tuple(trace), caller)
    tenant = snapshot.tenants[tenant_id]
    if not tenant.enabled:
        trace.append(f"tenant {tenant.name} is disabled")
        return Decision(Reject(403, "Forbidden", "this company's service is disabled"), tuple(trace), caller)
    if caller.tenant_id is None:
        caller = CallParty(tenant_id, None, caller.number)

    dialled = facts.ruri_user
    callee_none = CallParty(tenant_id, None, dialled)
    user_id = snapshot.extensions.get((tenant_id, dialled))
    user = snapshot.users.get(user_id) if user_id is not None else None
    if user is None or not user.enabled:
        trace.append(f"dialled {dialled!r}: no such extension in tenant {tenant.name}")
        return Decision(Reject(404, "Not Found", f"extension {dialled} does not exist"), tuple(trace), caller, callee_none)
    trace.append(f"dialled {dialled} -> extension of user {user.id} ({user.name})")
    if not user.aors:
        trace.append("user has no SIP account")
        return Decision(Reject(480, "Temporarily Unavailable", "callee has no SIP account"), tuple(trace), caller, CallParty(tenant_id, user.id, dialled))
    trace.append("ring all devices of " + ", ".join(user.aors))
    return Decision(
        RouteToUser(tenant_id, user.id, user.aors),
        tuple(trace),
        caller,
        CallParty(tenant_id, user.id, dialled),
    )
