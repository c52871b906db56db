"""Message waiting (issue 23, VM: MWI, RFC 3842): who may SUBSCRIBE to whose message-summary, and the summary itself.

Phones subscribe to their own address (the account's AOR) for the event `message-summary`; Kamailio's presence module
keeps the subscription and sends the NOTIFYs. The counts come from the control plane, which PUBLISHes each mailbox's
summary to every AOR of the mailbox's user through the node (controlplane/services/mwi.py) — a PUBLISH the node
accepts only from its own control plane (the node's RPC secret in `KEY_HEADER`).
"""

from __future__ import annotations

from .auth import challenge_realm
from .decision import Challenge, Decision, Reject, Subscribe
from .facts import AuthResult, RequestFacts
from .snapshot import Snapshot

EVENT = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
KEY_HEADER = "X-Callmanager-Rpc-Key"  # the node's RPC secret: a PUBLISH from the node's own control plane
EXPIRES_S = 86400  # a published summary lives this long; the control plane publishes each again well before


def event_of(header: str) -> str:
    """The event package an Event header names (`message-summary;id=1` -> `message-summary`)."""
    return header.split(";", 1)[0].strip().lower()


def decide_subscribe(facts: RequestFacts, snapshot: Snapshot, event: str) -> Decision:
    """A new SUBSCRIBE: only to message-summary (489 otherwise), by an authenticated account, to its own address."""
    if event_of(event) != EVENT:
        return Decision(
            Reject(
                489, "Bad Event", f"only {EVENT} (message waiting) is served here", headers=(f"Allow-Events: {EVENT}",)
            ),
            (f"SUBSCRIBE to {event_of(event)[:40]!r}: not served",),
            counts_as_call=False,
        )
    tenant = snapshot.tenant_for_domain(facts.ruri_host)
    acc = (
        snapshot.active_accounts.get((facts.auth_user, facts.auth_realm.lower()))
        if facts.auth is AuthResult.OK
        else None
    )
    if acc is None:
        if tenant is None or not tenant.enabled:
            return Decision(
                Reject(403, "Forbidden", f"'{facts.ruri_host[:60]}' is not a SIP domain served here"),
                ("SUBSCRIBE for a domain not served here",),
                counts_as_call=False,
            )
        return Decision(
            Challenge(challenge_realm(facts, snapshot), True),
            ("SUBSCRIBE challenged",),
            counts_as_call=False,
        )
    wanted = f"sip:{facts.ruri_user}@{facts.ruri_host.lower()}"
    if wanted != acc.aor:
        return Decision(
            Reject(403, "Forbidden", "a phone may only subscribe to its own message waiting"),
            (f"SUBSCRIBE by {acc.aor} to {wanted[:80]}: not its own",),
            counts_as_call=False,
        )
    return Decision(Subscribe(acc.aor), (f"SUBSCRIBE to message waiting of {acc.aor}",), counts_as_call=False)


def summary(new: int, old: int) -> str:
    """The body of a message-summary (RFC 3842): waiting or not, and the voice messages new/old."""
    return f"Messages-Waiting: {'yes' if new else 'no'}\r\nVoice-Message: {new}/{old}\r\n"
