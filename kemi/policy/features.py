"""Feature codes dialled from a phone (documented in docs/routing.md).

    *78            do not disturb on        *79            do not disturb off
    *21<target>    forward all calls to an extension or number (unconditional)
    *22            forwarding set by *21 off
    *30<n>         switch to profile n (0: no profile)
    *41<group>     log in to the hunt group with this extension
    *42<group>     log out of it
    *98            listen to one's own mailbox (the PIN first; docs/voicemail.md)

`*31<number>` is not a feature code: it calls <number> with the caller's number suppressed.
The switch to DND is live at once (Kamailio's shared memory); every code also reaches the
control plane with the call's record, which stores it (forwarding, profile: the next call).
"""

from __future__ import annotations

from typing import NamedTuple

DND_ON, DND_OFF, FORWARD_ON, FORWARD_OFF, PROFILE, LOGIN, LOGOUT = "*78", "*79", "*21", "*22", "*30", "*41", "*42"
VOICEMAIL = "*98"


class FeatureCode(NamedTuple):
    user_id: int
    kind: str  # dnd_on | dnd_off | forward_on | forward_off | profile
    value: str = ""  # forward_on: the target as dialled; profile: its code
    reply: str = ""  # reason phrase of the answer to the phone


def parse(dialled: str) -> tuple[str, str] | None:
    """(kind, value) for a feature code; None when `dialled` is none (unknown '*' codes included)."""
    d = dialled.replace("%2A", "*").replace("%2a", "*")
    if d == DND_ON:
        return "dnd_on", ""
    if d == DND_OFF:
        return "dnd_off", ""
    if d == FORWARD_OFF:
        return "forward_off", ""
    if d == VOICEMAIL:
        return "voicemail", ""
    if d.startswith(FORWARD_ON) and len(d) > 3 and (d[3:].isdigit() or (d[3] == "+" and d[4:].isdigit())):
        return "forward_on", d[3:]
    if d.startswith(PROFILE) and d[3:].isdigit() and len(d) == 4:
        return "profile", d[3:]
    if d[:3] in (LOGIN, LOGOUT) and d[3:].isdigit() and len(d) > 4:
        return ("group_login" if d[:3] == LOGIN else "group_logout"), d[3:]
    return None


REPLIES = {
    "dnd_on": "Do Not Disturb on",
    "dnd_off": "Do Not Disturb off",
    "forward_on": "Forwarding on",
    "forward_off": "Forwarding off",
    "profile": "Profile switched",
    "group_login": "Logged in",
    "group_logout": "Logged out",
}
