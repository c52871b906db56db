"""IVR menus (IVR-01..05, kemi.policy.ivr): `ivr.create/get/list/update/delete`, their recordings
(`ivr.recording_upload/delete`), and a public number leading into a menu (`number.assign ivr_id=`).

A menu is checked whole before anything is written: at most 12 actions, each key once, every submenu a menu of the
same company, no circle of submenus, every mailbox one of the company's, an extension not taken by a user, group or
mailbox. A menu another menu leads to, or a number leads into, is not deleted (conflict, naming them).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import select

from controlplane.api.errors import Conflict, InvalidParams
from controlplane.api.rpc import Params, method
from controlplane.db.models import Extension, HuntGroup, IvrMenu, Mailbox, PhoneNumber, TimePlan
from controlplane.services.audio import MAX_BYTES, AudioRefused, install, seconds_of
from kemi.policy import ivr
from kemi.policy.announce import LANGUAGES

from .common import Id, IdParams, ListParams, SipText, check_unique_name, dump, get_scoped, in_scope, page

KeyName = Literal[(*ivr.KEYS, *ivr.EVENTS)]  # type: ignore[valid-type]
Kind = Literal[ivr.KINDS]  # type: ignore[valid-type]


class MenuAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: KeyName = Field(description="0-9, *, #, or the events timeout (no key) and invalid (a key without action)")  # type: ignore[valid-type]
    kind: Kind = Field(
        description="menu, back, repeat, play, extension, number (E.164), mailbox, voicemail (listen from here), hangup"
    )  # type: ignore[valid-type]
    target: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] = Field(
        "", description="menu: the submenu's id; extension: the extension; number: +E.164; mailbox: the mailbox's id"
    )


class MenuFields(Params):
    extension: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^([0-9]{2,8})?$")] | None = Field(
        None, description="its own extension ('' : none)"
    )
    timeout_s: int | None = Field(None, ge=1, le=60, description="waiting for a key after the menu")
    tries: int | None = Field(None, ge=1, le=10, description="rounds without a choice before goodbye")
    actions: list[MenuAction] | None = Field(None, max_length=ivr.MAX_ACTIONS, description="what each key does")
    time_plan_id: Id | None = Field(None, description="with other_menu_id: which menu a call enters, by this plan")
    when: Literal["out", "in"] | None = Field(None, description="other_menu_id outside (out) or inside (in) the plan")
    other_menu_id: Id | None = None
    language: Literal[("", *LANGUAGES)] | None = Field(  # type: ignore[valid-type]
        None, description="of the system prompts ('' : the company's)"
    )


class MenuCreate(MenuFields):
    name: Annotated[SipText, StringConstraints(min_length=1, max_length=100)]
    tenant_id: Id | None = None


class MenuUpdate(MenuFields):
    id: Id
    name: Annotated[SipText, StringConstraints(min_length=1, max_length=100)] | None = None
    clear_time_plan: bool = Field(False, description="remove the time plan and other menu")


class RecordingRef(Params):
    id: Id
    key: KeyName | None = Field(
        None, description="an action's recording (play, or said before a choice); none: the menu's"
    )  # type: ignore[valid-type]


class RecordingUpload(RecordingRef):
    data_base64: str = Field(
        max_length=MAX_BYTES * 4 // 3 + 8,
        description="a PCM WAV file (any rate 8-96 kHz, mono or stereo), base64; converted to 8 kHz mono",
    )


def menu_doc(ctx, m: IvrMenu, s) -> dict:
    doc = dump(m)
    doc["numbers"] = list(s.exec(select(PhoneNumber.e164).where(PhoneNumber.ivr_id == m.id)).all())
    doc["recordings"] = recordings(ctx, m)
    return doc


def recordings(ctx, m: IvrMenu) -> dict:
    """Which recordings the menu has, with their length: "menu" and the actions' keys."""
    out = {}
    for key in (None, *(a["key"] for a in m.actions)):
        path = ctx.app.voicemail_store.ivr_recording(m.id, key)
        if path.exists():
            try:
                out[key or "menu"] = round(seconds_of(path), 1)
            except ValueError:
                continue
    return out


def _check(s, m: IvrMenu) -> None:
    """The whole menu among its company's menus, as the policy reads it: InvalidParams / Conflict, nothing written."""
    if m.time_plan_id is not None:
        get_scoped_tenant(s, TimePlan, m.time_plan_id, m.tenant_id, "time_plan", "time_plan_id")
    if m.other_menu_id is not None:
        if m.time_plan_id is None:
            raise InvalidParams("other_menu_id needs a time_plan_id", field="other_menu_id")
        get_scoped_tenant(s, IvrMenu, m.other_menu_id, m.tenant_id, "menu", "other_menu_id")
    for a in m.actions:
        if a["kind"] in ("menu", "mailbox", "extension", "number") and not a.get("target"):
            raise InvalidParams(f"key {a['key']}: a {a['kind']} action needs a target", field="actions")
        if a["kind"] == "mailbox":
            box = s.get(Mailbox, int(a["target"])) if str(a["target"]).isdigit() else None
            if box is None or box.tenant_id != m.tenant_id:
                raise InvalidParams(
                    f"key {a['key']}: mailbox {a['target']} is not one of this company's", field="actions"
                )
    if m.extension:
        _extension_free(s, m)
    from controlplane.services.snapshot import compile_menu

    others = s.exec(select(IvrMenu).where(IvrMenu.tenant_id == m.tenant_id, IvrMenu.id != m.id)).all()
    menus = ivr.parse_menus([compile_menu(o) for o in others] + [compile_menu(m)])
    found = ivr.problems(menus, menus[m.id])
    if found:
        raise InvalidParams("; ".join(found), field="actions", problems=found)


def get_scoped_tenant(s, model, obj_id: int, tenant_id: int, what: str, field: str):
    obj = s.get(model, obj_id)
    if obj is None or obj.tenant_id != tenant_id:
        raise InvalidParams(f"{what} {obj_id} is not one of this company's", field=field)
    return obj


def _extension_free(s, m: IvrMenu) -> None:
    from .extensions import emergency_in_tenant

    if m.extension in emergency_in_tenant(s, m.tenant_id):
        raise InvalidParams(f"{m.extension} is an emergency number and cannot be an extension", field="extension")
    taken = (
        s.exec(select(Extension).where(Extension.tenant_id == m.tenant_id, Extension.number == m.extension)).first()
        or s.exec(
            select(HuntGroup).where(HuntGroup.tenant_id == m.tenant_id, HuntGroup.extension == m.extension)
        ).first()
        or s.exec(select(Mailbox).where(Mailbox.tenant_id == m.tenant_id, Mailbox.extension == m.extension)).first()
        or s.exec(
            select(IvrMenu).where(
                IvrMenu.tenant_id == m.tenant_id, IvrMenu.extension == m.extension, IvrMenu.id != m.id
            )
        ).first()
    )
    if taken is not None:
        raise Conflict(f"extension {m.extension} is taken in this tenant", field="extension", value=m.extension)


def _apply(m: IvrMenu, p: MenuFields) -> None:
    for f in ("extension", "timeout_s", "tries", "time_plan_id", "when", "other_menu_id", "language"):
        v = getattr(p, f)
        if v is not None:
            setattr(m, f, v)
    if p.actions is not None:
        m.actions = [a.model_dump() for a in p.actions]
        for a in m.actions:
            a["target"] = "" if a["kind"] in ("back", "repeat", "play", "hangup", "voicemail") else a["target"]


@method("ivr.create", MenuCreate, errors=("invalid_params", "not_found", "conflict"))
def create(ctx, p: MenuCreate):
    """Create an IVR menu: its actions by key, its extension, the time plan that sends calls to another menu."""
    tenant_id = ctx.principal.tenant_scope(p.tenant_id)
    if tenant_id is None:
        raise InvalidParams("tenant_id is required with a platform token", field="tenant_id")
    with ctx.app.write() as s:
        from controlplane.db.models import Tenant

        get_scoped(s, Tenant, tenant_id, ctx.principal, "tenant")
        check_unique_name(s, IvrMenu, tenant_id, p.name, "menu")
        m = IvrMenu(tenant_id=tenant_id, name=p.name)
        _apply(m, p)
        s.add(m)
        s.flush()  # its id: the check sees it among the company's menus
        _check(s, m)
        return menu_doc(ctx, m, s)


@method("ivr.get", IdParams, errors=("not_found",))
def get(ctx, p: IdParams):
    """One menu, with the numbers that lead into it and its recordings."""
    with ctx.app.read() as s:
        return menu_doc(ctx, get_scoped(s, IvrMenu, p.id, ctx.principal, "menu"), s)


@method("ivr.list", ListParams)
def list_(ctx, p: ListParams):
    """The menus, by id."""
    with ctx.app.read() as s:
        stmt = in_scope(select(IvrMenu).order_by(IvrMenu.id), IvrMenu.tenant_id, ctx.principal, p.tenant_id)
        return page(s, stmt, p.limit, p.offset, lambda m: menu_doc(ctx, m, s))


@method("ivr.update", MenuUpdate, errors=("invalid_params", "not_found", "conflict"))
def update(ctx, p: MenuUpdate):
    """Change a menu (actions are replaced whole when given); checked whole, nothing written when refused."""
    with ctx.app.write() as s:
        m = get_scoped(s, IvrMenu, p.id, ctx.principal, "menu")
        if p.name is not None and p.name != m.name:
            check_unique_name(s, IvrMenu, m.tenant_id, p.name, "menu", exclude_id=m.id)
            m.name = p.name
        if p.clear_time_plan:
            m.time_plan_id, m.other_menu_id = None, None
        _apply(m, p)
        if m.other_menu_id == m.id:
            raise InvalidParams("a menu cannot be its own other menu", field="other_menu_id")
        _check(s, m)
        s.add(m)
        s.flush()
        return menu_doc(ctx, m, s)


@method("ivr.delete", IdParams, errors=("not_found", "conflict"))
def delete(ctx, p: IdParams):
    """Delete a menu and its recordings; refused while another menu leads to it (its number: no longer routed)."""
    with ctx.app.write() as s:
        m = get_scoped(s, IvrMenu, p.id, ctx.principal, "menu")
        users = [
            o.id
            for o in s.exec(select(IvrMenu).where(IvrMenu.tenant_id == m.tenant_id, IvrMenu.id != m.id)).all()
            if o.other_menu_id == m.id or any(a["kind"] == "menu" and str(a["target"]) == str(m.id) for a in o.actions)
        ]
        if users:
            raise Conflict(f"menu(s) {', '.join(map(str, users))} lead to this menu; change them first", menus=users)
        s.delete(m)
    ctx.app.voicemail_store.remove_menu(p.id)
    return {"deleted": True, "id": p.id}


@method("ivr.recording_upload", RecordingUpload, errors=("invalid_params", "not_found"))
def recording_upload(ctx, p: RecordingUpload):
    """The menu's recording (what the caller hears: "for sales press 1 ...") or an action's (a `play` action's text,
    or what is said before the caller is connected), from a WAV file: checked (0.5-120 s, audible, not distorted)
    and converted; the next caller hears it. A file that cannot be used changes nothing."""
    with ctx.app.read() as s:
        m = get_scoped(s, IvrMenu, p.id, ctx.principal, "menu")
    if p.key is not None and not any(a["key"] == p.key for a in m.actions):
        raise InvalidParams(f"menu {m.id} has no action for key {p.key}", field="key")
    try:
        seconds = install(p.data_base64, ctx.app.voicemail_store.ivr_recording(m.id, p.key), ctx.app.voicemail_store)
    except AudioRefused as exc:
        raise InvalidParams(f"the recording cannot be used: {exc}", field="data_base64") from None
    return {"id": m.id, "key": p.key, "duration_s": seconds, "recordings": recordings(ctx, m)}


@method("ivr.recording_delete", RecordingRef, errors=("not_found",))
def recording_delete(ctx, p: RecordingRef):
    """Remove a recording: the menu plays the system's "please make your choice" (an action's: nothing)."""
    with ctx.app.read() as s:
        m = get_scoped(s, IvrMenu, p.id, ctx.principal, "menu")
    path = ctx.app.voicemail_store.ivr_recording(m.id, p.key)
    existed = ctx.app.voicemail_store.remove(path)
    return {"id": m.id, "key": p.key, "deleted": existed, "recordings": recordings(ctx, m)}
