"""The routing snapshot: an immutable, in-memory view of the configuration.

The control plane compiles the database into a JSON document (see `controlplane.snapshot`);
every Kamailio worker parses it once into these frozen objects and routes from them.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

SNAPSHOT_FORMAT = 1


class SnapshotError(ValueError):
    """The snapshot document is malformed; the previous snapshot stays in force."""


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    realm: str
    ha1: str
    ha1b: str
    user_id: int
    tenant_id: int
    enabled: bool = True

    @property
    def aor(self) -> str:
        return f"sip:{self.username}@{self.realm}"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    tenant_id: int
    name: str
    extension: str | None
    aors: tuple[str, ...]
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str
    domain: str
    enabled: bool = True


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


EMPTY = Snapshot(version=0, generated_at="", tenants={}, domains={}, accounts={}, users={}, extensions={})


def parse_snapshot(doc: Mapping[str, Any]) -> Snapshot:
    """Build a Snapshot from its JSON document; raise SnapshotError on any malformation."""
    try:
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(f"unsupported snapshot format {doc.get('format')!r}")
        tenants = {
            int(t["id"]): Tenant(int(t["id"]), str(t["name"]), str(t["domain"]).lower(), bool(t.get("enabled", True)))
            for t in doc["tenants"]
        }
        domains = {t.domain: t.id for t in tenants.values()}
        accounts = {}
        for a in doc["accounts"]:
            acc = Account(
                username=str(a["username"]),
                realm=str(a["realm"]).lower(),
                ha1=str(a["ha1"]),
                ha1b=str(a.get("ha1b", "")),
                user_id=int(a["user_id"]),
                tenant_id=int(a["tenant_id"]),
                enabled=bool(a.get("enabled", True)),
            )
            accounts[(acc.username, acc.realm)] = acc
        users = {
            int(u["id"]): User(
                id=int(u["id"]),
                tenant_id=int(u["tenant_id"]),
                name=str(u["name"]),
                extension=u.get("extension"),
                aors=tuple(u.get("aors", ())),
                enabled=bool(u.get("enabled", True)),
            )
            for u in doc["users"]
        }
        extensions = {(int(e["tenant_id"]), str(e["number"])): int(e["user_id"]) for e in doc["extensions"]}
        trusted = tuple(ipaddress.ip_network(c, strict=False) for c in doc.get("trusted", ()))
        return Snapshot(
            version=int(doc["version"]),
            generated_at=str(doc.get("generated_at", "")),
            tenants=tenants,
            domains=domains,
            accounts=accounts,
            users=users,
            extensions=extensions,
            trusted=trusted,
            default_realm=str(doc.get("default_realm", "callmanager")),
            extras=doc.get("extras", {}),
        )
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc!r}") from exc


def loads_snapshot(text: str | bytes) -> Snapshot:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"snapshot is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SnapshotError("snapshot must be a JSON object")
    return parse_snapshot(doc)
