"""`route.simulate`: what would happen to a call, computed by the policy code that routes live calls.

The decision is taken on the routing snapshot Kamailio uses (published first if the database
is ahead of it), with the same `decide_initial` as the KEMI shell; no call is placed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import select

from controlplane.api.errors import InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import SipAccount, Tenant, User
from controlplane.live_view import StoredLiveView
from controlplane.numbering import national
from kemi.policy.decision import (
    Announce,
    Challenge,
    Reject,
    RouteToGroup,
    RouteToTrunk,
    RouteToUser,
    ToIvr,
    ToVoicemail,
)
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy import timeline
from kemi.policy import announce
from kemi.policy import media
from kemi.policy.routing import account_policy, callee_srtp, callee_web, decide_initial

from .common import Id, get_scoped


KIND_HELP = (
    "busy, no_answer, unreachable, declined, unavailable, server_error, challenge, failure (with code), "
    "member_free, cancel (the caller hangs up), answer; in IVR menus keys (with digits) and no_key"
)


class SimEvent(BaseModel):
    """One thing that happens to the simulated call, in order."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal[timeline.KINDS] = Field(description=KIND_HELP)  # type: ignore[valid-type]
    after_s: float = Field(0.0, ge=0, le=86400, description="seconds after the previous event")
    code: int | None = Field(None, ge=300, le=699, description="kind failure: the final answer's code")
    reason: str = Field("", max_length=100, description="kind failure: its reason phrase")
    digits: str = Field("", max_length=40, pattern=r"^[0-9*# ]*$", description="kind keys: the keys pressed, in order")

    @model_validator(mode="after")
    def _code_for_failure(self):
        if (self.kind == "failure") != (self.code is not None):
            raise ValueError("a code is given with kind failure, and only then")
        if (self.kind == "keys") != bool(self.digits.strip()):
            raise ValueError("digits are given with kind keys, and only then")
        return self


class Simulate(Params):
    dialled: str = Field(
        min_length=1, max_length=64, description="what the caller dials (extension or number, as typed)"
    )
    caller_user_id: Id | None = Field(None, description="an internal caller ...")
    caller_number: str | None = Field(None, description="... or an external caller's number, arriving through a trunk")
    tenant_id: Id | None = Field(None, description="the tenant of an external call (platform token)")
    diversion: str = Field(
        "",
        max_length=300,
        description="an external call's Diversion header: who forwarded it ('<sip:+4917...@carrier>;reason=no-answer')",
    )
    at: datetime | None = Field(
        None, description="when (ISO 8601, default now): time plans and holidays are read at this time"
    )
    transport: Literal["udp", "tcp", "tls", "ws", "wss"] | None = Field(
        None, description="what an internal caller's INVITE comes over (default: TLS where its policy requires it)"
    )
    offer: str | None = Field(
        None,
        max_length=40,
        pattern=r"^[A-Za-z0-9/]+$",
        description="the caller's SDP profile: RTP/AVP, RTP/SAVP (SRTP), UDP/TLS/RTP/SAVPF (WebRTC); default: SRTP "
        "where the caller's policy requires it, else RTP/AVP",
    )
    events: list[SimEvent] = Field(
        default_factory=list,
        max_length=timeline.MAX_EVENTS,
        description="what happens next, in order: the timeline plays them through the transitions live calls take",
    )

    @model_validator(mode="after")
    def _one_caller(self):
        if (self.caller_user_id is None) == (self.caller_number is None):
            raise ValueError("give exactly one of caller_user_id and caller_number")
        return self


def _media_facts(snap, auth_user: str, auth_realm: str, p: Simulate) -> tuple[str, str]:
    """(transport, offer) of the simulated INVITE: as given, else what the caller's encryption policy asks for."""
    acc = snap.active_accounts.get((auth_user, auth_realm.lower())) if auth_user else None
    tls, srtp = account_policy(snap, acc) if acc is not None else (False, False)
    return p.transport or ("tls" if tls else "udp"), p.offer or ("RTP/SAVP" if srtp else "RTP/AVP")


def _media(snap, action, offer: str) -> str | None:
    """The media mode of each leg, as the live call would get it (kemi.policy.media); None: the call goes nowhere."""
    if isinstance(action, Announce | ToVoicemail | ToIvr | RouteToTrunk):
        return media.plan(offer, False).words()
    if isinstance(action, RouteToUser | RouteToGroup):
        return media.plan(offer, callee_srtp(snap, action), callee_web(snap, action)).words()
    return None


def _describe(action) -> dict:
    if isinstance(action, RouteToUser):
        out = {"type": "ring_user", "user_id": action.user_id, "devices": list(action.aors)}
        for case in ("busy", "no_answer", "unreachable"):
            alt = getattr(action, f"on_{case}")
            if alt is not None and not isinstance(alt, Reject):
                out[f"on_{case}"] = _describe(alt)
        if action.no_answer_s:
            out["no_answer_s"] = action.no_answer_s
        return out
    if isinstance(action, RouteToTrunk):
        return {
            "type": "trunk",
            "number": action.target,
            "national": national(action.target),
            "trunks": [h.name for h in action.hops],
            "presented_number": action.caller_number,
            "privacy": action.privacy,
            "emergency": action.emergency,
            **({"location": action.location} if action.emergency else {}),
            **(
                {"pidf_lo": action.geolocation[1], "geolocation": list(action.geolocation[2])}
                if action.geolocation
                else {}
            ),
        }
    if isinstance(action, RouteToGroup):
        out = {
            "type": "group",
            "group_id": action.group_id,
            "steps": [{"members": [m for m, _ in st.members], "seconds": st.seconds} for st in action.steps],
        }
        if not action.steps:
            out["waits_s"] = action.queue_s  # nobody free: the caller waits (ringing) for a member, at most this long
        if action.queue_s:
            out.update(queue_s=action.queue_s, priority=action.priority)
        if action.present is not None:
            out["members_see"] = {"display": action.present[0], "uri": action.present[1]}
        return out
    if isinstance(action, Reject):
        return {"type": "reject", "code": action.code, "reason": action.reason, "explanation": action.warning}
    if isinstance(action, Challenge):
        return {"type": "challenge", "realm": action.realm}
    if isinstance(action, ToIvr):  # the media server plays the menus; `events` of kind keys move through them
        return {"type": "ivr", "menu_id": action.menu_id, "language": action.language}
    if isinstance(action, ToVoicemail):
        return {"type": "voicemail", "mailbox_id": action.mailbox_id, "greeting": action.greeting}
    if isinstance(action, Announce):  # the refusal, said first by the media server (kemi.policy.announce)
        return {**_describe(action.refusal), "announced": {"prompt": action.prompt, "language": action.language}}
    return {"type": type(action).__name__}


@method("route.simulate", Simulate, errors=("invalid_params", "not_found"), perm=Perm.ROUTE_SIMULATE)
def simulate(ctx, p: Simulate):
    """Dry-run a call: the routing decision and its trace, and with `events` the whole call as a timeline, without
    placing it."""
    when = p.at or datetime.now(timezone.utc)
    if when.tzinfo is None:
        raise InvalidParams("at needs a time zone (e.g. 2026-12-24T19:00:00+01:00)", field="at")
    with ctx.app.read() as s:
        if p.caller_user_id is not None:
            user = get_scoped(s, User, p.caller_user_id, ctx.principal, "user")
            tenant = s.get(Tenant, user.tenant_id)
            acc = s.exec(select(SipAccount).where(SipAccount.user_id == user.id).order_by(SipAccount.id)).first()
            if acc is None:
                raise InvalidParams(f"user {user.id} has no SIP account to call from", field="caller_user_id")
            src, from_user, auth_user, auth_realm, auth = (
                "192.0.2.1",
                acc.username,
                acc.username,
                acc.realm,
                AuthResult.OK,
            )
        else:
            tenant_id = ctx.principal.tenant_scope(p.tenant_id)
            if tenant_id is None:
                raise InvalidParams(
                    "tenant_id is required for an external caller with a platform token", field="tenant_id"
                )
            tenant = get_scoped(s, Tenant, tenant_id, ctx.principal, "tenant")
            src, from_user, auth_user, auth_realm, auth = None, p.caller_number, "", "", AuthResult.NONE
    snap = ctx.app.current_snapshot()
    if src is None:  # an external call arrives through a trunk of this tenant
        trunk = next((t for t in snap.trunks if t.serves(tenant.id, None) and t.sources), None)
        if trunk is None:
            raise InvalidParams(
                "no trunk with source addresses serves this tenant: an external call cannot arrive",
                field="caller_number",
            )
        src = str(trunk.sources[0].network_address)
    facts = RequestFacts(
        "INVITE",
        p.dialled,
        tenant.sip_domain,
        from_user,
        tenant.sip_domain,
        p.dialled,
        tenant.sip_domain,
        src,
        5060,
        "simulated",
        auth_user,
        auth_realm,
        auth,
        False,
        p.diversion if p.caller_number is not None else "",
        *_media_facts(snap, auth_user, auth_realm, p),
    )
    with ctx.app.read() as s:
        live = StoredLiveView.load(s, ctx.app)
    node = ctx.app.settings
    decision = decide_initial(facts, snap, when.timestamp(), live)
    speaks = announce.speaks(decision, "INVITE", node.prompt_language, node.media_server, snap.tenants)
    decision = announce.spoken(decision, "INVITE", speaks, bool(speaks))
    events = [timeline.Event(e.kind, e.after_s, e.code or 0, e.reason, e.digits) for e in p.events]
    steps = (
        timeline.run(decision, events, snap, live, when.timestamp(), speaks)
        if not isinstance(decision.action, Challenge)
        else []
    )
    return {
        "live_state": "kamailio"
        if live.kamailio_read
        else "database (Kamailio not answering: nobody counts as on a call)",
        "decision": _describe(decision.action),
        "media": _media(snap, decision.action, facts.offer),
        "trace": list(decision.trace),
        "caller": decision.caller._asdict() if decision.caller else None,
        "callee": decision.callee._asdict() if decision.callee else None,
        "at": when.isoformat(),
        "snapshot_version": snap.version,
        "timeline": [
            {"event": st.event, "at_s": st.at_s, "outcome": st.outcome, "trace": list(st.trace), "ended": st.ended}
            for st in steps
        ],
    }
