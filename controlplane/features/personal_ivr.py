"""A user's personal IVR (IVR-06): `ivr.personal_set` / `ivr.personal_get`.

A standardized menu for a person's calls — a caller who reaches it may leave a message (1), reach the person on their
mobile (2), their assistant (3), a colleague (4), their department (5) or the switchboard (0): the user (or an admin)
switches each choice on, naming the extension where it is one. It is an IVR menu of the company owned by the user
(`ivr.get` shows it; `ivr.recording_upload` may give it the user's own words, else it says its choices in standard
words) and is reached by forwarding the user's calls to it (`forwarding.create target_ivr_id=`). The mobile is the
user's (`user.update mobile=`) and follows it; the mailbox is the user's own.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints
from sqlmodel import select

from controlplane.api.errors import InvalidParams
from controlplane.api.permissions import Perm
from controlplane.api.rpc import Params, method
from controlplane.db.models import Extension, HuntGroup, IvrMenu, Mailbox, User
from kemi.policy import ivr

from .common import Id, get_scoped
from .ivr import _check, menu_doc

Ext = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^([0-9]{2,8})?$")]


class PersonalRef(Params):
    user_id: Id


class PersonalSet(PersonalRef):
    message: bool = Field(False, description="1: leave a message in the user's mailbox")
    mobile: bool = Field(False, description="2: the user's mobile (user.update mobile=)")
    assistant: Ext = Field("", description="3: the assistant's extension ('' : off)")
    colleague: Ext = Field("", description="4: a colleague's extension ('' : off)")
    department: Ext = Field("", description="5: the department's extension, e.g. its hunt group ('' : off)")
    switchboard: Ext = Field("", description="0: the switchboard's extension ('' : off)")
    timeout_s: int = Field(6, ge=1, le=60, description="waiting for a key after the choices")


def personal_menu(s, user_id: int) -> IvrMenu | None:
    return s.exec(select(IvrMenu).where(IvrMenu.owner_user_id == user_id)).first()


def _extension_exists(s, tenant_id: int, number: str) -> bool:
    if s.exec(select(Extension).where(Extension.tenant_id == tenant_id, Extension.number == number)).first():
        return True
    return any(
        s.exec(select(model).where(model.tenant_id == tenant_id, model.extension == number)).first() is not None
        for model in (HuntGroup, Mailbox, IvrMenu)
    )


def _doc(ctx, s, user: User, m: IvrMenu | None) -> dict:
    on = {a["key"]: a for a in m.actions} if m is not None else {}
    choices = {
        name: (bool(on.get(key)) if kind in ("mailbox", "number") else str(on.get(key, {}).get("target", "")))
        for key, name, kind, _ in ivr.PERSONAL
    }
    return {"user_id": user.id, "menu": menu_doc(ctx, m, s) if m is not None else None, **choices}


@method("ivr.personal_get", PersonalRef, errors=("not_found", "forbidden"), perm=Perm.SELF, others=Perm.CONFIG)
def personal_get(ctx, p: PersonalRef):
    """A user's personal IVR: the choices switched on, and its menu (None: the user has none)."""
    with ctx.app.read() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        ctx.principal.require_self_or(Perm.CONFIG, user.id)
        return _doc(ctx, s, user, personal_menu(s, user.id))


@method(
    "ivr.personal_set",
    PersonalSet,
    errors=("invalid_params", "not_found", "forbidden", "conflict"),
    perm=Perm.SELF,
    others=Perm.CONFIG,
)
def personal_set(ctx, p: PersonalSet):
    """Switch a user's personal IVR's choices on and off (creates its menu the first time). Each choice is checked
    before anything is written: a message needs the user's mailbox, the mobile a mobile number, an extension one of
    the company's; at least one choice."""
    with ctx.app.write() as s:
        user = get_scoped(s, User, p.user_id, ctx.principal, "user")
        ctx.principal.require_self_or(Perm.CONFIG, user.id)
        choices: dict[str, str] = {}
        if p.message:
            box = s.exec(select(Mailbox).where(Mailbox.user_id == user.id)).first()
            if box is None:
                raise InvalidParams("the user has no mailbox to leave a message in", field="message")
            choices["message"] = str(box.id)
        if p.mobile:
            if not user.mobile:
                raise InvalidParams("the user has no mobile number (user.update mobile=)", field="mobile")
            choices["mobile"] = user.mobile
        for name in ("assistant", "colleague", "department", "switchboard"):
            number = getattr(p, name)
            if number and not _extension_exists(s, user.tenant_id, number):
                raise InvalidParams(f"{name}: {number} is no extension of this company", field=name, value=number)
            if number:
                choices[name] = number
        if not choices:
            raise InvalidParams("switch at least one choice on (or delete the menu: ivr.delete)")
        m = personal_menu(s, user.id)
        if m is None:
            m = IvrMenu(tenant_id=user.tenant_id, name=f"personal IVR of user {user.id}", owner_user_id=user.id)
        m.actions, m.timeout_s = ivr.personal_actions(choices), p.timeout_s
        s.add(m)
        s.flush()
        _check(s, m)
        return _doc(ctx, s, user, m)


def follow_mobile(s, user: User) -> None:
    """The user's mobile changed: their personal IVR's mobile choice reaches the new one (none: it is switched off)."""
    m = personal_menu(s, user.id) if user.id is not None else None
    if m is None or not any(a["kind"] == "number" for a in m.actions):
        return
    m.actions = [
        {**a, "target": user.mobile} if a["kind"] == "number" else a
        for a in m.actions
        if a["kind"] != "number" or user.mobile
    ]
    s.add(m)
