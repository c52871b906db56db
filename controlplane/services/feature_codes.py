"""Feature codes dialled from phones (kemi/policy/features.py), stored by the control plane.

They arrive with the call's record through the CDR spool (durable, once). DND was already set
in Kamailio's shared memory by the worker that took the code; here it is kept in the database, and set in Kamailio
once more (the periodic status sync could have restored the old one in between).
Forwarding and profiles change the configuration, so the next call routes with them.
"""

from __future__ import annotations

import logging

from sqlmodel import select

from controlplane.api.errors import ApiError
from controlplane.db.models import AgentLogin, Extension, ForwardingRule, Profile, Site, User
from controlplane.numbering import e164

log = logging.getLogger("callmanager.features")


def apply_feature(app, feature: dict) -> None:
    kind, user_id, value = feature.get("kind"), int(feature["user_id"]), str(feature.get("value", ""))
    if kind in ("dnd_on", "dnd_off"):
        status = "dnd" if kind == "dnd_on" else "online"
        with app.write(changes_routing=False) as s:
            user = s.get(User, user_id)
            if user is None:
                return
            user.status = status
            s.add(user)
        # Pushed again after the commit: the periodic sync may have put the old status back into Kamailio between the
        # phone's change and this record (it reads the database under the same lock, so this push comes last).
        from controlplane.services.live_state import push_status

        push_status(app.kamailio, user_id, status)
        return
    if kind in ("group_login", "group_logout"):
        with app.write(changes_routing=False) as s:
            row = s.get(AgentLogin, (int(value), user_id))
            if kind == "group_login" and row is not None:
                s.delete(row)
            elif kind == "group_logout":
                s.merge(AgentLogin(group_id=int(value), user_id=user_id, logged_in=False))
        return
    with app.write() as s:
        user = s.get(User, user_id)
        if user is None:
            return
        if kind in ("forward_on", "forward_off"):
            for old in s.exec(
                select(ForwardingRule).where(ForwardingRule.user_id == user.id, ForwardingRule.source == "feature_code")
            ).all():
                s.delete(old)
            if kind == "forward_on":
                s.add(_rule_to(s, user, value))
        elif kind == "profile":
            from controlplane.features.profiles import activate_profile

            prof = (
                s.exec(select(Profile).where(Profile.user_id == user.id, Profile.code == int(value))).first()
                if value != "0"
                else None
            )
            if value != "0" and prof is None:
                log.warning("user %s dialled profile %s, which does not exist", user.id, value)
                return
            push = activate_profile(app, s, user, prof.id if prof else 0)["push"]
    if kind == "profile":
        push()  # after the commit: the profile's status, live
    log.info("feature code %s %s applied for user %s", kind, value, user_id)


def _rule_to(s, user: User, target: str) -> ForwardingRule:
    ext = s.exec(select(Extension).where(Extension.tenant_id == user.tenant_id, Extension.number == target)).first()
    rule = ForwardingRule(
        tenant_id=user.tenant_id, user_id=user.id, kind="unconditional", source="feature_code", position=0
    )
    if ext is not None and ext.user_id != user.id:
        rule.target_user_id = ext.user_id
        return rule
    site = (
        s.get(Site, user.site_id)
        if user.site_id
        else s.exec(select(Site).where(Site.tenant_id == user.tenant_id).order_by(Site.id)).first()
    )
    try:
        rule.target_number = e164(target, "target", region=site.region if site else "DE")
    except ApiError:
        raise ValueError(f"forwarding target {target!r} is neither an extension nor a number") from None
    return rule
