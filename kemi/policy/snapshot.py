"""The routing snapshot: an immutable, in-memory view of the configuration.

The control plane compiles the database into a JSON document (see `controlplane.services.snapshot`);
every Kamailio worker parses it once into these frozen objects and routes from them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

from .forwarding import ForwardRule
from .fraud import DEFAULT_POLICY, FraudPolicy, Limits, Lock, tariff
from .hunting import Group, Ring, qualified_levels
from .ivr import parse_menus
from .location import Location
from .numbering import DestClass, Plan
from .timeplan import TimePlan, TimeRange

SNAPSHOT_FORMAT = 1


class SnapshotError(ValueError):
    """The snapshot document is malformed; the previous snapshot stays in force."""


class Account(NamedTuple):
    """A SIP account. Snapshot records are NamedTuples: 20,000 of them are built on every reload."""

    username: str
    realm: str
    ha1: str
    ha1b: str
    user_id: int
    tenant_id: int
    enabled: bool = True
    aor: str = ""  # sip:username@realm (filled in by the parser)
    clir: bool | None = None  # TEL-29: overrides the user's CLIR for calls made from this device
    presented_number: str | None = None  # ... and the presented number
    allowed: tuple = ()  # SEC-10: networks the account may be used from (empty: anywhere)
    tls: bool = False  # registers and calls over TLS only (its tenant's `tls` applies too; kemi.policy.media)
    srtp: bool = False  # offers SRTP on its calls (its tenant's `srtp` applies too)
    webrtc: bool = False  # a browser: its user's calls are offered per device (kemi.policy.media)


class User(NamedTuple):
    id: int
    tenant_id: int
    name: str
    extension: str | None
    aors: tuple[str, ...]
    enabled: bool = True
    number: str | None = None  # the user's own public number (E.164), presented on outgoing calls
    plan: Plan = Plan()  # country and area code of the user's site: how short numbers are read
    address: str = ""  # nomadic use: the address of the user's number, sent with emergency calls instead of the site's
    outbound: DestClass = DestClass.MOBILE  # outbound permission class
    clir: bool = False  # suppress the own number on outgoing calls
    locked: bool = False  # outgoing calls refused, emergency calls excepted
    presented_number: str | None = None  # CLIP no screening (only compiled in where the tenant allows it)
    forwarding: tuple[ForwardRule, ...] = ()  # in the order they are tried
    call_waiting: bool = True  # False: busy-on-busy, a second call finds the user busy
    priority: bool = False  # priority override (TEAM-08): this user's calls ring through DND and forwarding
    secretary: int | None = None  # boss-secretary (TEAM-07): calls go to this user, who puts them through
    anonymous: str = "allow"  # calls without a caller number: allow or reject
    vip: frozenset[str] = frozenset()  # caller keys ('+49...' or 'u<id>') treated as VIP (TEAM-10)
    blocked: Mapping[str, ForwardRule | None] | None = None  # caller key -> divert rule, None: reject
    profile_codes: tuple[int, ...] = ()  # codes of the user's profiles (*30<code> from the phone)
    site: int | None = None  # the user's site (their own, else the tenant's first); None: the tenant has none
    mobile: str | None = None  # their mobile phone (E.164): the central voicemail knows calls it forwards (VM-08)


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str
    domain: str
    enabled: bool = True
    allow_directory: bool = False  # 118xx directory services
    dialplan: tuple[tuple[re.Pattern, str], ...] = ()  # rewrites of dialled numbers, first match applies
    language: str = ""  # its callers' announcements (kemi.policy.announce); '' : the node's
    # callers from the public network by their number (ACD-21): (E.164 prefix, language), longest prefix first
    caller_languages: tuple[tuple[str, str], ...] = ()
    tls: bool = False  # every account: signalling over TLS only (docs/tls.md)
    srtp: bool = False  # every account: media over SRTP only; calls to its users are offered SRTP

    def language_for(self, caller_number: str = "", external: bool = False) -> str:
        """The language this tenant's caller hears: by their number's prefix when they call from the public network
        (ACD-21: English for callers from abroad), else the tenant's ('' : the node's)."""
        if external and caller_number.startswith("+"):
            for prefix, language in self.caller_languages:
                if caller_number.startswith(prefix):
                    return language
        return self.language

    def rewrite(self, dialled: str) -> tuple[str, str]:
        """The dialled string after the tenant's dial plan, and the rule that fired ('' if none)."""
        for pattern, replacement in self.dialplan:
            if pattern.fullmatch(dialled):
                return pattern.sub(replacement, dialled, count=1), pattern.pattern
        return dialled, ""


@dataclass(frozen=True, slots=True)
class Trunk:
    id: int
    name: str
    host: str
    port: int
    transport: str
    priority: int
    region: str = "DE"
    sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    tenant_ids: frozenset[int] = frozenset()  # empty: every tenant
    prefixes: tuple[str, ...] = ()  # E.164 prefixes it carries; empty: all
    auth: tuple[str, str, str] | None = field(
        default=None, repr=False
    )  # (username, password, realm) the carrier challenges for

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.host}:{self.port};transport={self.transport}"

    def serves(self, tenant_id: int, e164: str | None) -> bool:
        if self.tenant_ids and tenant_id not in self.tenant_ids:
            return False
        return e164 is None or not self.prefixes or any(e164.startswith(p) for p in self.prefixes)


@dataclass(frozen=True, slots=True)
class Site:
    """A tenant's location: the civic address sent with emergency calls, and the trunk those calls try first."""

    id: int
    tenant_id: int
    region: str
    street: str = ""
    house_number: str = ""
    postal_code: str = ""
    city: str = ""
    emergency_trunk: int | None = None  # trunk id


@dataclass(frozen=True, slots=True)
class Number:
    """A public number of the platform and where it routes."""

    e164: str
    tenant_id: int
    user_id: int | None
    group_id: int | None = None  # a hunt group's number
    priority: int = 0  # calls to this number wait ahead of lower ones in the group's queue (0..9)
    ivr_id: int | None = None  # an IVR menu's number (IVR-01)
    voicemail: bool = False  # the tenant's central voicemail (VM-08)


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A mailbox that takes messages now (VM-01; a disabled one is not in the snapshot)."""

    id: int
    tenant_id: int
    max_s: int = 120  # the longest message recorded
    user_id: int | None = None  # a user's own mailbox (None: a hunt group's)
    group_id: int | None = None  # ... the hunt group's
    extension: str = ""  # its own extension (VM-09)


@dataclass(frozen=True)
class Snapshot:
    version: int
    generated_at: str
    tenants: Mapping[int, Tenant]
    domains: Mapping[str, int]  # SIP domain -> tenant id
    accounts: Mapping[tuple[str, str], Account]  # (username, realm) -> account
    users: Mapping[int, User]
    extensions: Mapping[tuple[int, str], int]  # (tenant id, extension) -> user id
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    default_realm: str = "callmanager"
    extras: Mapping[str, Any] = field(default_factory=dict)
    trunks: tuple[Trunk, ...] = ()  # by priority
    numbers: Mapping[str, Number] = field(default_factory=dict)  # E.164 -> number
    time_plans: Mapping[int, TimePlan] = field(default_factory=dict)
    groups: Mapping[int, Group] = field(default_factory=dict)  # hunt groups by id
    group_extensions: Mapping[tuple[int, str], int] = field(default_factory=dict)  # (tenant, extension) -> group id
    skills: Mapping[int, Mapping[str, int]] = field(default_factory=dict)  # user id -> skill levels (agents only)
    callback_agents: Mapping[int, int] = field(
        default_factory=dict
    )  # agent -> longest callback window of their groups (s)
    agents: frozenset[int] = frozenset()  # members of any hunt group: their calls are tracked (busy handling)
    no_device: frozenset[int] = frozenset()  # group members without a SIP account that rings (or no longer users)
    # accounts that may authenticate now (account, user and tenant enabled): one lookup per request
    active_accounts: Mapping[tuple[str, str], Account] = field(default_factory=dict)
    # fraud controls (kemi.policy.fraud): tenants' policies (absent: the defaults), the tariff, locks in force
    fraud_policies: Mapping[int, Any] = field(default_factory=dict)
    tariff: Any = None
    user_locks: Mapping[int, tuple] = field(default_factory=dict)  # user id -> Locks
    tenant_locks: Mapping[int, tuple] = field(default_factory=dict)  # tenant id -> Locks on the whole tenant
    sites: Mapping[int, Site] = field(default_factory=dict)
    mailboxes: Mapping[int, Mailbox] = field(default_factory=dict)
    mailbox_extensions: Mapping[tuple[int, str], int] = field(default_factory=dict)  # (tenant, extension) -> mailbox
    ivr_menus: Mapping[int, Any] = field(default_factory=dict)  # id -> kemi.policy.ivr.Menu
    ivr_extensions: Mapping[tuple[int, str], int] = field(default_factory=dict)  # (tenant, extension) -> menu

    def user_by_phone(self, tenant_id: int, e164: str) -> User | None:
        """The tenant's user whose mobile or own public number this is (the central voicemail, VM-08: a scan of the
        users, on that rare path only)."""
        own = self.numbers.get(e164)
        if own is not None and own.tenant_id == tenant_id and own.user_id is not None and own.user_id in self.users:
            return self.users[own.user_id]
        return next((u for u in self.users.values() if u.mobile == e164 and u.tenant_id == tenant_id), None)

    def mailbox_of_user(self, user_id: int) -> Mailbox | None:
        """A user's own mailbox, if it takes calls."""
        return next((m for m in self.mailboxes.values() if m.user_id == user_id), None)

    def location_of(self, user: User) -> Location:
        """Where a user is for emergency services: their number's nomadic address, else their site's; else the
        country."""
        if user.address:
            return Location(user.plan.region, text=user.address)
        site = self.sites.get(user.site) if user.site is not None else None
        if site is None:
            return Location(user.plan.region)
        return Location(site.region, site.street, site.house_number, site.postal_code, site.city)

    def emergency_trunks(self, tenant_id: int, user: User) -> tuple[Trunk, ...]:
        """The trunks an emergency call tries, in order: the site's emergency trunk, then every other trunk of the
        tenant (whatever destinations they are limited to: an emergency call is never refused for a trunk's
        prefixes)."""
        site = self.sites.get(user.site) if user.site is not None else None
        first = site.emergency_trunk if site is not None else None
        trunks = [t for t in self.trunks if t.serves(tenant_id, None)]
        trunks.sort(key=lambda t: t.id != first)  # stable: the rest keep their priority order
        return tuple(trunks)

    def fraud_policy(self, tenant_id: int):
        return self.fraud_policies.get(tenant_id, DEFAULT_POLICY)

    def locks_for(self, tenant_id: int, user_id: int | None) -> tuple:
        if not self.user_locks and not self.tenant_locks:
            return ()
        return self.tenant_locks.get(tenant_id, ()) + (self.user_locks.get(user_id, ()) if user_id is not None else ())

    def trunk_for_source(self, ip: str) -> Trunk | None:
        if not self.trunks:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for t in self.trunks:
            if any(addr in net for net in t.sources):
                return t
        return None

    def trunks_for(self, tenant_id: int, e164: str | None) -> tuple[Trunk, ...]:
        """The trunks that carry this tenant's call to e164 (any destination when None), in failover order."""
        return tuple(t for t in self.trunks if t.serves(tenant_id, e164))

    def account_for_aor(self, aor: str) -> Account | None:
        """The active account behind an AOR (sip:username@realm), None when there is none."""
        user, sep, realm = aor.removeprefix("sip:").partition("@")
        return self.active_accounts.get((user, realm.lower())) if sep else None

    def tenant_for_domain(self, domain: str) -> Tenant | None:
        tid = self.domains.get(domain.lower())
        return self.tenants.get(tid) if tid is not None else None

    def is_trusted(self, ip: str) -> bool:
        if not self.trusted:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)


def _fraud(doc: Mapping[str, Any]) -> dict:
    """The fraud section: {"policies": {tenant: {...}}, "tariff": {"currency", "rates"}, "locks": [...]}."""
    policies = {}
    for tid, p in (doc.get("policies") or {}).items():
        policies[int(tid)] = FraudPolicy(
            Limits(**p.get("user", {})),
            Limits(**p.get("tenant", {})),
            float(p.get("warn_ratio", 0.8)),
            int(p.get("spend_level", 3)),
            bool(p.get("allow_high_risk", False)),
            tuple(p["high_risk"]) if p.get("high_risk") else FraudPolicy().high_risk,
            int(p.get("anomaly_level", 2)),
            str(p.get("outbound", "special")),
        )
    t = doc.get("tariff") or {}
    user_locks: dict[int, tuple] = {}
    tenant_locks: dict[int, tuple] = {}
    for lk in doc.get("locks") or ():
        lock = Lock(
            int(lk["id"]),
            int(lk["user_id"]) if lk.get("user_id") is not None else 0,
            int(lk["level"]),
            str(lk.get("dest_class", "")),
            str(lk.get("reason", "")),
        )
        if lk.get("user_id") is None:
            tenant_locks[int(lk["tenant_id"])] = tenant_locks.get(int(lk["tenant_id"]), ()) + (lock,)
        else:
            user_locks[lock.user_id] = user_locks.get(lock.user_id, ()) + (lock,)
    return {
        "fraud_policies": policies,
        "tariff": tariff({str(k): float(v) for k, v in (t.get("rates") or {}).items()}, str(t.get("currency", "EUR"))),
        "user_locks": user_locks,
        "tenant_locks": tenant_locks,
    }


_OFF = Tenant(0, "", "", enabled=False)
EMPTY = Snapshot(version=0, generated_at="", tenants={}, domains={}, accounts={}, users={}, extensions={})


def parse_snapshot(doc: Mapping[str, Any]) -> Snapshot:
    """Build a Snapshot from its JSON document; raise SnapshotError on any malformation."""
    try:
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"unsupported snapshot format {doc.get('format')!r}")
        tenants = parse_tenants(doc["tenants"])
        accounts = dict(map(parse_account, doc["accounts"]))
        users = dict(map(parse_user, doc["users"]))
        skills = parse_skills(doc.get("skills", {}))
        groups = parse_groups(doc.get("groups", ()), skills)
        return assemble(
            doc,
            tenants=tenants,
            accounts=accounts,
            users=users,
            extensions=dict(map(parse_extension, doc["extensions"])),
            numbers=dict(map(parse_number, doc.get("numbers", ()))),
            groups=groups,
            skills=skills,
            active_accounts={key: acc for key, acc in accounts.items() if is_active(acc, tenants, users)},
            sections={name: parse(doc) for name, parse in SECTIONS.items()},
        )
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise SnapshotError(f"malformed snapshot: {exc!r}") from exc


def assemble(
    doc: Mapping[str, Any],
    *,
    tenants: Mapping[int, Tenant],
    accounts: Mapping[tuple[str, str], Account],
    users: Mapping[int, User],
    extensions: Mapping[tuple[int, str], int],
    numbers: Mapping[str, Number],
    groups: Mapping[int, Group],
    skills: Mapping[int, Mapping[str, int]],
    active_accounts: Mapping[tuple[str, str], Account],
    sections: Mapping[str, Any],
    derived_from_groups: tuple | None = None,
    no_device: frozenset[int] | None = None,
) -> Snapshot:
    """The snapshot from its parsed parts (`doc` gives the version, its date and the default realm; `sections` the
    parts parsed as a whole, see SECTIONS), with what is derived from them. `derived_from_groups`: the previous
    snapshot's (callback_agents, agents) when the groups did not change; `no_device` its no_device when neither the
    groups nor their members changed."""
    callback_agents, agents = derived_from_groups or (
        _callback_agents(groups),
        frozenset(m for g in groups.values() for m in g.all_members),
    )
    return Snapshot(
        version=int(doc["version"]),
        generated_at=str(doc.get("generated_at", "")),
        tenants=tenants,
        domains={t.domain: t.id for t in tenants.values()},
        accounts=accounts,
        users=users,
        extensions=extensions,
        default_realm=str(doc.get("default_realm", "callmanager")),
        numbers=numbers,
        groups=groups,
        group_extensions={(g.tenant_id, g.extension): gid for gid, g in groups.items()},
        skills=skills,
        callback_agents=callback_agents,
        agents=agents,
        no_device=no_device
        if no_device is not None
        else frozenset(m for g in groups.values() for m in g.all_members if m not in users or not users[m].aors),
        active_accounts=active_accounts,
        **sections["fraud"],
        trusted=sections["trusted"],
        extras=sections["extras"],
        trunks=sections["trunks"],
        time_plans=sections["time_plans"],
        sites=sections["sites"],
        mailboxes=sections["mailboxes"],
        mailbox_extensions={(m.tenant_id, m.extension): m.id for m in sections["mailboxes"].values() if m.extension},
        ivr_menus=sections["ivr_menus"],
        ivr_extensions={(m.tenant_id, m.extension): m.id for m in sections["ivr_menus"].values() if m.extension},
    )


def is_active(acc: Account, tenants: Mapping[int, Tenant], users: Mapping[int, User]) -> bool:
    """An account that may authenticate now: it, its user and its tenant enabled."""
    user = users.get(acc.user_id)
    return acc.enabled and tenants.get(acc.tenant_id, _OFF).enabled and user is not None and user.enabled


def parse_tenants(rows) -> dict[int, Tenant]:
    return {
        int(t["id"]): Tenant(
            int(t["id"]),
            str(t["name"]),
            str(t["domain"]).lower(),
            bool(t.get("enabled", True)),
            allow_directory=bool(t.get("allow_directory", False)),
            dialplan=tuple((re.compile(str(r["pattern"])), str(r["replacement"])) for r in t.get("dialplan", ())),
            language=str(t.get("language", "")),
            caller_languages=tuple(
                sorted(
                    ((str(p), str(lang)) for p, lang in (t.get("caller_languages") or {}).items()),
                    key=lambda pl: -len(pl[0]),
                )
            ),
            tls=bool(t.get("tls", False)),
            srtp=bool(t.get("srtp", False)),
        )
        for t in rows
    }


def account_key(a: Mapping[str, Any]) -> tuple[str, str]:
    return str(a["username"]), str(a["realm"]).lower()


def parse_account(a: Mapping[str, Any]) -> tuple[tuple[str, str], Account]:
    username, realm = account_key(a)
    return (username, realm), Account(
        username=username,
        realm=realm,
        ha1=str(a["ha1"]),
        ha1b=str(a.get("ha1b", "")),
        user_id=int(a["user_id"]),
        tenant_id=int(a["tenant_id"]),
        enabled=bool(a.get("enabled", True)),
        aor=f"sip:{username}@{realm}",
        clir=a.get("clir"),
        presented_number=a.get("presented_number"),
        allowed=tuple(ipaddress.ip_network(c, strict=False) for c in a["allowed"]) if a.get("allowed") else (),
        tls=bool(a.get("tls", False)),
        srtp=bool(a.get("srtp", False)),
        webrtc=bool(a.get("webrtc", False)),
    )


_PLANS: dict[tuple[str, str], Plan] = {}  # one Plan per country and area code, shared by the users of a site
_CLASSES = {c.value: c for c in DestClass}


def parse_user(u: Mapping[str, Any]) -> tuple[int, User]:
    plan_key = (str(u.get("region", "DE")), str(u.get("area_code", "")))
    plan = _PLANS.get(plan_key) or _PLANS.setdefault(plan_key, Plan(*plan_key))
    blocked = u.get("blocked")
    return int(u["id"]), User(
        id=int(u["id"]),
        tenant_id=int(u["tenant_id"]),
        name=str(u["name"]),
        extension=u.get("extension"),
        aors=tuple(u.get("aors", ())),
        enabled=bool(u.get("enabled", True)),
        number=u.get("number"),
        plan=plan,
        address=str(u.get("address", "")),
        outbound=_CLASSES[u.get("outbound", "mobile")],
        clir=bool(u.get("clir", False)),
        locked=bool(u.get("locked", False)),
        presented_number=u.get("presented_number"),
        forwarding=tuple(_rule(r) for r in u["forwarding"]) if u.get("forwarding") else (),
        call_waiting=bool(u.get("call_waiting", True)),
        priority=bool(u.get("priority", False)),
        secretary=u.get("secretary"),
        anonymous=str(u.get("anonymous", "allow")),
        vip=frozenset(u["vip"]) if u.get("vip") else frozenset(),
        blocked={str(b["key"]): (_rule(b["divert"]) if b.get("divert") else None) for b in blocked}
        if blocked
        else None,
        profile_codes=tuple(int(c) for c in u.get("profile_codes", ())),
        site=int(u["site"]) if u.get("site") is not None else None,
        mobile=u.get("mobile"),
    )


def extension_key(e: Mapping[str, Any]) -> tuple[int, str]:
    return int(e["tenant_id"]), str(e["number"])


def parse_extension(e: Mapping[str, Any]) -> tuple[tuple[int, str], int]:
    return extension_key(e), int(e["user_id"])


def parse_number(n: Mapping[str, Any]) -> tuple[str, Number]:
    return str(n["e164"]), Number(
        str(n["e164"]),
        int(n["tenant_id"]),
        int(n["user_id"]) if n.get("user_id") is not None else None,
        int(n["group_id"]) if n.get("group_id") else None,
        int(n.get("priority", 0)),
        int(n["ivr_id"]) if n.get("ivr_id") else None,
        bool(n.get("voicemail", False)),
    )


def parse_skills(doc: Mapping[str, Any]) -> dict[int, dict[str, int]]:
    return {int(k): dict(v) for k, v in doc.items()}


def parse_groups(rows, skills: Mapping[int, Mapping[str, int]]) -> dict[int, Group]:
    groups = {}
    for g in rows:
        rings = tuple(
            Ring(
                members=tuple(int(m) for m in r["members"]),
                strategy=str(r.get("strategy", "broadcast")),
                wait_s=int(r.get("wait_s", 20)),
                member_s=int(r.get("member_s", 10)),
                keep_previous=bool(r.get("keep_previous", False)),
                busy_members=str(r.get("busy_members", "skip")),
                delays={int(k): int(v) for k, v in r["delays"].items()} if r.get("delays") else None,
                dnd_members=str(r.get("dnd_members", "skip")),
            )
            for r in g["rings"]
        )
        all_members = tuple(dict.fromkeys(m for r in rings for m in r.members))
        group = Group(
            id=int(g["id"]),
            tenant_id=int(g["tenant_id"]),
            name=str(g["name"]),
            rings=rings,
            overflow=_overflow(g.get("overflow")),
            max_waiting=int(g.get("max_waiting", 0)),
            presentation=str(g.get("presentation", "caller")),
            number=g.get("number"),
            skills=dict(g["skills"]) if g.get("skills") else None,
            skills_fallback=bool(g.get("skills_fallback", True)),
            wrapup_s=int(g.get("wrapup_s", 0)),
            callback_window_s=int(g.get("callback_window_s", 0)),
            queue_s=int(g.get("queue_s", 0)),
            queue_music=bool(g.get("queue_music", True)),
            queue_announce_s=int(g.get("queue_announce_s", 30)),
            extension=str(g.get("extension", "")),
            anonymous=str(g.get("anonymous", "allow")),
            vip=frozenset(g["vip"]) if g.get("vip") else frozenset(),
            blocked={str(b["key"]): (_rule(b["divert"]) if b.get("divert") else None) for b in g["blocked"]}
            if g.get("blocked")
            else None,
            forwarding=tuple(_rule(r) for r in g["forwarding"]) if g.get("forwarding") else (),
            all_members=all_members,
            devices={int(k): tuple(v) for k, v in g["devices"].items()} if g.get("devices") else None,
        )
        if group.skills:
            group = group._replace(levels=qualified_levels(skills, all_members, group.skills))
        groups[group.id] = group
    return groups


def _time_plans(doc: Mapping[str, Any]) -> dict[int, TimePlan]:
    return {
        int(p["id"]): TimePlan(
            int(p["id"]),
            str(p["name"]),
            str(p.get("tz", "Europe/Berlin")),
            tuple(
                TimeRange(frozenset(int(d) for d in r["days"]), int(r["start"]), int(r["end"]))
                for r in p.get("ranges", ())
            ),
            frozenset(str(d) for d in p.get("closed_dates", ())),
        )
        for p in doc.get("time_plans", ())
    }


def _trunks(doc: Mapping[str, Any]) -> tuple[Trunk, ...]:
    return tuple(
        sorted(
            (
                Trunk(
                    id=int(t["id"]),
                    name=str(t["name"]),
                    host=str(t["host"]),
                    port=int(t["port"]),
                    transport=str(t["transport"]),
                    priority=int(t["priority"]),
                    region=str(t.get("region", "DE")),
                    sources=tuple(ipaddress.ip_network(c, strict=False) for c in t.get("sources", ())),
                    tenant_ids=frozenset(int(x) for x in t.get("tenant_ids", ())),
                    prefixes=tuple(str(x) for x in t.get("prefixes", ())),
                    auth=(str(t["auth"]["username"]), str(t["auth"]["password"]), str(t["auth"].get("realm", "")))
                    if t.get("auth")
                    else None,
                )
                for t in doc.get("trunks", ())
            ),
            key=lambda t: (t.priority, t.id),
        )
    )


def _sites(doc: Mapping[str, Any]) -> dict[int, Site]:
    return {
        int(x["id"]): Site(
            int(x["id"]),
            int(x["tenant_id"]),
            str(x["region"]),
            str(x.get("street", "")),
            str(x.get("house_number", "")),
            str(x.get("postal_code", "")),
            str(x.get("city", "")),
            int(x["emergency_trunk"]) if x.get("emergency_trunk") else None,
        )
        for x in doc.get("sites", ())
    }


# The parts of the document parsed as a whole, each from the document's keys of the same name (a change to one of them
# is carried whole by an incremental update: kemi.policy.snapshot_delta). The rest is by row: tenants, accounts, users,
# extensions, numbers, groups with the skills.
def _mailboxes(doc: Mapping[str, Any]) -> dict[int, Mailbox]:
    return {
        int(m["id"]): Mailbox(
            int(m["id"]),
            int(m["tenant_id"]),
            int(m.get("max_s", 120)),
            int(m["user_id"]) if m.get("user_id") else None,
            int(m["group_id"]) if m.get("group_id") else None,
            str(m.get("extension", "")),
        )
        for m in doc.get("mailboxes", ())
    }


SECTIONS = {
    "fraud": lambda doc: _fraud(doc.get("fraud") or {}),
    "trusted": lambda doc: tuple(ipaddress.ip_network(c, strict=False) for c in doc.get("trusted", ())),
    "extras": lambda doc: doc.get("extras", {}),
    "trunks": _trunks,
    "time_plans": _time_plans,
    "sites": _sites,
    "mailboxes": _mailboxes,
    "ivr_menus": lambda doc: parse_menus(doc.get("ivr_menus", ())),
}


def _rule(r: Mapping[str, Any]) -> ForwardRule:
    return ForwardRule(
        int(r.get("id", 0)),
        str(r["kind"]),
        r.get("target_user"),
        r.get("target_number"),
        str(r.get("callers", "all")),
        r.get("time_plan"),
        str(r.get("when", "in")),
        int(r.get("timeout_s", 20)),
        str(r.get("present", "caller")),
        r.get("target_group"),
        r.get("target_mailbox"),
        r.get("target_ivr"),
    )


def _callback_agents(groups: Mapping[int, Group]) -> dict[int, int]:
    out: dict[int, int] = {}
    for g in groups.values():
        if g.callback_window_s:
            for r in g.rings:
                for m in r.members:
                    out[m] = max(out.get(m, 0), g.callback_window_s)
    return out


def _overflow(o: Mapping[str, Any] | None) -> ForwardRule | None:
    """A group's overflow target: a rule to another group, a user or a public number."""
    if not o or not (
        o.get("target_group") or o.get("target_user") or o.get("target_number") or o.get("target_mailbox")
    ):
        return None
    return ForwardRule(
        0,
        "overflow",
        int(o["target_user"]) if o.get("target_user") else None,
        o.get("target_number") or None,
        target_group=int(o["target_group"]) if o.get("target_group") else None,
        target_mailbox=int(o["target_mailbox"]) if o.get("target_mailbox") else None,
    )


def loads_snapshot(text: str | bytes) -> Snapshot:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"snapshot is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SnapshotError("snapshot must be a JSON object")
    return parse_snapshot(doc)
