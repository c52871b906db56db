"""The configuration and records schema (SQLModel). Migrations: controlplane/migrations (Alembic)."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Role(str, Enum):
    USER = "user"
    TEAM = "team"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"
    ADMIN = "admin"
    EXTENDED_ADMIN = "extended_admin"
    PLATFORM = "platform"  # the platform operator (carrier): tokens without a tenant only


# What each role may do: controlplane/api/permissions.py (explicit sets, not a ranking).


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    sip_domain: str = Field(sa_column=Column(String(253), nullable=False, unique=True))
    enabled: bool = True
    # 118xx directory services (TRK-13) and presenting numbers that are not the PBX's own (TRK-09)
    allow_directory: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    allow_clip_no_screening: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    anonymous: str = Field(
        default="allow", sa_column=Column(String(8), nullable=False, server_default="allow")
    )  # tenant default
    # the language its callers are told things in (announcements, docs/media.md); '' : the node's prompt_language
    language: str = Field(default="", sa_column=Column(String(2), nullable=False, server_default=""))
    # callers from the public network by their number's prefix (ACD-21): {"+49": "de", "+": "en"}
    caller_languages: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    # encryption policy for all its accounts (docs/tls.md): signalling over TLS only, media over SRTP only
    require_tls: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    require_srtp: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow)


class Site(SQLModel, table=True):
    """A location of a tenant: its country and area code read short numbers; its address goes with emergency calls."""

    __tablename__ = "site"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_site_tenant_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    name: str = Field(sa_column=Column(String(200), nullable=False))
    region: str = Field(default="DE", sa_column=Column(String(2), nullable=False))  # ISO 3166 alpha-2
    area_code: str = Field(default="", sa_column=Column(String(8), nullable=False))  # without the national prefix
    street: str = Field(default="", sa_column=Column(String(200), nullable=False))
    house_number: str = Field(default="", sa_column=Column(String(16), nullable=False, server_default=""))
    postal_code: str = Field(default="", sa_column=Column(String(16), nullable=False))
    city: str = Field(default="", sa_column=Column(String(100), nullable=False))
    # the trunk emergency calls from this site try first (then every other trunk of the tenant); None: the tenant's
    # trunks
    emergency_trunk_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("trunk.id", ondelete="SET NULL"), nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "user"
    __table_args__ = (UniqueConstraint("tenant_id", "email", name="uq_user_tenant_email"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    name: str = Field(sa_column=Column(String(200), nullable=False))
    email: Optional[str] = Field(default=None, sa_column=Column(String(254), nullable=True))
    role: str = Field(default=Role.USER.value, sa_column=Column(String(20), nullable=False))
    enabled: bool = True
    site_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("site.id", ondelete="RESTRICT"), nullable=True, index=True)
    )
    # outbound permission class: internal, local, national, mobile, europe, international, special
    outbound: str = Field(default="mobile", sa_column=Column(String(16), nullable=False, server_default="mobile"))
    clir: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    # outgoing calls refused (emergency calls excepted)
    locked: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    # CLIP no screening: a number presented instead of the user's own (only where the tenant allows it)
    presented_number: Optional[str] = Field(default=None, sa_column=Column(String(16), nullable=True))
    # the user's mobile phone (E.164): calls it forwards to the central voicemail (VM-08) land in this user's mailbox
    mobile: Optional[str] = Field(default=None, sa_column=Column(String(16), nullable=True))
    call_waiting: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default="1")
    )  # False: busy-on-busy
    priority_override: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default="0")
    )  # rings through DND/forwarding
    secretary_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    )
    anonymous: str = Field(
        default="allow", sa_column=Column(String(8), nullable=False, server_default="allow")
    )  # allow | reject
    # status (TEL-14): online, away, dnd, unreachable; live in Kamailio's htable, kept here across restarts
    status: str = Field(default="online", sa_column=Column(String(12), nullable=False, server_default="online"))
    status_message: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    skills: dict = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )  # skill -> level (ACD)
    active_profile_id: Optional[int] = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("profile.id", ondelete="SET NULL", use_alter=True, name="fk_user_active_profile"),
            nullable=True,
        ),
    )
    created_at: datetime = Field(default_factory=utcnow)


class SipAccount(SQLModel, table=True):
    __tablename__ = "sip_account"
    __table_args__ = (UniqueConstraint("username", "realm", name="uq_sip_account_username_realm"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    username: str = Field(sa_column=Column(String(64), nullable=False))
    realm: str = Field(sa_column=Column(String(253), nullable=False))
    ha1: str = Field(sa_column=Column(String(32), nullable=False))
    ha1b: str = Field(sa_column=Column(String(32), nullable=False))
    enabled: bool = True
    # TEL-29: per device. ring: included when the user is called (parallel ringing); clir and
    # presented_number: override the user's settings for calls made from this account
    ring: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default="1"))
    clir: Optional[bool] = Field(default=None, sa_column=Column(Boolean, nullable=True))
    presented_number: Optional[str] = Field(default=None, sa_column=Column(String(16), nullable=True))
    # SEC-10: addresses or CIDR ranges the account may be used from (empty: anywhere)
    allowed_networks: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    # encryption policy for this device, on top of its tenant's (docs/tls.md)
    require_tls: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    require_srtp: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    # a browser (WebRTC over WSS, docs/webrtc.md): calls to its user are offered per device, DTLS-SRTP to this one
    webrtc: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow)


class Extension(SQLModel, table=True):
    __tablename__ = "extension"
    __table_args__ = (UniqueConstraint("tenant_id", "number", name="uq_extension_tenant_number"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    number: str = Field(sa_column=Column(String(16), nullable=False))
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    created_at: datetime = Field(default_factory=utcnow)


class NumberBlock(SQLModel, table=True):
    """Public numbers assigned to a tenant: blocks of 10, 100, 500 or 1000; ported-in numbers as blocks of 1 (TRK-10,
    TRK-11)."""

    __tablename__ = "number_block"
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    site_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("site.id", ondelete="RESTRICT"), nullable=True)
    )
    first: str = Field(sa_column=Column(String(16), nullable=False, unique=True))  # E.164 of the first number
    size: int
    ported: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class PhoneNumber(SQLModel, table=True):
    """One public number of a block, routed to a user (later also groups and other targets)."""

    __tablename__ = "phone_number"
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    block_id: int = Field(
        sa_column=Column(Integer, ForeignKey("number_block.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    e164: str = Field(sa_column=Column(String(16), nullable=False, unique=True))
    user_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="SET NULL"), nullable=True, index=True)
    )
    group_id: Optional[int] = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("hunt_group.id", ondelete="SET NULL", name="fk_phone_number_group"), nullable=True
        ),
    )
    # a group's number: calls to it wait ahead of calls with a lower priority (0-9)
    priority: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # nomadic use (TRK-14): the address sent with emergency calls from this number, instead of the site's
    emergency_address: Optional[str] = Field(default=None, sa_column=Column(String(300), nullable=True))
    # ... or the IVR menu it leads into (IVR-01)
    ivr_id: Optional[int] = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("ivr_menu.id", ondelete="SET NULL", name="fk_phone_number_ivr"), nullable=True
        ),
    )
    # ... or the tenant's central voicemail (VM-08): calls forwarded to it leave a message in the mailbox of the
    # user whose mobile (or number) forwarded them; the users themselves listen from their mobile
    voicemail: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow)


class DialplanRule(SQLModel, table=True):
    """A tenant's automatic rewrite of dialled numbers: the first rule whose pattern matches applies."""

    __tablename__ = "dialplan_rule"
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    position: int = 0
    pattern: str = Field(sa_column=Column(String(200), nullable=False))  # Python regex, matched in full
    replacement: str = Field(sa_column=Column(String(200), nullable=False))  # may use \1, \2 ...
    description: str = Field(default="", sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Trunk(SQLModel, table=True):
    """A SIP trunk to a carrier (platform-level; tenants are given access)."""

    __tablename__ = "trunk"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), nullable=False, unique=True))
    host: str = Field(sa_column=Column(String(253), nullable=False))
    port: int = 5060
    transport: str = Field(default="udp", sa_column=Column(String(3), nullable=False))
    priority: int = 10  # lower first; on 5xx or timeout the next trunk is tried
    enabled: bool = True
    region: str = Field(default="DE", sa_column=Column(String(2), nullable=False))  # reads the numbers it sends us
    # addresses and networks calls from this carrier come from; empty: the host itself
    sources: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tenant_ids: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # empty: every tenant
    prefixes: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # E.164 prefixes; empty: all
    # digest credentials the carrier challenges for (sent back on 401/407); the password must be
    # usable to answer a challenge, so it is stored as given and never returned by the API
    auth_username: Optional[str] = Field(default=None, sa_column=Column(String(100), nullable=True))
    auth_password: Optional[str] = Field(
        default=None, sa_column=Column(String(600), nullable=True)
    )  # sealed (controlplane/sealed.py)
    auth_realm: Optional[str] = Field(default=None, sa_column=Column(String(253), nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class TimePlan(SQLModel, table=True):
    """Weekly time ranges in a time zone, minus public holidays (library `holidays`) and custom dates."""

    __tablename__ = "time_plan"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_time_plan_tenant_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str = Field(sa_column=Column(String(200), nullable=False))
    tz: str = Field(default="Europe/Berlin", sa_column=Column(String(64), nullable=False))
    ranges: list = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )  # [{"days": ["mon", ...], "start": "08:00", "end": "18:00"}]
    holidays_country: Optional[str] = Field(default=None, sa_column=Column(String(2), nullable=True))  # e.g. "DE"
    holidays_subdiv: Optional[str] = Field(default=None, sa_column=Column(String(8), nullable=True))  # e.g. "BY"
    closed_dates: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # custom ISO dates
    created_at: datetime = Field(default_factory=utcnow)


class ForwardingRule(SQLModel, table=True):
    """A user's call forwarding: unconditional, busy, no answer, unreachable (FWD-01..03)."""

    __tablename__ = "forwarding_rule"
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    position: int = 0
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    target_user_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=True)
    )
    target_number: Optional[str] = Field(default=None, sa_column=Column(String(16), nullable=True))
    target_mailbox_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("mailbox.id", ondelete="CASCADE"), nullable=True)
    )
    # ... or to an IVR menu (a personal IVR, IVR-06)
    target_ivr_id: Optional[int] = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("ivr_menu.id", ondelete="CASCADE", name="fk_forwarding_rule_ivr"), nullable=True
        ),
    )
    callers: str = Field(default="all", sa_column=Column(String(8), nullable=False))
    time_plan_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("time_plan.id", ondelete="RESTRICT"), nullable=True)
    )
    when: str = Field(default="in", sa_column=Column(String(8), nullable=False))
    timeout_s: int = 20
    present: str = Field(default="caller", sa_column=Column(String(10), nullable=False))
    enabled: bool = True
    # only while this profile of the user is active (TEL-28); NULL: always
    profile_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("profile.id", ondelete="CASCADE"), nullable=True, index=True)
    )
    source: str = Field(
        default="api", sa_column=Column(String(12), nullable=False, server_default="api")
    )  # api | feature_code
    created_at: datetime = Field(default_factory=utcnow)


class Profile(SQLModel, table=True):
    """A named set of a user's settings (TEL-28): activating it switches status, CLIR, outbound
    permission and the forwarding rules bound to it, at once. `code` selects it from a phone (*30<code>)."""

    __tablename__ = "profile"
    __table_args__ = (
        UniqueConstraint("user_id", "name", name="uq_profile_user_name"),
        UniqueConstraint("user_id", "code", name="uq_profile_user_code"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str = Field(sa_column=Column(String(100), nullable=False))
    code: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    status: Optional[str] = Field(default=None, sa_column=Column(String(12), nullable=True))  # None: leave as is
    clir: Optional[bool] = Field(default=None, sa_column=Column(Boolean, nullable=True))
    outbound: Optional[str] = Field(default=None, sa_column=Column(String(16), nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class CallerListEntry(SQLModel, table=True):
    """VIP and block lists (TEAM-10, ACD-08, ACD-11): of one user, or of the whole tenant (user_id NULL)."""

    __tablename__ = "caller_list_entry"
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    user_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=True, index=True)
    )
    kind: str = Field(sa_column=Column(String(8), nullable=False))  # vip | block
    number: Optional[str] = Field(
        default=None, sa_column=Column(String(16), nullable=True)
    )  # an external caller (E.164) ...
    member_user_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=True)
    )  # ... or a user
    divert_user_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=True)
    )
    divert_number: Optional[str] = Field(
        default=None, sa_column=Column(String(16), nullable=True)
    )  # block: divert instead of reject
    created_at: datetime = Field(default_factory=utcnow)


class HuntGroup(SQLModel, table=True):
    """A ring / hunt group (ACD): an extension, rings of members, overflow (issue 4)."""

    __tablename__ = "hunt_group"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_hunt_group_tenant_name"),
        UniqueConstraint("tenant_id", "extension", name="uq_hunt_group_tenant_extension"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str = Field(sa_column=Column(String(100), nullable=False))
    extension: str = Field(sa_column=Column(String(16), nullable=False))
    # rings: [{"members": [{"user_id": 7, "delay_s": 0}], "strategy": "broadcast", "wait_s": 20, "member_s": 10,
    #          "keep_previous": false, "busy_members": "skip"}]
    rings: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    overflow_user_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    )
    overflow_number: Optional[str] = Field(default=None, sa_column=Column(String(16), nullable=True))
    overflow_group_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("hunt_group.id", ondelete="SET NULL"), nullable=True)
    )
    overflow_mailbox_id: Optional[int] = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("mailbox.id", ondelete="SET NULL", use_alter=True), nullable=True),
    )
    max_waiting: int = 0
    presentation: str = Field(default="caller", sa_column=Column(String(8), nullable=False))  # caller | group | clir
    wrapup_s: int = 0
    callback_window_s: int = 0
    # service level: the share of offered calls answered within this many seconds (the wallboard's target)
    service_level_s: int = Field(default=20, sa_column=Column(Integer, nullable=False, server_default="20"))
    skills: dict = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )  # required skill -> minimum level
    skills_fallback: bool = True
    # nobody free: callers wait (ringing) up to this long for a member, then overflow; 0: overflow at once
    queue_s: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # where the node has a media server: waiting callers hear the greeting, music and their place every
    # queue_announce_s seconds (0: never) instead of ringing (ACD-16/17)
    queue_music: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default="1"))
    queue_announce_s: int = Field(default=30, sa_column=Column(Integer, nullable=False, server_default="30"))
    # screening (ACD-08, ACD-11) and the group's own status and forwarding (night service, holidays)
    anonymous: str = Field(
        default="allow", sa_column=Column(String(8), nullable=False, server_default="allow")
    )  # allow | reject
    status: str = Field(
        default="online", sa_column=Column(String(12), nullable=False, server_default="online")
    )  # online | away | dnd
    # vip: ["+4930...", "u7"]; blocked: [{"key": "+4930...", "divert_user_id": 7 | "divert_number": "+49..."}]
    vip: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    blocked: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    # forwarding: [{"kind": "unconditional" | "dnd" | "away", "target_user_id" | "target_number" | "target_group_id",
    #               "callers": "all", "time_plan_id": 3, "when": "in"}]
    forwarding: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    created_at: datetime = Field(default_factory=utcnow)


class AgentLogin(SQLModel, table=True):
    """An agent logged out of a group (absent: logged in); live in Kamailio, kept here across restarts."""

    __tablename__ = "agent_login"
    group_id: int = Field(sa_column=Column(Integer, ForeignKey("hunt_group.id", ondelete="CASCADE"), primary_key=True))
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True))
    logged_in: bool = False
    changed_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    role: str = Field(sa_column=Column(String(20), nullable=False))
    # NULL tenant: a platform (carrier) token that manages tenants and sees all of them.
    tenant_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=True, index=True)
    )
    user_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=True)
    )
    expires_at: Optional[datetime] = None  # None: until revoked
    created_at: datetime = Field(default_factory=utcnow)


class ConfigState(SQLModel, table=True):
    """One row: the configuration version, bumped in every transaction that changes routing."""

    __tablename__ = "config_state"
    id: int = Field(default=1, primary_key=True)
    version: int = 0


class Cdr(SQLModel, table=True):
    __tablename__ = "cdr"
    __table_args__ = (
        Index("ix_cdr_payer_start", "payer_user_id", "start_time"),
    )  # the fraud controls' spend and baselines
    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: Optional[int] = Field(default=None, index=True)
    caller: str = Field(sa_column=Column(String(128), nullable=False))
    caller_user_id: Optional[int] = Field(default=None, index=True)
    callee: str = Field(sa_column=Column(String(128), nullable=False))
    callee_user_id: Optional[int] = Field(default=None, index=True)
    call_id: str = Field(sa_column=Column(String(255), nullable=False, index=True))
    start_time: datetime = Field(index=True)
    answer_time: Optional[datetime] = None
    end_time: datetime
    duration_s: float = 0.0
    disposition: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    sip_code: int
    sip_reason: str = Field(sa_column=Column(String(128), nullable=False))
    trace: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of trace lines
    payer_user_id: Optional[int] = Field(
        default=None, index=True
    )  # calls out: who pays (the caller, or whose forwarding sent it out)
    dest_class: str = Field(
        default="", sa_column=Column(String(16), nullable=False, server_default="")
    )  # calls out: destination class
    cost: float = Field(
        default=0.0, sa_column=Column(Float, nullable=False, server_default="0")
    )  # calls out: price by the tariff
    pdd_s: Optional[float] = None  # post-dial delay: INVITE to the first ringing (18x) or the answer
    mos: Optional[float] = None  # media quality (RTPengine's average for the call, from RTCP; None: not scored)
    jitter_ms: Optional[float] = None
    loss_pct: Optional[float] = None
    rtt_ms: Optional[float] = None
    emergency: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default="0")
    )  # a call to an emergency number
    ingested_at: datetime = Field(default_factory=utcnow)


class FraudEvent(SQLModel, table=True):
    """What the fraud controls noticed or did (SEC-06..08): a ban, an account's cool-down, a refused address, ...
    Written by the Kamailio workers through the record spool (ingested exactly once, by id) or by the control plane."""

    __tablename__ = "fraud_event"
    id: str = Field(sa_column=Column(String(36), primary_key=True))
    tenant_id: Optional[int] = Field(default=None, index=True)  # None: the node's edge (a source, not a customer)
    time: datetime = Field(index=True)
    kind: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    level: int = 1  # 1 warning .. 4 account locked entirely (edge events: 1)
    source: str = Field(default="", sa_column=Column(String(64), nullable=False, server_default=""))  # IP address
    account: str = Field(default="", sa_column=Column(String(320), nullable=False, server_default=""))  # user@realm
    user_id: Optional[int] = Field(default=None, index=True)
    reason: str = Field(sa_column=Column(String(300), nullable=False))
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    acknowledged_at: Optional[datetime] = None
    acknowledged_by: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    ingested_at: datetime = Field(default_factory=utcnow)


class FraudPolicyRow(SQLModel, table=True):
    """A tenant's fraud policy (SEC-07/08): limits per user and for the tenant, the graded response.
    No row: the defaults of kemi.policy.fraud.FraudPolicy."""

    __tablename__ = "fraud_policy"
    tenant_id: int = Field(sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True))
    user_limits: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    tenant_limits: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    warn_ratio: float = 0.8
    spend_level: int = 3
    anomaly_level: int = 2  # the response to calls out far beyond a user's usual (1 warn .. 4 lock entirely)
    outbound: str = Field(
        default="special", sa_column=Column(String(16), nullable=False, server_default="special")
    )  # the tenant's ceiling
    allow_high_risk: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="0"))
    notify_email: str = Field(default="", sa_column=Column(String(254), nullable=False, server_default=""))
    notify_webhook: str = Field(default="", sa_column=Column(String(500), nullable=False, server_default=""))
    updated_at: datetime = Field(default_factory=utcnow)


class TariffRate(SQLModel, table=True):
    """The price of calls out by E.164 prefix, per minute (longest prefix wins); one platform tariff."""

    __tablename__ = "tariff_rate"
    prefix: str = Field(sa_column=Column(String(16), primary_key=True))
    rate_per_min: float
    currency: str = Field(default="EUR", sa_column=Column(String(3), nullable=False, server_default="EUR"))
    description: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))


class FraudLock(SQLModel, table=True):
    """A lock set by the fraud controls (or an admin): level 2 blocks a destination class, 3 a user's
    outgoing calls, 4 every call of the user. user_id None: the whole tenant. Lifted only by an admin."""

    __tablename__ = "fraud_lock"
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    user_id: Optional[int] = Field(
        default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=True, index=True)
    )
    level: int
    dest_class: str = Field(default="", sa_column=Column(String(16), nullable=False, server_default=""))
    reason: str = Field(sa_column=Column(String(300), nullable=False))
    set_by: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    lifted_at: Optional[datetime] = None
    lifted_by: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    lift_reason: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))


class Mailbox(SQLModel, table=True):
    """A voicemail box (VM-01): a user's own, or a hunt group's (ACD-22). Messages: VoicemailMessage; their audio on
    disk under the node's voicemail_dir (controlplane/services/voicemail_store.py)."""

    __tablename__ = "mailbox"
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    # the owner: a user (their personal box, deleted with them) or a hunt group
    user_id: Optional[int] = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=True, unique=True),
    )
    group_id: Optional[int] = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("hunt_group.id", ondelete="CASCADE"), nullable=True, unique=True),
    )
    name: str = Field(default="", sa_column=Column(String(100), nullable=False, server_default=""))
    # its own extension (VM-09; '' : none): a colleague dialling it leaves a message, the owner listens
    extension: str = Field(default="", sa_column=Column(String(16), nullable=False, server_default=""))
    enabled: bool = True
    pin_hash: str = Field(default="", sa_column=Column(String(200), nullable=False, server_default=""))
    email: str = Field(default="", sa_column=Column(String(254), nullable=False, server_default=""))
    attach_audio: bool = True  # the message's WAV attached to the e-mail (VM-04)
    min_message_s: float = 2.0  # shorter messages are discarded (VM-07)
    max_message_s: int = 120
    retention_days: int = 90  # messages older than this are deleted (0: kept until deleted)
    created_at: datetime = Field(default_factory=utcnow)
    # listening by phone: wrong PINs in a row, and the lock that many of them lead to (None: not locked)
    pin_failures: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    locked_until: Optional[datetime] = None


class IvrMenu(SQLModel, table=True):
    """An IVR menu (IVR-01..05, kemi.policy.ivr): its recording (<voicemail_dir>/ivr/<id>/menu.wav) and up to 12
    actions by key; reached by its extension, a public number or another menu."""

    __tablename__ = "ivr_menu"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_ivr_menu_tenant_name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str = Field(sa_column=Column(String(100), nullable=False))
    extension: str = Field(default="", sa_column=Column(String(16), nullable=False, server_default=""))
    timeout_s: int = 6  # waiting for a key after the menu
    tries: int = 3  # rounds without a choice before goodbye
    # [{"key": "1", "kind": "extension", "target": "201"}, ...] (kemi.policy.ivr.KINDS)
    actions: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # with other_menu_id: calls enter that menu outside the plan's times (`when` "out") or inside them ("in")
    time_plan_id: Optional[int] = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("time_plan.id", ondelete="SET NULL"), nullable=True),
    )
    when: str = Field(default="out", sa_column=Column(String(3), nullable=False, server_default="out"))
    other_menu_id: Optional[int] = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("ivr_menu.id", ondelete="SET NULL"), nullable=True),
    )
    language: str = Field(default="", sa_column=Column(String(2), nullable=False, server_default=""))
    # a personal IVR (IVR-06: ivr.personal_set): the user whose calls it answers; deleted with them
    owner_user_id: Optional[int] = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE", name="fk_ivr_menu_owner"), nullable=True),
    )
    created_at: datetime = Field(default_factory=utcnow)


class VoicemailMessage(SQLModel, table=True):
    """One message left in a mailbox; its audio is <voicemail_dir>/<tenant>/<mailbox>/<id>.wav."""

    __tablename__ = "voicemail_message"
    id: str = Field(sa_column=Column(String(36), primary_key=True))  # given by the media server: stored once
    tenant_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    mailbox_id: int = Field(
        sa_column=Column(Integer, ForeignKey("mailbox.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    caller: str = Field(default="", sa_column=Column(String(128), nullable=False))
    call_id: str = Field(default="", sa_column=Column(String(255), nullable=False))
    received_at: datetime = Field(index=True)
    duration_s: float = 0.0
    size_bytes: int = 0
    heard: bool = False
    heard_at: Optional[datetime] = None
    emailed: bool = False


class StoredFile(SQLModel, table=True):
    """A recording of the store (voicemail messages, greetings, prompts, menus' recordings, music) kept in the cluster
    database so that every node has it (controlplane/services/shared_store.py, docs/cluster.md); `path` relative to
    the node's voicemail_dir."""

    __tablename__ = "stored_file"
    path: str = Field(sa_column=Column(String(255), primary_key=True))
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    size: int = 0
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    changed_at: datetime = Field(default_factory=utcnow)


class ClusterChange(SQLModel, table=True):
    """One change the other control planes of a cluster apply to their own node: a stored file written or removed
    (`file`, `tree`), a mailbox's messages changed (`mailbox`: its file for listening by phone, message waiting).
    `seq` is handed out by ChangeCounter in the writer's transaction, so changes commit in the order of their seq."""

    __tablename__ = "cluster_change"
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    key: str = Field(sa_column=Column(String(255), nullable=False))
    origin: str = Field(default="", sa_column=Column(String(64), nullable=False))
    at: datetime = Field(default_factory=utcnow, index=True)


class ChangeCounter(SQLModel, table=True):
    """One row: the last seq of cluster_change. Taken with one atomic increment, which holds the row until the writer
    commits: a later seq never becomes visible before an earlier one."""

    __tablename__ = "change_counter"
    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
