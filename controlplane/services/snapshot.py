"""Compile the configuration into the routing snapshot and publish it atomically.

The document is what `kemi.policy.snapshot.parse_snapshot` reads. Publishing = write a temp
file, fsync, rename over `current.json`: every Kamailio worker sees the new inode within its
check interval. The snapshot is validated with the policy core's own parser before it is
published, so a bad compile can never replace a good snapshot.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from controlplane.db.models import (
    CallerListEntry,
    ConfigState,
    DialplanRule,
    Extension,
    ForwardingRule,
    FraudLock,
    FraudPolicyRow,
    HuntGroup,
    Mailbox,
    IvrMenu,
    PhoneNumber,
    Profile,
    SipAccount,
    Site,
    TariffRate,
    Tenant,
    TimePlan,
    Trunk,
    User,
)
from controlplane.group_members import resolved_rings
from kemi.policy.timeplan import DAYS, parse_minutes
from kemi.policy.numbering import PERMISSION_ORDER
from kemi.policy import snapshot_delta
from kemi.policy.snapshot import SNAPSHOT_FORMAT, parse_snapshot
from kemi.policy.snapshot_delta import changes_path, digest

log = logging.getLogger("callmanager.snapshot")


def _narrower(own: str, profile: str | None) -> str:
    """The outbound permission in force: the profile's where it narrows the user's own, never wider (ACC-03)."""
    if not profile:
        return own
    order = [c.value for c in PERMISSION_ORDER]
    return min(own, profile, key=lambda c: order.index(c) if c in order else 0)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


# Values the routing side assumes when a key is absent (kemi.policy.snapshot.parse_snapshot):
# leaving them out keeps a 20,000-user snapshot small, and quick to parse in every worker.
USER_DEFAULTS: dict[str, object] = {
    "enabled": True,
    "number": None,
    "region": "DE",
    "area_code": "",
    "address": "",
    "site": None,
    "outbound": "mobile",
    "clir": False,
    "locked": False,
    "presented_number": None,
    "mobile": None,
    "forwarding": [],
    "call_waiting": True,
    "priority": False,
    "secretary": None,
    "anonymous": "allow",
    "vip": [],
    "blocked": [],
    "extension": None,
    "profile_codes": [],
}


def _without_defaults(doc: dict, defaults: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in defaults or v != defaults[k]}


def compile_snapshot(session: Session, unseal=lambda v: v) -> dict:
    state = session.get(ConfigState, 1)
    tenants = session.exec(select(Tenant)).all()
    users = session.exec(select(User)).all()
    accounts = session.exec(select(SipAccount)).all()
    accounts_by_id = {a.id: a for a in accounts}
    groups_by_id = {g.id: g for g in session.exec(select(HuntGroup).order_by(HuntGroup.id)).all()}
    extensions = session.exec(select(Extension)).all()
    sites = {x.id: x for x in session.exec(select(Site).order_by(Site.id)).all()}
    numbers = session.exec(select(PhoneNumber).order_by(PhoneNumber.id)).all()
    rules = session.exec(select(DialplanRule).order_by(DialplanRule.position, DialplanRule.id)).all()
    trunks = session.exec(select(Trunk).where(Trunk.enabled == True)).all()  # noqa: E712
    plans = session.exec(select(TimePlan).order_by(TimePlan.id)).all()
    vip: dict[tuple[int, int | None], list[str]] = {}
    blocked: dict[tuple[int, int | None], list[dict]] = {}
    for e in session.exec(select(CallerListEntry).order_by(CallerListEntry.id)).all():
        key = e.number if e.number else f"u{e.member_user_id}"
        if e.kind == "vip":
            vip.setdefault((e.tenant_id, e.user_id), []).append(key)
        else:
            divert = None
            if e.divert_user_id is not None or e.divert_number:
                divert = {"id": 0, "kind": "block", "target_user": e.divert_user_id, "target_number": e.divert_number}
            blocked.setdefault((e.tenant_id, e.user_id), []).append({"key": key, "divert": divert})
    forwarding: dict[int, list[dict]] = {}
    active_profile = {u.id: u.active_profile_id for u in users}
    for r in session.exec(
        select(ForwardingRule)
        .where(ForwardingRule.enabled == True)  # noqa: E712
        .order_by(ForwardingRule.position, ForwardingRule.id)
    ).all():
        if r.profile_id is not None and r.profile_id != active_profile.get(r.user_id):
            continue  # bound to a profile that is not active
        forwarding.setdefault(r.user_id, []).append(
            {
                "id": r.id,
                "kind": r.kind,
                "target_user": r.target_user_id,
                "target_number": r.target_number,
                **({"target_mailbox": r.target_mailbox_id} if r.target_mailbox_id else {}),
                **({"target_ivr": r.target_ivr_id} if r.target_ivr_id else {}),
                "callers": r.callers,
                "time_plan": r.time_plan_id,
                "when": r.when,
                "timeout_s": r.timeout_s,
                "present": r.present,
            }
        )
    aors: dict[int, list[str]] = {}
    for a in sorted(accounts, key=lambda a: a.id or 0):
        if a.ring:
            aors.setdefault(a.user_id, []).append(f"sip:{a.username}@{a.realm}")
    profiles = {p.id: p for p in session.exec(select(Profile)).all()}
    profile_codes: dict[int, list[int]] = {}
    for prof in sorted(profiles.values(), key=lambda x: x.code):
        profile_codes.setdefault(prof.user_id, []).append(prof.code)
    primary_ext: dict[int, str] = {}
    for e in sorted(extensions, key=lambda e: e.id or 0):
        primary_ext.setdefault(e.user_id, e.number)
    first_site: dict[int, Site] = {}
    for site in sites.values():
        first_site.setdefault(site.tenant_id, site)
    own_number: dict[int, PhoneNumber] = {}
    group_number: dict[int, str] = {}
    for n in numbers:
        if n.user_id is not None:
            own_number.setdefault(n.user_id, n)
        if n.group_id is not None:
            group_number.setdefault(n.group_id, n.e164)
    dialplans: dict[int, list[dict]] = {}
    for r in rules:
        dialplans.setdefault(r.tenant_id, []).append({"pattern": r.pattern, "replacement": r.replacement})
    clip_ns = {t.id for t in tenants if t.allow_clip_no_screening}
    tenant_anonymous = {t.id: t.anonymous for t in tenants}

    def user_doc(u: User) -> dict:
        site = sites.get(u.site_id) if u.site_id else first_site.get(u.tenant_id)
        num = own_number.get(u.id)
        prof = profiles.get(u.active_profile_id) if u.active_profile_id else None
        return _without_defaults(
            {
                "id": u.id,
                "tenant_id": u.tenant_id,
                "name": u.name,
                "extension": primary_ext.get(u.id),
                "aors": aors.get(u.id, []),
                "enabled": u.enabled,
                "number": num.e164 if num else None,
                "region": site.region if site else "DE",
                "area_code": site.area_code if site else "",
                "address": num.emergency_address if num and num.emergency_address else "",
                "site": site.id if site else None,
                "outbound": _narrower(u.outbound, prof.outbound if prof else None),
                "clir": (prof.clir if prof and prof.clir is not None else u.clir),
                "locked": u.locked,
                "presented_number": u.presented_number if u.tenant_id in clip_ns else None,
                "mobile": u.mobile,
                "forwarding": forwarding.get(u.id, []),
                "call_waiting": u.call_waiting,
                "priority": u.priority_override,
                "secretary": u.secretary_id,
                "anonymous": u.anonymous if u.anonymous != "allow" else tenant_anonymous.get(u.tenant_id, "allow"),
                "vip": vip.get((u.tenant_id, None), []) + vip.get((u.tenant_id, u.id), []),
                "blocked": blocked.get((u.tenant_id, None), []) + blocked.get((u.tenant_id, u.id), []),
                "profile_codes": profile_codes.get(u.id, []),
            },
            USER_DEFAULTS,
        )

    return {
        "format": SNAPSHOT_FORMAT,
        "version": state.version if state else 0,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "tenants": [
            {
                "id": t.id,
                "name": t.name,
                "domain": t.sip_domain,
                "enabled": t.enabled,
                "allow_directory": t.allow_directory,
                "dialplan": dialplans.get(t.id, []),
                **({"language": t.language} if t.language else {}),
                **({"caller_languages": t.caller_languages} if t.caller_languages else {}),
                **({"tls": True} if t.require_tls else {}),
                **({"srtp": True} if t.require_srtp else {}),
            }
            for t in tenants
        ],
        "users": [user_doc(u) for u in users],
        "accounts": [
            {
                "username": a.username,
                "realm": a.realm,
                "ha1": a.ha1,
                "user_id": a.user_id,
                "tenant_id": a.tenant_id,
                **({} if a.enabled else {"enabled": False}),
                **({"clir": a.clir} if a.clir is not None else {}),
                **({"presented_number": a.presented_number} if a.presented_number else {}),
                **({"allowed": list(a.allowed_networks)} if a.allowed_networks else {}),
                **({"tls": True} if a.require_tls else {}),
                **({"srtp": True} if a.require_srtp else {}),
                **({"webrtc": True} if a.webrtc else {}),
            }
            for a in accounts
        ],
        "extensions": [{"tenant_id": e.tenant_id, "number": e.number, "user_id": e.user_id} for e in extensions],
        "numbers": [
            {
                "e164": n.e164,
                "tenant_id": n.tenant_id,
                "user_id": n.user_id,
                **({"group_id": n.group_id} if n.group_id else {}),
                **({"priority": n.priority} if n.priority else {}),
                **({"ivr_id": n.ivr_id} if n.ivr_id else {}),
                **({"voicemail": True} if n.voicemail else {}),
            }
            for n in numbers
        ],
        "trunks": [
            {
                "id": t.id,
                "name": t.name,
                "host": t.host,
                "port": t.port,
                "transport": t.transport,
                "priority": t.priority,
                "region": t.region,
                "sources": list(t.sources) or ([t.host] if _is_ip(t.host) else []),
                "tenant_ids": list(t.tenant_ids),
                "prefixes": list(t.prefixes),
                **(
                    {
                        "auth": {
                            "username": t.auth_username,
                            "password": unseal(t.auth_password),
                            "realm": t.auth_realm or "",
                        }
                    }
                    if t.auth_username
                    else {}
                ),
            }
            for t in trunks
        ],
        "sites": [
            {
                "id": x.id,
                "tenant_id": x.tenant_id,
                "region": x.region,
                **{k: getattr(x, k) for k in ("street", "house_number", "postal_code", "city") if getattr(x, k)},
                **({"emergency_trunk": x.emergency_trunk_id} if x.emergency_trunk_id else {}),
            }
            for x in sites.values()
        ],
        "time_plans": [compile_time_plan(p) for p in plans],
        "groups": [
            compile_group(
                g,
                vip.get((g.tenant_id, None), []),
                blocked.get((g.tenant_id, None), []),
                group_number.get(g.id),
                groups_by_id.get,
                accounts_by_id.get,
            )
            for g in groups_by_id.values()
        ],
        "skills": {str(u.id): u.skills for u in users if u.skills},
        "trusted": [],
        "fraud": compile_fraud(session),
        "mailboxes": [
            {
                "id": m.id,
                "tenant_id": m.tenant_id,
                "max_s": m.max_message_s,
                **({"user_id": m.user_id} if m.user_id else {}),
                **({"group_id": m.group_id} if m.group_id else {}),
                **({"extension": m.extension} if m.extension else {}),
            }
            for m in session.exec(select(Mailbox).where(Mailbox.enabled == True).order_by(Mailbox.id)).all()  # noqa: E712
        ],
        "ivr_menus": [compile_menu(m) for m in session.exec(select(IvrMenu).order_by(IvrMenu.id)).all()],
    }


def compile_menu(m: IvrMenu) -> dict:
    """An IVR menu as the policy reads it (kemi.policy.ivr.parse_menus); the media server gets the same."""
    return {
        "id": m.id,
        "tenant_id": m.tenant_id,
        "name": m.name,
        "extension": m.extension,
        "timeout_s": m.timeout_s,
        "tries": m.tries,
        "actions": [{"key": a["key"], "kind": a["kind"], "target": str(a.get("target") or "")} for a in m.actions],
        "time_plan": m.time_plan_id,
        "when": m.when,
        "other_menu": m.other_menu_id if m.time_plan_id else None,
        "language": m.language,
        **({"personal": True} if m.owner_user_id else {}),
    }


def compile_fraud(session: Session) -> dict:
    """Tenants' fraud policies (only those that differ from the defaults), the tariff, the locks in force."""
    rates = session.exec(select(TariffRate)).all()
    return {
        "policies": {
            str(p.tenant_id): {
                "user": p.user_limits,
                "tenant": p.tenant_limits,
                "warn_ratio": p.warn_ratio,
                "spend_level": p.spend_level,
                "allow_high_risk": p.allow_high_risk,
                "anomaly_level": p.anomaly_level,
                "outbound": p.outbound,
            }
            for p in session.exec(select(FraudPolicyRow)).all()
        },
        "tariff": {
            "currency": rates[0].currency if rates else "EUR",
            "rates": {r.prefix: r.rate_per_min for r in rates},
        },
        "locks": [
            {
                "id": lk.id,
                "tenant_id": lk.tenant_id,
                "user_id": lk.user_id,
                "level": lk.level,
                "dest_class": lk.dest_class,
                "reason": lk.reason,
            }
            for lk in session.exec(select(FraudLock).where(FraudLock.lifted_at.is_(None)).order_by(FraudLock.id)).all()
        ],
    }


def compile_group(
    g: HuntGroup,
    tenant_vip: list | None = None,
    tenant_blocked: list | None = None,
    number: str | None = None,
    group_of=lambda gid: None,
    account_of=lambda aid: None,
) -> dict:
    """A hunt group as the policy core reads it: members resolved to users (SIP-account members ring
    only that device, teams are their group's members); the tenant's VIP and block lists apply too."""
    rings = resolved_rings(g, group_of, account_of)
    devices: dict[str, list[str]] = {}
    for ring in rings:
        for m in ring:
            if m.get("aor"):
                devices.setdefault(str(m["user_id"]), []).append(m["aor"])
    overflow = None
    if g.overflow_user_id or g.overflow_number or g.overflow_group_id or g.overflow_mailbox_id:
        overflow = {
            "id": 0,
            "kind": "overflow",
            "target_user": g.overflow_user_id,
            "target_number": g.overflow_number,
            "target_group": g.overflow_group_id,
            **({"target_mailbox": g.overflow_mailbox_id} if g.overflow_mailbox_id else {}),
        }
    return {
        "id": g.id,
        "tenant_id": g.tenant_id,
        "name": g.name,
        "extension": g.extension,
        "rings": [
            {
                "members": [m["user_id"] for m in members],
                "strategy": r["strategy"],
                "wait_s": r["wait_s"],
                "member_s": r["member_s"],
                "keep_previous": r["keep_previous"],
                "busy_members": r["busy_members"],
                "dnd_members": r.get("dnd_members", "skip"),
                "delays": {str(m["user_id"]): m["delay_s"] for m in members if m.get("delay_s")},
            }
            for r, members in zip(g.rings, rings)
        ],
        "devices": devices,
        "overflow": overflow,
        "max_waiting": g.max_waiting,
        "presentation": g.presentation,
        "skills": g.skills,
        "skills_fallback": g.skills_fallback,
        "wrapup_s": g.wrapup_s,
        "callback_window_s": g.callback_window_s,
        "queue_s": g.queue_s,
        **({} if g.queue_music else {"queue_music": False}),
        **({"queue_announce_s": g.queue_announce_s} if g.queue_announce_s != 30 else {}),
        "anonymous": g.anonymous,
        "number": number,
        "vip": list(tenant_vip or []) + list(g.vip),
        "blocked": list(tenant_blocked or [])
        + [
            {
                "key": b["key"],
                "divert": (
                    {"kind": "block", "target_user": b.get("divert_user_id"), "target_number": b.get("divert_number")}
                    if b.get("divert_user_id") or b.get("divert_number")
                    else None
                ),
            }
            for b in g.blocked
        ],
        "forwarding": [
            {
                "id": i + 1,
                "kind": r["kind"],
                "target_user": r.get("target_user_id"),
                "target_number": r.get("target_number"),
                "target_group": r.get("target_group_id"),
                "callers": r.get("callers", "all"),
                "time_plan": r.get("time_plan_id"),
                "when": r.get("when", "in"),
            }
            for i, r in enumerate(g.forwarding)
        ],
    }


HOLIDAY_YEARS = 3  # holidays are expanded, at every compile, for this year and the next two


def compile_time_plan(p: TimePlan, today: date | None = None) -> dict:
    """A time plan as the policy core reads it: day numbers, minutes, and every closed date spelled out."""
    today = today or date.today()
    closed = set(p.closed_dates)
    if p.holidays_country:
        import holidays

        years = range(today.year, today.year + HOLIDAY_YEARS)
        closed |= {
            d.isoformat() for d in holidays.country_holidays(p.holidays_country, subdiv=p.holidays_subdiv, years=years)
        }
    return {
        "id": p.id,
        "name": p.name,
        "tz": p.tz,
        "ranges": [
            {
                "days": [DAYS.index(d) for d in r["days"]],
                "start": parse_minutes(r["start"]),
                "end": parse_minutes(r["end"]),
            }
            for r in p.ranges
        ],
        "closed_dates": sorted(closed),
    }


def write_atomically(path: Path, data: bytes) -> None:
    """Write, fsync, rename. Mode 0600: the snapshot holds HA1s and trunk credentials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp.{os.getpid()}")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


MAX_CHANGES = 16  # recent changes kept for the workers: one that is further behind reads the whole document


def _published(path: Path) -> tuple[dict, str] | None:
    """The document published before this control plane started, and its digest (None: none readable)."""
    try:
        data = path.read_bytes()
        doc = json.loads(data)
    except (OSError, ValueError):
        return None
    return (doc, digest(data)) if isinstance(doc, dict) else None


class SnapshotPublisher:
    """Publishes a new snapshot whenever the config version moves (kicked after each write)."""

    def __init__(self, engine: Engine, path: Path, metrics=None, poll_interval: float = 2.0, unseal=lambda v: v):
        self.engine = engine
        self.unseal = unseal
        self.path = Path(path)
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.published_version: int | None = None
        self.published_at: float | None = None
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._previous: tuple[dict, str] | None = None  # the published document and its digest
        self._changes: list[dict] = []  # the recent changes, oldest first
        self.on_published = None  # called with each published document (the IVR menus for the media server)

    def current_version(self) -> int:
        with Session(self.engine) as s:
            state = s.get(ConfigState, 1)
            return state.version if state else 0

    def publish(self, force: bool = False) -> int:
        with self._lock:
            if not force and self.current_version() == self.published_version and self.path.exists():
                return self.published_version  # nothing changed: do not compile (it reads every account)
            # one consistent view: the version and the rows it stands for (PostgreSQL's default READ COMMITTED lets each
            # statement see later commits — a snapshot holding a newer change under the older version, seen under load)
            engine = (
                self.engine.execution_options(isolation_level="REPEATABLE READ")
                if self.engine.dialect.name == "postgresql"
                else self.engine
            )
            with Session(engine) as s:
                doc = compile_snapshot(s, self.unseal)
            parse_snapshot(doc)  # the routing side must accept it
            data = json.dumps(
                {"version": doc["version"], **doc}, separators=(",", ":")
            ).encode()  # the version first: the workers read it from the file's head (kemi/shell/snapshot_holder.py)
            self._publish_changes(doc, data)
            write_atomically(self.path, data)
            if self.on_published is not None:
                try:
                    self.on_published(doc)
                except OSError as exc:  # the routing snapshot is out; what depends on it is written next time
                    log.error("after publishing snapshot %s: %s", doc["version"], exc)
            self.published_version = doc["version"]
            self.published_at = datetime.now(timezone.utc).timestamp()
            if self.metrics:
                self.metrics.snapshot_published(doc["version"], len(doc["accounts"]))
            log.info("published routing snapshot version %s (%d accounts)", doc["version"], len(doc["accounts"]))
            return doc["version"]

    def _publish_changes(self, doc: dict, data: bytes) -> None:
        """The change from the published document to this one, appended to the recent changes the workers apply
        instead of reading the whole document (kemi.policy.snapshot_delta); written before the document itself."""
        if self._previous is None:
            self._previous = _published(self.path)
        new = digest(data)
        change = snapshot_delta.diff(self._previous[0], doc, self._previous[1], new) if self._previous else None
        self._changes = (self._changes + [change])[-MAX_CHANGES:] if change is not None else []
        payload = {"current": {"version": doc["version"], "digest": new}, "changes": self._changes}
        write_atomically(Path(changes_path(str(self.path))), json.dumps(payload, separators=(",", ":")).encode())
        self._previous = (doc, new)

    def kick(self) -> None:
        self._kick.set()
        if self._thread is None:  # no background worker (tests, CLI): publish now
            self.publish()

    def start(self) -> None:
        self.publish(force=True)
        self._thread = threading.Thread(target=self._run, name="snapshot-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(self.poll_interval)
            self._kick.clear()
            if self._stop.is_set():
                break
            try:
                self.publish()
            except Exception:  # noqa: BLE001 - keep publishing on the next kick
                log.exception("snapshot publish failed; the previous snapshot stays in force")
