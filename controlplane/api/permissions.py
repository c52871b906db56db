"""Who may do what (SPEC ACC-03/04, ADM, XADM): explicit permission sets per role, checked per method.

Roles are not a ranking. Team, Agent and Operator each extend User in their own direction; Supervisor extends Agent;
Admin has Team, Supervisor and Operator together, plus the tenant's configuration; Extended Admin has Admin's (its
wizards, XADM-03/04, are not built yet). The platform operator (the carrier) is a role of its own, on tokens without a
tenant: tenants,
trunks, number blocks, the tariff, the node's edge and the carrier-level fraud settings are theirs alone.

A token without a tenant but with another role (a NOC's operator token, say) has that role's permissions in every
tenant — never the platform operator's. A token bound to a user never has more than that user's role allows.
The table in docs/api.md is generated from this module and the method registry (`permission_table`).
"""

from __future__ import annotations

from enum import Enum

from controlplane.db.models import Role


class Perm(str, Enum):
    SELF = "self"  # one's own status, forwarding, profiles, caller lists, calls and CDRs; one's tenant's name
    DIRECTORY = "directory"  # colleagues: users, extensions, public numbers, sites (read)
    GROUPS = "groups"  # hunt groups, their members and their queues live (read)
    AGENT = "agent"  # log oneself in and out of one's hunt groups
    AGENTS = "agents"  # log agents in and out of hunt groups
    CALLS = "calls"  # every call of the tenant: in progress and CDRs
    PRESENCE = "presence"  # set colleagues' status (switchboard)
    ROUTE_SIMULATE = "route_simulate"  # explain where a call would go
    CONFIG = "config"  # the tenant's configuration: users, accounts, numbers, sites, groups, plans; others' settings
    FRAUD = "fraud"  # the tenant's fraud controls: limits, locks, events, spend
    TOKENS = "tokens"  # the tenant's API tokens (never beyond one's own permissions)
    PLATFORM = (
        "platform"  # the carrier: tenants, trunks, number blocks, tariff, edge bans, carrier-level fraud settings
    )


PLATFORM_ROLE = "platform"  # Role value of the platform operator's tokens

_USER = frozenset({Perm.SELF})
_TEAM = _USER | {Perm.DIRECTORY, Perm.GROUPS}
_AGENT = _USER | {Perm.GROUPS, Perm.AGENT}
_SUPERVISOR = _AGENT | {Perm.AGENTS, Perm.CALLS}
_OPERATOR = _USER | {Perm.DIRECTORY, Perm.CALLS, Perm.PRESENCE, Perm.ROUTE_SIMULATE}
_ADMIN = _TEAM | _SUPERVISOR | _OPERATOR | {Perm.CONFIG, Perm.FRAUD, Perm.TOKENS}
_EXTENDED_ADMIN = (
    _ADMIN  # XADM's wizards (bulk provisioning and de-provisioning) are not built yet: the same as Admin today
)

ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.USER: _USER,
    Role.TEAM: _TEAM,
    Role.AGENT: _AGENT,
    Role.SUPERVISOR: _SUPERVISOR,
    Role.OPERATOR: _OPERATOR,
    Role.ADMIN: _ADMIN,
    Role.EXTENDED_ADMIN: _EXTENDED_ADMIN,
    Role.PLATFORM: frozenset(Perm),
}

DESCRIPTIONS = {
    Perm.SELF: "own status, forwarding, profiles, caller lists, calls and CDRs",
    Perm.DIRECTORY: "read colleagues: users, extensions, numbers, sites",
    Perm.GROUPS: "read hunt groups and their queues live",
    Perm.AGENT: "log oneself in/out of one's hunt groups",
    Perm.AGENTS: "log agents in/out",
    Perm.CALLS: "all calls and CDRs of the tenant",
    Perm.PRESENCE: "set colleagues' status",
    Perm.ROUTE_SIMULATE: "route.simulate",
    Perm.CONFIG: "the tenant's configuration, others' settings",
    Perm.FRAUD: "the tenant's fraud controls",
    Perm.TOKENS: "the tenant's API tokens",
    Perm.PLATFORM: "tenants, trunks, number blocks, tariff, bans, carrier settings",
}


def may_grant(granter_role: Role, granter_perms: frozenset[Perm], role: Role) -> bool:
    """May a token hand out (or take away) `role`? Only a role whose permissions it has itself; Extended Admin only from
    an Extended Admin or the platform operator (the optional "Admin Access" is booked, not granted by a tenant's Admin);
    the platform operator's role only from the platform operator."""
    if role is Role.PLATFORM or role is Role.EXTENDED_ADMIN:
        return granter_role in (role, Role.PLATFORM) and ROLE_PERMS[role] <= granter_perms
    return ROLE_PERMS[role] <= granter_perms


def perms_of(role: Role, user_role: Role | None = None) -> frozenset[Perm]:
    """A token's permissions: its role's, within its user's role when it is bound to a user."""
    granted = ROLE_PERMS[role]
    return granted & ROLE_PERMS[user_role] if user_role is not None else granted


def permission_table(registry) -> str:
    """docs/api.md's table: every method, the permission it needs, and which roles have it."""
    roles = [r for r in Role]
    head = "| method | needs | " + " | ".join(r.value for r in roles) + " |"
    rule = "|---|---|" + "---|" * len(roles)
    rows = []
    for name, spec in sorted(registry.methods.items()):
        need = "none (public)" if spec.public else (spec.perm.value if spec.perm else "any token")
        if spec.others is not None:
            need += f"; someone else's: {spec.others.value}"
        marks = ["✓" if spec.public or spec.perm is None or spec.perm in ROLE_PERMS[r] else "" for r in roles]
        rows.append(f"| `{name}` | {need} | " + " | ".join(marks) + " |")
    legend = "\n".join(f"- `{p.value}`: {DESCRIPTIONS[p]}" for p in Perm)
    return "\n".join([head, rule, *rows]) + "\n\nPermissions:\n\n" + legend + "\n"


BEGIN, END = (
    "<!-- permission table: generated by `python -m controlplane.api.permissions` -->",
    "<!-- end of permission table -->",
)


def write_table(path: str) -> bool:
    """Put the current table between the markers of `path` (docs/api.md); True when it changed."""
    import controlplane.features  # noqa: F401  (registers the methods)
    from controlplane.api.rpc import REGISTRY

    text = open(path, encoding="utf-8").read()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n{permission_table(REGISTRY)}{END}{tail}"
    if new != text:
        open(path, "w", encoding="utf-8").write(new)
    return new != text


if __name__ == "__main__":
    import sys

    changed = write_table(sys.argv[1] if len(sys.argv) > 1 else "docs/api.md")
    print("docs/api.md: permission table " + ("updated" if changed else "unchanged"))
