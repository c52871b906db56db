"""IVR menus (issue 23, IVR-01..05): the menus, how a caller moves through them, and what their choice leads to.

A menu plays its recording and waits for a key; each key (0-9, *, #) and the two events `timeout` (no key within the
menu's time) and `invalid` (a key the menu has no action for) may have an action, at most MAX_ACTIONS per menu:

    menu <id>     go to a submenu                 back     the menu before this one
    repeat        this menu again                 play     a recording, then this menu again
    extension <x> a user, group or mailbox of the tenant by its extension (as if dialled: their forwarding applies)
    mailbox <id>  leave a message in this mailbox  hangup   goodbye
    voicemail     listen to any mailbox of the company from here: its number, then its PIN (VM-02/03)
    number <e164> a public number: the company's own as if dialled in, any other out through its trunks
A key the menu has no action for is `invalid` (or, without one, "not a valid choice" and the menu again); no key is
`timeout` (without one, the menu again). After `tries` rounds without a choice the call ends.

Who does what: the media server plays and listens, moving through the menus with `enter`/`press`/`waited` (pure,
here); once a choice leaves the menus (extension, mailbox, hangup) it ends its part of the call with `302` and
the choice in a header (CHOICE_HEADER, `choice_value`); the node's failure route reads it (`parse_choice`) and the
policy decides where the call goes (`kemi.policy.call.ivr_chosen`) — the media server never names a destination. The
menus are
played as early media (183): a transfer is a new branch of the same INVITE, the caller's phone shows whoever answers
(docs/decisions.md).

A menu may depend on a time plan: outside the plan's times (or inside, `when`) the call enters `other_menu` instead,
decided when the call comes in (`entry`).

A personal IVR (IVR-06) is a menu of one user (`personal_actions`): a standardized set of choices the user switches on
— leave a message (1), the mobile (2), the assistant (3), a colleague (4), the department (5), the switchboard (0) —
reached by forwarding the user's calls to it. Without a recording of its own it says its choices in the system's
standard words (`spoken`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

from .announce import LANGUAGES, worker_port
from .decision import Reject

MAX_ACTIONS = 12
MAX_DEPTH = 8  # submenus below a menu entered from a number (a loop is refused when configured)
KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#")
EVENTS = ("timeout", "invalid")
KINDS = ("menu", "back", "repeat", "play", "extension", "number", "mailbox", "voicemail", "hangup")
LEAVING = (
    "extension",
    "number",
    "mailbox",
    "voicemail",
    "hangup",
)  # choices that end the media server's part of the call
DEFAULT_TIMEOUT_S, DEFAULT_TRIES = 6, 3
# The media server answers the INVITE at once (FR_MS); a caller may stay in the menus this long (INV_MS), then the
# node ends the branch (408). The media server ends a call without a choice itself earlier (MAX_MENU_S: 480). The
# INVITE transaction of a call through the menus may live LIFETIME_MS: the menus and then the ringing of the choice.
FR_MS, INV_MS, LIFETIME_MS = 2000, 150_000, 600_000
MAX_MENU_S = 120
# System prompts the menus use where a tenant recorded nothing (mediaserver/prompts)
CHOOSE, INVALID, GOODBYE = "ivr_choose", "ivr_invalid", "vm_goodbye"


@dataclass(frozen=True, slots=True)
class Action:
    key: str  # a KEY or an EVENT
    kind: str  # a KIND
    target: str = ""  # menu id, extension or mailbox id, by kind


@dataclass(frozen=True, slots=True)
class Menu:
    id: int
    tenant_id: int
    name: str = ""
    extension: str = ""
    timeout_s: int = DEFAULT_TIMEOUT_S
    tries: int = DEFAULT_TRIES
    actions: tuple[Action, ...] = ()
    time_plan: int | None = None  # with other_menu: which of the two a call enters, by this plan
    when: str = "out"  # "out": other_menu outside the plan's times; "in": inside them
    other_menu: int | None = None
    language: str = ""  # of the system prompts it plays ('' : the tenant's)
    personal: bool = False  # a user's personal IVR (IVR-06): without a recording, its choices said in standard words

    def action(self, key: str) -> Action | None:
        return next((a for a in self.actions if a.key == key), None)


def parse_menus(rows: Any) -> dict[int, Menu]:
    """The menus from their documents (the snapshot's `ivr_menus` section, the media server's file)."""
    out: dict[int, Menu] = {}
    for m in rows or ():
        out[int(m["id"])] = Menu(
            int(m["id"]),
            int(m["tenant_id"]),
            str(m.get("name", "")),
            str(m.get("extension", "") or ""),
            int(m.get("timeout_s", DEFAULT_TIMEOUT_S)),
            int(m.get("tries", DEFAULT_TRIES)),
            tuple(Action(str(a["key"]), str(a["kind"]), str(a.get("target", "") or "")) for a in m.get("actions", ())),
            int(m["time_plan"]) if m.get("time_plan") else None,
            str(m.get("when", "out")),
            int(m["other_menu"]) if m.get("other_menu") else None,
            str(m.get("language", "") or ""),
            bool(m.get("personal", False)),
        )
    return out


# ---------------------------------------------------------------- the personal IVR (IVR-06)

# (key, choice, what an action of it does, the standard prompt saying it)
PERSONAL = (
    ("1", "message", "mailbox", "pivr_message"),
    ("2", "mobile", "number", "pivr_mobile"),
    ("3", "assistant", "extension", "pivr_assistant"),
    ("4", "colleague", "extension", "pivr_colleague"),
    ("5", "department", "extension", "pivr_department"),
    ("0", "switchboard", "extension", "pivr_switchboard"),
)
PERSONAL_INTRO = "pivr_intro"
PERSONAL_PROMPTS = (PERSONAL_INTRO, *(p for _, _, _, p in PERSONAL))


def personal_actions(choices: Mapping[str, str]) -> list[dict]:
    """A personal IVR's actions from the choices switched on ({choice: target}: the mailbox's id, the mobile's
    E.164 number, an extension), each on its standard key."""
    return [{"key": key, "kind": kind, "target": choices[name]} for key, name, kind, _ in PERSONAL if choices.get(name)]


def spoken(menu: Menu | None) -> tuple[str, ...]:
    """What a menu without a recording of its own says (system prompts, in order): a personal IVR its intro and each
    choice it has; any other menu "please make your choice"."""
    if menu is None or not menu.personal:
        return (CHOOSE,)
    keys = {a.key for a in menu.actions}
    return (PERSONAL_INTRO, *(prompt for key, _, _, prompt in PERSONAL if key in keys))


def problems(menus: Mapping[int, Menu], menu: Menu) -> list[str]:
    """What is wrong with `menu` among `menus` (its tenant's, with it): each a sentence; [] when it can be used."""
    out = []
    if len(menu.actions) > MAX_ACTIONS:
        out.append(f"a menu has at most {MAX_ACTIONS} actions")
    seen: set[str] = set()
    for a in menu.actions:
        if a.key not in KEYS and a.key not in EVENTS:
            out.append(f"key {a.key!r} is none of 0-9, *, #, timeout, invalid")
        if a.key in seen:
            out.append(f"key {a.key!r} has two actions")
        seen.add(a.key)
        if a.kind not in KINDS:
            out.append(f"action {a.kind!r} for key {a.key!r} is none of {', '.join(KINDS)}")
        if a.kind == "menu":
            sub = menus.get(int(a.target)) if a.target.isascii() and a.target.isdigit() else None
            if sub is None or sub.tenant_id != menu.tenant_id:
                out.append(f"key {a.key!r} leads to menu {a.target!r}, which is not a menu of this company")
        if a.kind == "mailbox" and not (a.target.isascii() and a.target.isdigit()):
            out.append(f"key {a.key!r}: a mailbox action names the mailbox's id")
        if a.kind == "extension" and not re.fullmatch(r"[0-9*#]{1,15}", a.target):
            out.append(f"key {a.key!r}: an extension is 1-15 digits")
        if a.kind == "number" and not re.fullmatch(r"\+[1-9][0-9]{5,14}", a.target):
            out.append(f"key {a.key!r}: a number is written in E.164 (+4930...)")
    if menu.other_menu is not None:
        other = menus.get(menu.other_menu)
        if other is None or other.tenant_id != menu.tenant_id or menu.time_plan is None:
            out.append("other_menu must be a menu of this company and needs a time_plan")
    if not out:
        loop = _submenu_loop(menus, menu.id)
        if loop:
            out.append(f"the menus lead in a circle ({' -> '.join(str(m) for m in loop)}); use 'back' to return")
    return out


def _submenu_loop(menus: Mapping[int, Menu], start: int) -> list[int]:
    """A path of submenus from `start` that comes back to a menu on it ([] : none); deeper than MAX_DEPTH counts too."""

    def walk(menu_id: int, path: list[int]) -> list[int]:
        if menu_id in path or len(path) > MAX_DEPTH:
            return [*path, menu_id]
        menu = menus.get(menu_id)
        if menu is None:
            return []
        for a in menu.actions:
            if a.kind == "menu" and a.target.isdigit():
                found = walk(int(a.target), [*path, menu_id])
                if found:
                    return found
        return []

    return walk(start, [])


def entry(menus: Mapping[int, Menu], menu_id: int, in_plan) -> tuple[int, str]:
    """The menu a call to `menu_id` enters, and why: its `other_menu` when its time plan says so, and that menu's own
    when its plan says so in turn (time-of-day greetings: morning -> day -> evening, AUD-10), at most MAX_DEPTH
    steps and never a menu twice. `in_plan(plan_id)`: whether now is inside the plan's times (None when the plan is
    gone: the menu itself)."""
    why: list[str] = []
    seen = {menu_id}
    for _ in range(MAX_DEPTH):
        menu = menus[menu_id]
        if menu.other_menu is None or menu.time_plan is None or menu.other_menu not in menus:
            break
        inside = in_plan(menu.time_plan)
        if inside is None:
            why.append(f"time plan {menu.time_plan} not found: menu {menu_id}")
            break
        if inside != (menu.when == "in") or menu.other_menu in seen:
            break
        where = "inside" if inside else "outside"
        why.append(f"time plan {menu.time_plan} ({where} its times): menu {menu.other_menu}")
        menu_id = menu.other_menu
        seen.add(menu_id)
    return menu_id, "; ".join(why)


# ---------------------------------------------------------------- moving through the menus (the media server)


class Position(NamedTuple):
    menu: int
    back: tuple[int, ...] = ()  # the menus before this one
    rounds: int = 0  # rounds of this menu without a choice


class Play(NamedTuple):
    """Play these (a menu's recording: ("menu", id); an action's: ("action", id, key); a system prompt: ("system",
    name)), then wait up to `wait_s` for a key (0: do not wait)."""

    prompts: tuple[tuple, ...]
    wait_s: float


class Leave(NamedTuple):
    """The caller chose something that leaves the menus: (menu, key) goes back to the node; `prompts` first."""

    menu: int
    key: str
    prompts: tuple[tuple, ...] = ()


class End(NamedTuple):
    """No choice after the menu's tries, or a menu that is gone: goodbye, the call ends (480)."""

    prompts: tuple[tuple, ...] = (("system", GOODBYE),)


Step = Play | Leave | End


def enter(menus: Mapping[int, Menu], menu_id: int, back: tuple[int, ...] = ()) -> tuple[Position, Step]:
    menu = menus.get(menu_id)
    if menu is None:
        return Position(menu_id, back), End()
    return Position(menu_id, back), Play((("menu", menu_id),), float(menu.timeout_s))


def press(menus: Mapping[int, Menu], pos: Position, key: str) -> tuple[Position, Step]:
    """The caller pressed `key` in the menu at `pos`."""
    menu = menus.get(pos.menu)
    if menu is None:
        return pos, End()
    action = menu.action(key) if key in KEYS else None
    if action is None:
        return _event(menus, pos, menu, "invalid")
    return _do(menus, pos, menu, action)


def waited(menus: Mapping[int, Menu], pos: Position) -> tuple[Position, Step]:
    """No key came within the menu's time."""
    menu = menus.get(pos.menu)
    if menu is None:
        return pos, End()
    return _event(menus, pos, menu, "timeout")


def _event(menus: Mapping[int, Menu], pos: Position, menu: Menu, event: str) -> tuple[Position, Step]:
    action = menu.action(event)
    if action is not None and action.kind != "repeat":
        return _do(menus, pos, menu, action)
    rounds = pos.rounds + 1
    if rounds >= max(1, menu.tries):
        return pos._replace(rounds=rounds), End()
    said = (("system", INVALID),) if event == "invalid" else ()
    return pos._replace(rounds=rounds), Play((*said, ("menu", menu.id)), float(menu.timeout_s))


def _do(menus: Mapping[int, Menu], pos: Position, menu: Menu, action: Action) -> tuple[Position, Step]:
    if action.kind == "menu":
        return enter(menus, int(action.target), (*pos.back, pos.menu)[-MAX_DEPTH:])
    if action.kind == "back":
        if not pos.back:
            return enter(menus, pos.menu)
        return enter(menus, pos.back[-1], pos.back[:-1])
    if action.kind == "repeat":
        return pos._replace(rounds=0), Play((("menu", menu.id),), float(menu.timeout_s))
    if action.kind == "play":
        return pos._replace(rounds=0), Play((("action", menu.id, action.key), ("menu", menu.id)), float(menu.timeout_s))
    if action.kind == "hangup":
        return pos, Leave(menu.id, action.key, (("action", menu.id, action.key), ("system", GOODBYE)))
    return pos, Leave(menu.id, action.key, (("action", menu.id, action.key),))


# ---------------------------------------------------------------- where the recordings and menus are (store: the node's
# voicemail_dir, written by the control plane, read by the media server)

MENUS_FILE = "ivr/menus.json"  # every menu, as the snapshot's `ivr_menus` (written when a snapshot is published)


def recording(prompt: tuple) -> str:
    """The path (under the store) of a menu's recording (("menu", id)) or an action's (("action", id, key))."""
    if prompt[0] == "menu":
        return f"ivr/{int(prompt[1])}/menu.wav"
    return f"ivr/{int(prompt[1])}/key-{_KEY_NAMES.get(prompt[2], prompt[2])}.wav"


# ---------------------------------------------------------------- the choice, from the media server to the node

_KEY_NAMES = {"*": "star", "#": "hash"}
_NAMED = {v: k for k, v in _KEY_NAMES.items()}
_CHOICE = re.compile(r"^ivr\.([1-9][0-9]{0,11})\.([0-9]|star|hash|timeout|invalid)$")


CHOICE_HEADER = "X-Callmanager-Choice"  # on the media server's 302 (not the Contact: pjsip adds its own first)


def choice_value(menu_id: int, key: str) -> str:
    """The choice header's value: `ivr.<menu>.<key>` (* and # by name)."""
    return f"ivr.{menu_id}.{_KEY_NAMES.get(key, key)}"


def parse_choice(value: str) -> tuple[int, str] | None:
    """(menu, key) from the choice header of the media server's 302; None: not a choice."""
    c = _CHOICE.match((value or "").strip())
    if c is None:
        return None
    return int(c.group(1)), _NAMED.get(c.group(2), c.group(2))


# ---------------------------------------------------------------- how the node names a menu call to the media server

_TARGET = re.compile(r"^ivr\.([1-9][0-9]{0,11})\.([a-z]{2})\.t([1-9][0-9]{0,11})$")


class Target(NamedTuple):
    menu_id: int
    language: str
    tenant_id: int


def target_user(menu_id: int, language: str, tenant_id: int) -> str:
    return f"ivr.{menu_id}.{language}.t{tenant_id}"


def target_uri(action, media_server: str, call_id: str, workers: int, default_language: str, attempt: int = 0) -> str:
    """The Request-URI of a call into the menus of `action` (a ToIvr), at the media server process for this call."""
    language = action.language if action.language in LANGUAGES else default_language
    address, _, port = media_server.rpartition(":")
    user = target_user(action.menu_id, language, action.tenant_id)
    return f"sip:{user}@{address}:{worker_port(int(port), call_id, workers, attempt)}"


def parse_target(user: str) -> Target | None:
    m = _TARGET.match(user)
    if m is None:
        return None
    return Target(int(m.group(1)), m.group(2), int(m.group(3)))


NO_MENU = Reject(480, "Temporarily Unavailable", "the menu cannot be played now")
ENDED = Reject(480, "Temporarily Unavailable", "the caller made no choice in the menu")
HUNG_UP = Reject(480, "Temporarily Unavailable", "the menu ended the call")
