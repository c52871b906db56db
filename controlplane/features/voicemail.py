"""Voicemail (VM-01..09, ACD-22): mailboxes and their messages.

A mailbox belongs to a user (their personal box, deleted with them) or to a hunt group. Calls reach it through a
forwarding rule (`forwarding.create target_mailbox_id=`) or a group's overflow (`group.update overflow_mailbox_id=`);
the media server records the message and the control plane stores it (controlplane/services/voicemail.py). A user's
own token reads, hears (downloads), marks and deletes the messages of their own box and sets its PIN and e-mail;
everything else needs the tenant's configuration permission.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator
from sqlmodel import func, select

from controlplane.api.errors import Conflict, InvalidParams, NotFound, Unavailable
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import ForwardingRule, HuntGroup, IvrMenu, Mailbox, User, VoicemailMessage

from controlplane.services.audio import MAX_BYTES, AudioRefused, install
from kemi.policy.voicemail import GREETINGS, PIN_RULE_TEXT, hash_pin, valid_pin

from .common import Id, IdParams, ListParams, SipText, dump, get_scoped, in_scope, page


def _pin(v: str) -> str:
    if not valid_pin(v):
        raise ValueError(PIN_RULE_TEXT)
    return v


def _email(v: str) -> str:
    if v and not re.fullmatch(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+", v):
        raise ValueError("not an e-mail address (name@example.com), or '' for none")
    return v


Pin = Annotated[str, AfterValidator(_pin)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)]
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=36)]


class BoxFields(Params):
    name: Annotated[SipText, StringConstraints(max_length=100)] | None = None
    email: Email | None = Field(None, description="new messages are e-mailed here (VM-04); '' : not e-mailed")
    attach_audio: bool | None = Field(None, description="the e-mail carries the message's WAV")
    min_message_s: float | None = Field(None, ge=0, le=30, description="shorter messages are discarded (VM-07)")
    max_message_s: int | None = Field(None, ge=5, le=600, description="the longest message recorded")
    retention_days: int | None = Field(None, ge=0, le=3650, description="messages older are deleted (0: kept)")
    enabled: bool | None = Field(None, description="false: calls are not sent to the mailbox (messages stay)")
    extension: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^([0-9]{2,8})?$")] | None = Field(
        None, description="its own extension (VM-09): colleagues leave a message, the owner listens; '' clears"
    )


class BoxCreate(BoxFields):
    user_id: Id | None = Field(None, description="the user whose mailbox it is ...")
    group_id: Id | None = Field(None, description="... or the hunt group's")
    pin: Pin | None = Field(None, description="4 to 10 digits, for listening by phone")

    @model_validator(mode="after")
    def _owner(self):
        if (self.user_id is None) == (self.group_id is None):
            raise ValueError("give exactly one of user_id and group_id")
        return self


class BoxUpdate(BoxFields):
    id: Id


class BoxList(ListParams):
    user_id: Id | None = None
    group_id: Id | None = None


class SetPin(Params):
    id: Id = Field(description="the mailbox")
    pin: Pin


class GreetingUpload(Params):
    id: Id = Field(description="the mailbox")
    kind: Literal["busy", "unavailable"] = Field(description="which greeting: after busy forwarding, or every other")
    data_base64: str = Field(
        max_length=MAX_BYTES * 4 // 3 + 8,
        description="a PCM WAV file (any rate 8-96 kHz, mono or stereo), base64; converted to 8 kHz mono",
    )


class GreetingRef(Params):
    id: Id = Field(description="the mailbox")
    kind: Literal["busy", "unavailable"]


class MessageList(ListParams):
    mailbox_id: Id | None = Field(None, description="one mailbox (a user's own token: their own)")
    heard: bool | None = Field(None, description="only heard (true) or new (false) messages")


class MessageRef(Params):
    id: MessageId


class Mark(Params):
    id: MessageId
    heard: bool = True


def box_doc(s, box: Mailbox) -> dict:
    doc = dump(box, exclude={"pin_hash"})
    doc["has_pin"] = bool(box.pin_hash)
    counts = dict(
        s.exec(
            select(VoicemailMessage.heard, func.count())
            .where(VoicemailMessage.mailbox_id == box.id)
            .group_by(VoicemailMessage.heard)
        ).all()
    )
    doc["new"], doc["old"] = counts.get(False, 0), counts.get(True, 0)
    return doc


def greetings(ctx, box_id: int) -> dict[str, bool]:
    """Which of a mailbox's own greetings are recorded (the system's plays for the others)."""
    return {kind: ctx.app.voicemail_store.greeting(box_id, kind).exists() for kind in GREETINGS}


def _own_box(s, ctx, box_id: int) -> Mailbox:
    """A mailbox the caller may use: their own, or any of the tenant's with the configuration permission."""
    box = get_scoped(s, Mailbox, box_id, ctx.principal, "mailbox")
    ctx.principal.require_self_or(Perm.CONFIG, box.user_id)
    return box


def _own_message(s, ctx, message_id: str) -> VoicemailMessage:
    row = s.get(VoicemailMessage, message_id)
    if row is None or (not ctx.principal.is_platform and row.tenant_id != ctx.principal.tenant_id):
        raise NotFound(f"message {message_id} does not exist", message_id=message_id)
    _own_box(s, ctx, row.mailbox_id)
    return row


def _apply(s, box: Mailbox, p: BoxFields) -> None:
    for name in ("name", "email", "attach_audio", "min_message_s", "max_message_s", "retention_days", "enabled"):
        value = getattr(p, name)
        if value is not None:
            setattr(box, name, value)
    if p.extension is not None:
        if p.extension:
            _extension_free(s, box, p.extension)
        box.extension = p.extension


def _extension_free(s, box: Mailbox, number: str) -> None:
    """A mailbox's extension is no user's, group's or other mailbox's extension, nor an emergency number."""
    from controlplane.db.models import Extension

    from .extensions import emergency_in_tenant

    if number in emergency_in_tenant(s, box.tenant_id):
        raise InvalidParams(f"{number} is an emergency number and cannot be an extension", field="extension")
    taken = (
        s.exec(select(Extension).where(Extension.tenant_id == box.tenant_id, Extension.number == number)).first()
        or s.exec(select(HuntGroup).where(HuntGroup.tenant_id == box.tenant_id, HuntGroup.extension == number)).first()
        or s.exec(
            select(Mailbox).where(Mailbox.tenant_id == box.tenant_id, Mailbox.extension == number, Mailbox.id != box.id)
        ).first()
        or s.exec(select(IvrMenu).where(IvrMenu.tenant_id == box.tenant_id, IvrMenu.extension == number)).first()
    )
    if taken is not None:
        raise Conflict(f"extension {number} is taken in this tenant", field="extension", value=number)


@method(
    "voicemail.box_create",
    BoxCreate,
    errors=("invalid_params", "not_found", "conflict"),
)
def box_create(ctx, p: BoxCreate):
    """Create a user's or a hunt group's mailbox."""
    with ctx.app.write() as s:
        if p.user_id is not None:
            owner = get_scoped(s, User, p.user_id, ctx.principal, "user")
            taken = s.exec(select(Mailbox.id).where(Mailbox.user_id == owner.id)).first()
            name = owner.name
        else:
            owner = get_scoped(s, HuntGroup, p.group_id, ctx.principal, "group")
            taken = s.exec(select(Mailbox.id).where(Mailbox.group_id == owner.id)).first()
            name = owner.name
        if taken is not None:
            raise Conflict(f"it already has mailbox {taken}", mailbox_id=taken)
        box = Mailbox(tenant_id=owner.tenant_id, user_id=p.user_id, group_id=p.group_id, name=name)
        _apply(s, box, p)
        if p.pin is not None:
            box.pin_hash = hash_pin(p.pin)
        s.add(box)
        s.flush()
        doc = box_doc(s, box)
    ctx.app.voicemail_changed(doc["id"])  # its phones learn there is nothing waiting
    return doc


@method("voicemail.box_get", IdParams, errors=("not_found",), perm=Perm.SELF, others=Perm.CONFIG)
def box_get(ctx, p: IdParams):
    """A mailbox with its counts of new and old messages."""
    with ctx.app.read() as s:
        doc = box_doc(s, _own_box(s, ctx, p.id))
    doc["greetings"] = greetings(ctx, p.id)
    return doc


@method("voicemail.box_list", BoxList, perm=Perm.SELF, others=Perm.CONFIG)
def box_list(ctx, p: BoxList):
    """List mailboxes (a user's own token: their own)."""
    with ctx.app.read() as s:
        stmt = in_scope(select(Mailbox).order_by(Mailbox.id), Mailbox.tenant_id, ctx.principal, p.tenant_id)
        if not ctx.principal.can(Perm.CONFIG):
            stmt = stmt.where(Mailbox.user_id == ctx.principal.user_id)
        if p.user_id is not None:
            stmt = stmt.where(Mailbox.user_id == p.user_id)
        if p.group_id is not None:
            stmt = stmt.where(Mailbox.group_id == p.group_id)
        return page(s, stmt, p.limit, p.offset, lambda b: box_doc(s, b))


@method(
    "voicemail.box_update",
    BoxUpdate,
    errors=("invalid_params", "not_found"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def box_update(ctx, p: BoxUpdate):
    """Change a mailbox's settings (a user's own token: their own box's e-mail, attachment and greeting settings)."""
    with ctx.app.write() as s:
        box = _own_box(s, ctx, p.id)
        if not ctx.principal.can(Perm.CONFIG) and any(
            getattr(p, f) is not None
            for f in ("min_message_s", "max_message_s", "retention_days", "enabled", "extension")
        ):
            raise InvalidParams("length limits, retention, enabling and the extension are the tenant admin's settings")
        _apply(s, box, p)
        s.add(box)
        s.flush()
        doc = box_doc(s, box)
    ctx.app.voicemail_changed(p.id)
    return doc


@method("voicemail.box_delete", IdParams, errors=("not_found",))
def box_delete(ctx, p: IdParams):
    """Delete a mailbox with all its messages (their recordings too); forwarding rules to it go with it."""
    with ctx.app.write() as s:
        box = get_scoped(s, Mailbox, p.id, ctx.principal, "mailbox")
        tenant_id = box.tenant_id
        for row in s.exec(select(VoicemailMessage).where(VoicemailMessage.mailbox_id == box.id)).all():
            s.delete(row)
        for rule in s.exec(select(ForwardingRule).where(ForwardingRule.target_mailbox_id == box.id)).all():
            s.delete(rule)
        for g in s.exec(select(HuntGroup).where(HuntGroup.overflow_mailbox_id == box.id)).all():
            g.overflow_mailbox_id = None
            s.add(g)
        s.delete(box)
    ctx.app.voicemail_store.remove_mailbox(tenant_id, p.id)
    ctx.app.voicemail_changed(p.id)
    return {"deleted": True, "id": p.id}


@method("voicemail.set_pin", SetPin, errors=("invalid_params", "not_found"), perm=Perm.SELF, others=Perm.CONFIG)
def set_pin(ctx, p: SetPin):
    """Set a mailbox's PIN (4 to 10 digits) for listening by phone; lifts a lock of wrong PINs."""
    with ctx.app.write(changes_routing=False) as s:
        box = _own_box(s, ctx, p.id)
        box.pin_hash = hash_pin(p.pin)
        box.pin_failures, box.locked_until = 0, None  # a new PIN lifts a lock of wrong ones
        s.add(box)
        s.flush()
        doc = box_doc(s, box)
    ctx.app.voicemail_changed(p.id)
    return doc


@method(
    "voicemail.greeting_upload",
    GreetingUpload,
    errors=("invalid_params", "not_found"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def greeting_upload(ctx, p: GreetingUpload):
    """Record a mailbox's own greeting from a WAV file: checked (0.5-120 s, audible, not distorted) and converted to
    8 kHz mono; the next caller hears it. A file that cannot be used changes nothing."""
    with ctx.app.read() as s:
        box = _own_box(s, ctx, p.id)
    try:
        seconds = install(p.data_base64, ctx.app.voicemail_store.greeting(box.id, p.kind), ctx.app.voicemail_store)
    except AudioRefused as exc:
        raise InvalidParams(f"the greeting cannot be used: {exc}", field="data_base64") from None
    return {"id": box.id, "kind": p.kind, "duration_s": seconds, "greetings": greetings(ctx, box.id)}


@method("voicemail.greeting_delete", GreetingRef, errors=("not_found",), perm=Perm.SELF, others=Perm.CONFIG)
def greeting_delete(ctx, p: GreetingRef):
    """Remove a mailbox's own greeting: callers hear the system's again."""
    with ctx.app.read() as s:
        box = _own_box(s, ctx, p.id)
    path = ctx.app.voicemail_store.greeting(box.id, p.kind)
    existed = ctx.app.voicemail_store.remove(path)
    return {"id": box.id, "kind": p.kind, "deleted": existed, "greetings": greetings(ctx, box.id)}


def message_doc(row: VoicemailMessage) -> dict:
    return dump(row)


@method("voicemail.list", MessageList, errors=("not_found",), perm=Perm.SELF, others=Perm.CONFIG)
def list_(ctx, p: MessageList):
    """Messages, newest first (a user's own token: those in their own mailbox)."""
    with ctx.app.read() as s:
        stmt = select(VoicemailMessage).order_by(VoicemailMessage.received_at.desc(), VoicemailMessage.id)
        stmt = in_scope(stmt, VoicemailMessage.tenant_id, ctx.principal, p.tenant_id)
        if p.mailbox_id is not None:
            stmt = stmt.where(VoicemailMessage.mailbox_id == _own_box(s, ctx, p.mailbox_id).id)
        elif not ctx.principal.can(Perm.CONFIG):
            own = s.exec(select(Mailbox.id).where(Mailbox.user_id == ctx.principal.user_id)).first()
            stmt = stmt.where(VoicemailMessage.mailbox_id == (own or 0))
        if p.heard is not None:
            stmt = stmt.where(VoicemailMessage.heard == p.heard)
        return page(s, stmt, p.limit, p.offset, message_doc)


@method("voicemail.get", MessageRef, errors=("not_found",), perm=Perm.SELF, others=Perm.CONFIG)
def get(ctx, p: MessageRef):
    """One message."""
    with ctx.app.read() as s:
        return message_doc(_own_message(s, ctx, p.id))


@method("voicemail.download", MessageRef, errors=("not_found", "unavailable"), perm=Perm.SELF, others=Perm.CONFIG)
def download(ctx, p: MessageRef):
    """A message's recording: WAV (8 kHz, 16-bit, mono), base64-encoded. Does not mark it heard."""
    with ctx.app.read() as s:
        row = _own_message(s, ctx, p.id)
        path = ctx.app.voicemail_store.message(row.tenant_id, row.mailbox_id, row.id)
    try:
        data = ctx.app.voicemail_store.read(path)
    except OSError:
        raise Unavailable(
            f"the recording of message {p.id} cannot be read (not on this node, not in the database)", message_id=p.id
        ) from None
    return {
        "id": row.id,
        "content_type": "audio/wav",
        "duration_s": row.duration_s,
        "data_base64": base64.b64encode(data).decode(),
    }


@method("voicemail.mark", Mark, errors=("not_found",), perm=Perm.SELF, others=Perm.CONFIG)
def mark(ctx, p: Mark):
    """Mark a message heard (or new again)."""
    with ctx.app.write(changes_routing=False) as s:
        row = _own_message(s, ctx, p.id)
        row.heard = p.heard
        row.heard_at = datetime.now(timezone.utc) if p.heard else None
        s.add(row)
        s.flush()
        doc, box_id = message_doc(row), row.mailbox_id
    ctx.app.voicemail_changed(box_id)
    return doc


@method("voicemail.delete", MessageRef, errors=("not_found",), perm=Perm.SELF, others=Perm.CONFIG)
def delete(ctx, p: MessageRef):
    """Delete a message and its recording."""
    with ctx.app.write(changes_routing=False) as s:
        row = _own_message(s, ctx, p.id)
        path = ctx.app.voicemail_store.message(row.tenant_id, row.mailbox_id, row.id)
        box_id = row.mailbox_id
        ctx.app.voicemail_store.forget(path, s)
        s.delete(row)
    path.unlink(missing_ok=True)
    ctx.app.voicemail_changed(box_id)
    return {"deleted": True, "id": p.id}
