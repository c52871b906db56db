"""Decisions: what the policy core tells the shell to do, with a trace of why.

All are NamedTuples: immutable, and built on every request at a fraction of a frozen dataclass's cost.
"""

from __future__ import annotations

from typing import NamedTuple


class Reject(NamedTuple):
    code: int
    reason: str
    warning: str = ""  # human-readable explanation sent in a Warning header
    headers: tuple[str, ...] = ()  # further reply headers, e.g. "Allow: ..."


class Challenge(NamedTuple):
    realm: str
    proxy: bool  # 407 Proxy-Authenticate (True) or 401 WWW-Authenticate (False)


class RouteToUser(NamedTuple):
    """Ring every registered device of the user; what happens when that fails is decided up front."""

    tenant_id: int
    user_id: int
    aors: tuple[str, ...]
    # no registered device, or every device fails or never rings (backup routing)
    on_unreachable: "Action" = Reject(480, "Temporarily Unavailable", "callee has no registered device")
    on_busy: "Action | None" = None  # forwarding when busy (None: the busy answer goes back)
    on_no_answer: "Action | None" = None  # forwarding after `no_answer_s` of ringing
    no_answer_s: int = 0  # 0: ring until the caller or the INVITE timer gives up
    track: tuple[int, ...] = ()  # users (busy-on-busy) whose being on this call must be tracked


class TrunkHop(NamedTuple):
    name: str
    uri: str  # Request-URI towards the carrier


class RouteToTrunk(NamedTuple):
    """Out to the public network: the first trunk, then the next on 5xx or timeout."""

    tenant_id: int
    target: str  # the number sent to the carrier: E.164, or the emergency short number
    hops: tuple[TrunkHop, ...]
    caller_number: str | None  # presented in P-Asserted-Identity (E.164); None: none to present
    caller_domain: str
    privacy: bool = False  # CLIR: Privacy: id
    emergency: bool = False
    location: str = ""  # emergency calls: the caller's address, one line
    # emergency calls: (Content-ID, PIDF-LO document, Geolocation headers) — the location by value (RFC 6442)
    geolocation: tuple[str, str, tuple[str, ...]] | None = None
    ring_s: int = 0  # how long the far end may ring before the node gives up (0: the node's INVITE timer)
    track: tuple[int, ...] = ()  # users (busy-on-busy) whose being on this call must be tracked
    callback: tuple[int, int] | None = (
        None  # (agent, seconds): remember who called this number, for callback recognition
    )
    fraud: tuple[int, str, float] | None = (
        None  # (user, destination class, price per minute): counted and limited (never emergency calls)
    )


class GroupStep(NamedTuple):
    members: tuple[tuple[int, tuple[str, ...]], ...]  # (user id, their AORs), offered at once
    seconds: int
    circular: int = -1  # a step of this circular ring: the member actually offered becomes the ring's pointer


class RouteToGroup(NamedTuple):
    """A hunt-group call: the steps are played as serial forks; then the group's overflow, decided
    when the call overflows (routing.group_overflow) on the live state of that moment."""

    tenant_id: int
    group_id: int
    steps: tuple[GroupStep, ...]
    wrapup_s: int = 0  # the agent who answers is unavailable this long after the call
    queue_s: int = 0  # with no steps: the call waits up to this long for a free member (the shell holds it)
    priority: int = 0  # among waiting calls: higher first (VIP callers, priority numbers), then arrival order
    present: tuple[str, str] | None = None  # (display, URI) the members see as the caller; None: the caller


class Announce(NamedTuple):
    """Say why, then refuse (kemi.policy.announce): the media server plays `prompt` as early media and answers the
    refusal; the node answers it itself when the media server cannot."""

    prompt: str
    refusal: Reject
    language: str = "en"
    tenant_id: int | None = None  # whose recording of the prompt plays, if it has one (AUD-07); else the system's


class ToVoicemail(NamedTuple):
    """The call goes to a mailbox (VM-01, kemi.policy.voicemail): the media server answers, greets the caller (the busy
    or the unavailable greeting) and records their message; when it cannot, the call ends as it would have without
    the mailbox (486 or 480)."""

    tenant_id: int
    mailbox_id: int
    greeting: str = "unavailable"  # "busy" or "unavailable"
    language: str = ""  # the greeting's language ('' : the node's prompt language)
    max_s: int = 120  # the longest message recorded


class ToIvr(NamedTuple):
    """The call goes to an IVR menu (IVR-01, kemi.policy.ivr): the media server plays the menus as early media and
    hands the caller's choice back (a 302); when it cannot, 480."""

    tenant_id: int
    menu_id: int
    language: str = ""  # of the system prompts ('' : the node's prompt language)


class Subscribe(NamedTuple):
    """Accept a phone's subscription to its message waiting (kemi.policy.mwi; the presence module answers it)."""

    aor: str


class Register(NamedTuple):
    """Accept the registration for this account (the shell saves the binding)."""

    aor: str
    tenant_id: int
    user_id: int


from .features import FeatureCode  # noqa: E402

Action = (
    Reject
    | Challenge
    | RouteToUser
    | RouteToTrunk
    | RouteToGroup
    | Register
    | FeatureCode
    | Announce
    | ToVoicemail
    | ToIvr
    | Subscribe
)


class CallParty(NamedTuple):
    tenant_id: int | None
    user_id: int | None
    number: str  # extension or SIP user as dialled / presented; E.164 for the public network
    trunk: str | None = None  # the carrier's trunk, for calls from the public network


class Decision(NamedTuple):
    action: Action
    trace: tuple[str, ...] = ()
    caller: CallParty | None = None
    callee: CallParty | None = None
    counts_as_call: bool = True  # False for challenges: an auth round trip is not a call attempt
