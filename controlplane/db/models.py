"""The configuration and records schema (SQLModel). Migrations: controlplane/migrations (Alembic)."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Optional

from sqlalchemy import Column, ForeignKey, Integer, String, Text, UniqueConstraint
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


# Rank for "at least" checks; Team/Agent/Operator extend User, Supervisor extends Agent,
# Admin has Team+Supervisor+Operator, Extended Admin has Admin (SPEC ACC-04).
ROLE_RANK = {
    Role.USER: 1,
    Role.TEAM: 2,
    Role.AGENT: 2,
    Role.OPERATOR: 3,
    Role.SUPERVISOR: 3,
    Role.ADMIN: 4,
    Role.EXTENDED_ADMIN: 5,
}


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    sip_domain: str = Field(sa_column=Column(String(253), nullable=False, unique=True))
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "user"
    __table_args__ = (UniqueConstraint("tenant_id", "email", name="uq_user_tenant_email"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    email: Optional[str] = Field(default=None, sa_column=Column(String(254), nullable=True))
    role: str = Field(default=Role.USER.value, sa_column=Column(String(20), nullable=False))
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class SipAccount(SQLModel, table=True):
    __tablename__ = "sip_account"
    __table_args__ = (UniqueConstraint("username", "realm", name="uq_sip_account_username_realm"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True))
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True))
    username: str = Field(sa_column=Column(String(64), nullable=False))
    realm: str = Field(sa_column=Column(String(253), nullable=False))
    ha1: str = Field(sa_column=Column(String(32), nullable=False))
    ha1b: str = Field(sa_column=Column(String(32), nullable=False))
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Extension(SQLModel, table=True):
    __tablename__ = "extension"
    __table_args__ = (UniqueConstraint("tenant_id", "number", name="uq_extension_tenant_number"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    tenant_id: int = Field(sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="RESTRICT"), nullable=False, index=True))
    number: str = Field(sa_column=Column(String(16), nullable=False))
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True))
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    role: str = Field(sa_column=Column(String(20), nullable=False))
    # NULL tenant: a platform (carrier) token that manages tenants and sees all of them.
    tenant_id: Optional[int] = Field(default=None, sa_column=Column(Integer, ForeignKey("tenant.id", ondelete="CASCADE"), nullable=True, index=True))
    user_id: Optional[int] = Field(default=None, sa_column=Column(Integer, ForeignKey("user.id", ondelete="CASCADE"), nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class ConfigState(SQLModel, table=True):
    """One row: the configuration version, bumped in every transaction that changes routing."""

    __tablename__ = "config_state"
    id: int = Field(default=1, primary_key=True)
    version: int = 0


class Cdr(SQLModel, table=True):
    __tablename__ = "cdr"
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
    ingested_at: datetime = Field(default_factory=utcnow)
