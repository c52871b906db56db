"""What a call carries from one Kamailio route to the next: `CallState`, a typed, frozen value.

The first decision of a call makes it (`kemi.policy.call.begin`); every later event — a failure, a queue
turn, the end — is a pure transition in `kemi.policy.call` that takes a state and returns the next one.
The shell only stores it between routes, as one versioned JSON document (`to_doc` / `from_doc`), on the
transaction (AVP) and on the dialog (dialog variable, read by the control plane's `call.list`).

The document is lossless by construction: every NamedTuple is written with a type tag and its fields in
order (trailing defaults left out), every tuple as a list, and read back the same way; fields are only ever added
at the end of a type, so a document written before still loads. Version 1 (the untyped call context of earlier
releases) still loads, so a call in progress across an upgrade keeps its forwarding, trunks and queue place.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from .decision import (
    Action,
    Announce,
    CallParty,
    Challenge,
    GroupStep,
    Register,
    Reject,
    RouteToGroup,
    RouteToTrunk,
    RouteToUser,
    ToIvr,
    ToVoicemail,
    TrunkHop,
)
from .features import FeatureCode

VERSION = 2
# JSON text without spaces, as json.dumps(..., separators=(",", ":")) writes it — one encoder for every call's state
# and record (json.dumps builds a new encoder on each call with any argument of its own)
compact_json = json.JSONEncoder(separators=(",", ":")).encode


class CallRecord(NamedTuple):
    """Who called whom, fixed by the first decision: the call detail record's identity."""

    id: str  # the CDR's id
    call_id: str
    start_ts: float
    tenant_id: int | None = None
    caller: str = ""
    caller_user_id: int | None = None
    callee: str = ""
    callee_user_id: int | None = None


class Forwarding(NamedTuple):
    """Where the call goes when the user's devices fail, decided with the first decision (one forwarding per leg)."""

    busy: Action | None = None
    no_answer: Action | None = None
    unreachable: Action | None = None


class TrunkLeg(NamedTuple):
    """A call out: the trunk tried now, the ones left for failover, the trunk whose challenge was answered."""

    current: str
    rest: tuple[TrunkHop, ...] = ()
    answered_challenge: str | None = None


class GroupOffer(NamedTuple):
    """A hunt-group call being offered: the steps left and the members offered now (user id, AoRs)."""

    group_id: int
    steps: tuple[GroupStep, ...] = ()
    offered: tuple[tuple[int, tuple[str, ...]], ...] = ()
    wrapup_s: int = 0


class QueuePlace(NamedTuple):
    """A call to a group with a queue: its priority, arrival and the latest end of its wait; `key` while it waits."""

    group_id: int
    priority: int
    since: float
    until: float
    holds: int = 0  # times it was held in the queue
    held: bool = False  # waiting now (its transaction suspended, or `music`: a branch to the media server)
    key: str = ""  # its entry in the queue table (kemi.contract.QUEUE) while held
    music: bool = False  # held at the media server (greeting, music, its place): the turn comes as its 302
    silent: bool = False  # the media server could not take it once: it waits without music from then on


class FraudMark(NamedTuple):
    """A call out under the fraud limits: who pays, the destination class, the price per minute."""

    payer_user_id: int
    dest_class: str
    rate: float


class FeatureUse(NamedTuple):
    """A feature code dialled: handed to the control plane with the call's record."""

    user_id: int
    kind: str
    value: str = ""


class CallState(NamedTuple):
    record: CallRecord
    trace: tuple[str, ...] = ()
    forwarding: Forwarding | None = None
    trunk: TrunkLeg | None = None
    group: GroupOffer | None = None
    claimed: tuple[int, ...] = ()  # members this call holds an offer claim on (kemi.contract.OFFERS)
    contested: int = 0  # members skipped because another call was offering to them
    queue: QueuePlace | None = None
    overflows: int = 0  # group overflows gone through (routing.MAX_OVERFLOWS)
    fraud: FraudMark | None = None
    emergency: bool = False
    feature: FeatureUse | None = None
    announcing: Reject | None = None  # the call went to the media server to hear why; this refusal is its end
    speaks: str = ""  # a refused end is announced to the caller in this language ('' : not announced)
    mailbox: int | None = None  # the call went to this mailbox (`announcing`: its end when the mailbox cannot take it)
    media: Action | None = None  # what the media server was asked to do (an announcement, a mailbox): tried again once
    media_tries: int = 0  # ... on its next process (kemi.policy.announce.worker_port) when one did not answer
    media_legs: int = 0  # branches to the media server so far: each goes to its next process (kemi.policy.call)
    ivr: int | None = None  # the call is in the IVR menus entered at this menu (the media server's 302 is a choice)
    chose: str = ""  # the caller's choice in the menus, as "<menu>:<key>" (a 3xx after it is no answer to relay)
    media_plan: str = ""  # a call not plain RTP both ways: its kemi.policy.media.MediaPlan code (offered per branch)

    def traced(self, *lines: str) -> CallState:
        return self._replace(trace=self.trace + lines)

    @property
    def caller_party(self) -> CallParty:
        return CallParty(self.record.tenant_id, self.record.caller_user_id, self.record.caller)

    def to_doc(self) -> dict[str, Any]:
        doc = encode(self)
        doc["v"] = VERSION
        return doc

    def to_json(self) -> str:
        return compact_json(self.to_doc())

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> CallState:
        """The state a document holds; ValueError for anything that is not one (whatever its shape)."""
        if not isinstance(doc, dict):
            raise ValueError("not a call state document")
        try:
            state = _from_v1(doc) if doc.get("v") is None else decode(doc)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"not a call state document: {type(exc).__name__}: {exc}") from None
        if not isinstance(state, CallState):
            raise ValueError("not a call state document")
        return state

    @staticmethod
    def from_json(text: str) -> CallState:
        return CallState.from_doc(json.loads(text))


# ---------------------------------------------------------------- the codec

_TYPES: dict[str, type] = {
    "call": CallState,
    "record": CallRecord,
    "fwd": Forwarding,
    "trunkleg": TrunkLeg,
    "offer": GroupOffer,
    "queue": QueuePlace,
    "fraud": FraudMark,
    "feature": FeatureUse,
    "user": RouteToUser,
    "trunk": RouteToTrunk,
    "group": RouteToGroup,
    "reject": Reject,
    "challenge": Challenge,
    "register": Register,
    "code": FeatureCode,
    "hop": TrunkHop,
    "step": GroupStep,
    "announce": Announce,
    "voicemail": ToVoicemail,
    "ivr": ToIvr,
}
_TAGS = {cls: tag for tag, cls in _TYPES.items()}


_SCALARS = frozenset({str, int, float, bool, type(None)})
_NO_DEFAULT = object()
# per type: its tag, its number of fields and their defaults (built once: this runs for every call the node routes)
_SPECS = {
    cls: (tag, len(cls._fields), tuple(cls._field_defaults.get(f, _NO_DEFAULT) for f in cls._fields))  # type: ignore[attr-defined]
    for tag, cls in _TYPES.items()
}


def encode(value: Any) -> Any:
    """A value of the policy's vocabulary as JSON-ready data: a NamedTuple as {"t": its type's tag, "f": its fields in
    order, trailing defaults left out}, a tuple as a list. Fields are only ever added at the end of a type (a document
    written before then still loads: the new fields take their defaults)."""
    spec = _SPECS.get(value.__class__)
    if spec is None:
        if value.__class__ is tuple:
            return [v if v.__class__ in _SCALARS else encode(v) for v in value]
        return value
    tag, _n, defaults = spec
    last = len(value)
    while last and (
        value[last - 1] is defaults[last - 1]
        or (value[last - 1].__class__ is defaults[last - 1].__class__ and value[last - 1] == defaults[last - 1])
    ):
        last -= 1  # a trailing default (of the same type: 0 is not False)
    return {"t": tag, "f": [v if v.__class__ in _SCALARS else encode(v) for v in value[:last]]}


def decode(data: Any) -> Any:
    """The inverse of `encode`."""
    if data.__class__ is dict:
        cls = _TYPES.get(data.get("t", ""))
        if cls is None:
            raise ValueError(f"unknown type tag {data.get('t')!r}")
        _tag, n, defaults = _SPECS[cls]
        given = data.get("f")
        if given.__class__ is not list or len(given) > n or _NO_DEFAULT in defaults[len(given) :]:
            raise ValueError(f"not a {cls.__name__} document")
        return cls._make([v if v.__class__ in _SCALARS else decode(v) for v in given] + list(defaults[len(given) :]))  # type: ignore[attr-defined]
    if data.__class__ is list:
        return tuple(v if v.__class__ in _SCALARS else decode(v) for v in data)
    return data


def action_to_doc(action: Action | None) -> dict | None:
    """A routing action as JSON-ready data (None for none)."""
    return encode(action) if action is not None else None


def action_from_doc(doc: dict | None) -> Action | None:
    return decode(doc) if doc else None


# ---------------------------------------------------------------- version 1: the untyped call context


def _from_v1(ctx: dict[str, Any]) -> CallState:
    record = CallRecord(
        str(ctx.get("id", "")),
        str(ctx.get("call_id", "")),
        float(ctx.get("start_ts", 0.0)),
        ctx.get("tenant_id"),
        ctx.get("caller", "") or "",
        ctx.get("caller_user_id"),
        ctx.get("callee", "") or "",
        ctx.get("callee_user_id"),
    )
    fwd = ctx.get("fallback")
    group = ctx.get("group")
    q = ctx.get("queue")
    trunk = ctx.get("trunk")
    fraud = ctx.get("fraud")
    feature = ctx.get("feature")
    return CallState(
        record=record,
        trace=tuple(ctx.get("trace", ())),
        forwarding=Forwarding(*(_v1_action(fwd.get(k)) for k in ("busy", "no_answer", "unreachable"))) if fwd else None,
        trunk=TrunkLeg(trunk, tuple(TrunkHop(*h) for h in ctx.get("hops", ())), ctx.get("auth_tried"))
        if trunk
        else None,
        group=GroupOffer(
            group["id"],
            tuple(_v1_step(st) for st in group.get("steps", ())),
            tuple((m, tuple(a)) for m, a in group.get("current", ())),
            int(ctx.get("wrap", 0)),
        )
        if group
        else None,
        claimed=tuple(ctx.get("claimed", ())),
        contested=int(ctx.get("contested", 0)),
        queue=QueuePlace(
            q["g"], q["p"], q["since"], q["until"], q.get("holds", 0), q.get("held", False), q.get("key", "")
        )
        if q
        else None,
        overflows=int(ctx.get("overflows", 0)),
        fraud=FraudMark(*fraud) if fraud else None,
        emergency=bool(ctx.get("emergency")),
        feature=FeatureUse(feature["user_id"], feature["kind"], feature.get("value", "")) if feature else None,
    )


def _v1_step(st: list) -> GroupStep:
    return GroupStep(tuple((m, tuple(a)) for m, a in st[0]), st[1], st[2] if len(st) > 2 else -1)


def _v1_action(doc: dict | None) -> Action | None:
    if not doc:
        return None
    if doc["t"] == "user":
        return RouteToUser(doc["tenant_id"], doc["user_id"], tuple(doc["aors"]))
    if doc["t"] == "group":
        return RouteToGroup(
            doc["tenant_id"],
            doc["group_id"],
            tuple(_v1_step(st) for st in doc["steps"]),
            int(doc.get("wrapup_s", 0)),
            int(doc.get("queue_s", 0)),
            int(doc.get("priority", 0)),
        )
    if doc["t"] == "trunk":
        return RouteToTrunk(
            doc["tenant_id"],
            doc["target"],
            tuple(TrunkHop(*h) for h in doc["hops"]),
            doc["caller_number"],
            doc["caller_domain"],
            doc.get("privacy", False),
            fraud=tuple(doc["fraud"]) if doc.get("fraud") else None,
        )
    return None
