"""`cm` verbs for routing: numbers, trunks, forwarding, status, profiles and `cm route simulate`.

Every verb calls the JSON-RPC method of the same name; `cm rpc` reaches any method with any
parameter (key=value, key:=json).
"""

from __future__ import annotations

from typing import Optional

import typer

from .common import STATE, _area, console, rpc, show

route = _area("route", "routing decisions: explain what a call would do")
number = _area("number", "public numbers: blocks and numbers routed to users")
trunk = _area("trunk", "SIP trunks to carriers (platform token)")
forwarding = _area("forwarding", "call forwarding rules of users")
status = _area("status", "users' status: online, away, dnd, unreachable")
profile = _area("profile", "profiles: named sets of a user's settings")
queue = _area("queue", "hunt groups live: agents, waiting calls, today's figures")
site = _area("site", "sites: country, area code, the address and the route of emergency calls")

N_COLS = ["id", "e164", "national", "user_id", "emergency_address"]
B_COLS = ["id", "tenant_id", "first", "last", "size", "ported"]
TR_COLS = ["id", "name", "host", "port", "transport", "priority", "enabled", "has_password"]
F_COLS = [
    "id",
    "user_id",
    "kind",
    "target_user_id",
    "target_number",
    "target_mailbox_id",
    "target_ivr_id",
    "callers",
    "time_plan_id",
    "when",
    "timeout_s",
    "enabled",
]


EVENT_HELP = (
    "what happens next, in order (repeatable): KIND[@SECONDS after the previous event]; KIND is busy, no_answer, "
    "unreachable, declined, unavailable, server_error, challenge, member_free, cancel, answer, or a SIP code (a "
    "final answer); in IVR menus keys:DIGITS (keys:21) and no_key"
)


def parse_event(text: str) -> dict:
    """`no_answer@20` -> {"kind": "no_answer", "after_s": 20.0}; `503@2` -> a final answer 503 after 2 s; `keys:21@3`
    -> the keys 2 and 1 pressed in IVR menus 3 s later."""
    kind, _, after = text.partition("@")
    try:
        event: dict = {"after_s": float(after)} if after else {}
    except ValueError:
        raise typer.BadParameter(f"{text!r}: the time after @ is seconds, e.g. no_answer@20") from None
    if kind.isdigit():
        return {"kind": "failure", "code": int(kind), **event}
    if kind.startswith("keys:"):  # keys pressed in IVR menus
        return {"kind": "keys", "digits": kind[5:], **event}
    return {"kind": kind, **event}


@route.command("simulate")
def route_simulate(
    dialled: str,
    caller_user_id: Optional[int] = typer.Option(None, "--from-user", help="internal caller (user id)"),
    caller_number: Optional[str] = typer.Option(None, "--from-number", help="external caller's number"),
    tenant_id: Optional[int] = None,
    at: Optional[str] = typer.Option(None, help="ISO time with zone, default now"),
    event: Optional[list[str]] = typer.Option(None, "--event", "-e", help=EVENT_HELP),
    diversion: Optional[str] = typer.Option(None, help="an external call's Diversion header (who forwarded it)"),
    transport: Optional[str] = typer.Option(
        None, help="udp, tcp, tls, ws, wss (default: as the caller's policy wants)"
    ),
    offer: Optional[str] = typer.Option(None, help="the caller's SDP profile: RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF"),
):
    """What would happen to this call? The decision and its trace; with --event, the whole call as a timeline."""
    events = [parse_event(e) for e in event or []]
    result = rpc(
        "route.simulate",
        dialled=dialled,
        caller_user_id=caller_user_id,
        caller_number=caller_number,
        tenant_id=tenant_id,
        at=at,
        **({"events": events} if events else {}),
        **({"diversion": diversion} if diversion else {}),
        transport=transport,
        offer=offer,
    )
    if STATE["json"]:
        console.print_json(data=result)
        return
    console.print_json(data=result["decision"])
    if result.get("media"):
        console.print(result["media"])
    if not events:
        for i, line in enumerate(result["trace"], 1):
            console.print(f"{i:>2}. {line}")
        return
    for step in result["timeline"]:
        console.print(f"[bold]{step['at_s']:>6.1f} s[/bold]  {step['event']}  ->  {step['outcome']}")
        for line in step["trace"]:
            console.print(f"           {line}")


S_COLS = [
    "id",
    "tenant_id",
    "name",
    "region",
    "area_code",
    "street",
    "house_number",
    "postal_code",
    "city",
    "emergency_trunk_id",
]


@site.command("create")
def site_create(
    name: str,
    region: str = typer.Option("DE", help="ISO 3166 country code"),
    area_code: Optional[str] = None,
    street: str = "",
    house_number: str = "",
    postal_code: str = "",
    city: str = "",
    emergency_trunk_id: Optional[int] = typer.Option(None, help="trunk emergency calls try first"),
    tenant_id: Optional[int] = None,
):
    """Create a site (the tenant's first is the default for users without one)."""
    show(
        rpc(
            "site.create",
            name=name,
            region=region,
            area_code=area_code,
            street=street,
            house_number=house_number,
            postal_code=postal_code,
            city=city,
            emergency_trunk_id=emergency_trunk_id,
            tenant_id=tenant_id,
        ),
        S_COLS,
    )


@site.command("list")
def site_list(tenant_id: Optional[int] = None):
    """List sites."""
    show(rpc("site.list", tenant_id=tenant_id), S_COLS)


@site.command("update")
def site_update(
    id: int,
    name: Optional[str] = None,
    region: Optional[str] = None,
    area_code: Optional[str] = None,
    street: Optional[str] = None,
    house_number: Optional[str] = None,
    postal_code: Optional[str] = None,
    city: Optional[str] = None,
    emergency_trunk_id: Optional[int] = typer.Option(None, help="trunk emergency calls try first (0 clears)"),
):
    """Change a site."""
    show(
        rpc(
            "site.update",
            id=id,
            name=name,
            region=region,
            area_code=area_code,
            street=street,
            house_number=house_number,
            postal_code=postal_code,
            city=city,
            emergency_trunk_id=emergency_trunk_id,
        ),
        S_COLS,
    )


@number.command("block-create")
def number_block(tenant_id: int, first: str, size: int, ported: bool = False, site_id: Optional[int] = None):
    show(
        rpc("number_block.create", tenant_id=tenant_id, first=first, size=size, ported=ported, site_id=site_id), B_COLS
    )


@number.command("blocks")
def number_blocks(tenant_id: Optional[int] = None):
    show(rpc("number_block.list", tenant_id=tenant_id), B_COLS)


@number.command("assign")
def number_assign(
    e164: str, user_id: Optional[int] = None, emergency_address: Optional[str] = None, tenant_id: Optional[int] = None
):
    show(
        rpc("number.assign", e164=e164, user_id=user_id, emergency_address=emergency_address, tenant_id=tenant_id),
        N_COLS,
    )


@number.command("list")
def number_list(tenant_id: Optional[int] = None, user_id: Optional[int] = None):
    show(rpc("number.list", tenant_id=tenant_id, user_id=user_id), N_COLS)


@number.command("release")
def number_release(id: int):
    show(rpc("number.release", id=id))


@trunk.command("create")
def trunk_create(
    name: str,
    host: str,
    port: int = 5060,
    transport: str = "udp",
    priority: int = 10,
    auth_username: Optional[str] = None,
    auth_password: Optional[str] = None,
):
    show(
        rpc(
            "trunk.create",
            name=name,
            host=host,
            port=port,
            transport=transport,
            priority=priority,
            auth_username=auth_username,
            auth_password=auth_password,
        ),
        TR_COLS,
    )


@trunk.command("list")
def trunk_list():
    show(rpc("trunk.list"), TR_COLS)


@trunk.command("delete")
def trunk_delete(id: int):
    show(rpc("trunk.delete", id=id))


@forwarding.command("add")
def forwarding_add(
    user_id: int,
    kind: str = typer.Argument(..., help="unconditional, busy, no_answer, unreachable, dnd, away"),
    to_user: Optional[int] = None,
    to_number: Optional[str] = None,
    to_mailbox: Optional[int] = None,
    to_menu: Optional[int] = typer.Option(None, help="an IVR menu's id (a personal IVR: cm ivr personal)"),
    callers: Optional[str] = None,
    time_plan_id: Optional[int] = None,
    when: Optional[str] = None,
    timeout_s: Optional[int] = None,
):
    show(
        rpc(
            "forwarding.create",
            user_id=user_id,
            kind=kind,
            target_user_id=to_user,
            target_number=to_number,
            target_mailbox_id=to_mailbox,
            target_ivr_id=to_menu,
            callers=callers,
            time_plan_id=time_plan_id,
            when=when,
            timeout_s=timeout_s,
        ),
        F_COLS,
    )


@forwarding.command("list")
def forwarding_list(user_id: Optional[int] = None):
    show(rpc("forwarding.list", user_id=user_id), F_COLS)


@forwarding.command("delete")
def forwarding_delete(id: int):
    show(rpc("forwarding.delete", id=id))


@status.command("set")
def status_set(
    user_id: int, value: str = typer.Argument(..., help="online, away, dnd, unreachable"), message: str = ""
):
    show(rpc("user.set_status", id=user_id, status=value, message=message))


@profile.command("activate")
def profile_activate(user_id: int, profile_id: int = typer.Argument(..., help="0: no profile")):
    show(rpc("profile.activate", user_id=user_id, profile_id=profile_id))


@queue.command("status")
def queue_status(tenant_id: Optional[int] = None):
    """Per group: agents by state, waiting calls, longest wait, today's offered/answered/abandoned/overflowed."""
    result = rpc("queue.status", tenant_id=tenant_id)
    if STATE["json"]:
        console.print_json(data=result)
        return
    for g in result["items"]:
        t = g["today"]
        console.print(
            f"[bold]{g['name']}[/bold] ({g['extension']}): {g['available']} available, {g['in_call']} in call, "
            f"{g['wrap_up']} wrap-up, {g['logged_out']} logged out, {g['unregistered']} unregistered; "
            f"{len(g['waiting'])} waiting (longest {g['longest_wait_s']} s); today {t['offered']} offered, "
            f"{t['answered']} answered, {t['abandoned']} abandoned, {t['overflowed']} overflowed"
        )
