"""Voicemail (issue 23, VM-01..09): where a call to a mailbox goes, and how the node names a deposit to the media
server.

A forwarding rule (or a hunt group's overflow) may lead to a mailbox: the call is sent to the media server, which
answers, plays the mailbox's greeting — the busy greeting for busy forwarding, the unavailable one otherwise; the
owner's own recording, else the system's in the tenant's language — then a tone, and records the caller's message. The
control plane stores it (controlplane/services/voicemail_ingest.py). When the media server cannot take the call, the
call ends as it would have without the mailbox: 486 for busy, 480 otherwise.

The one place that knows the Request-URI's user part for a deposit (`target_user` / `parse_target`), so the node and
the media server cannot drift apart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

from .announce import LANGUAGES, worker_port
from .decision import Reject, ToVoicemail

GREETINGS = ("busy", "unavailable")
LISTEN = "listen"  # not a deposit: the owner listening to the mailbox (kemi.policy.mailbox_menu)
# The media server answers a deposit's INVITE at once: no answer within FR_MS means it is away (the call ends as it
# would have without the mailbox). INV_MS bounds the time to its answer, not the message.
FR_MS, INV_MS = 2000, 10000
MAX_MESSAGE_S = 600  # no mailbox records longer messages than this
CALLER_HEADER = "X-Callmanager-Caller"  # who left the message, as the node identified them (the media server keeps it)


def greeting_for(kind: str) -> str:
    """The greeting a forwarding of this kind plays: busy forwarding the busy greeting, every other the unavailable."""
    return "busy" if kind == "busy" else "unavailable"


def deposit(tenant_id: int, mailbox_id: int, kind: str, language: str, max_s: int) -> ToVoicemail:
    return ToVoicemail(tenant_id, mailbox_id, greeting_for(kind), language, max(1, min(int(max_s), MAX_MESSAGE_S)))


def listen(tenant_id: int, mailbox_id: int, language: str) -> ToVoicemail:
    """The owner calling their mailbox to listen (*98): the media server asks for the PIN and plays the messages."""
    return ToVoicemail(tenant_id, mailbox_id, LISTEN, language, MAX_MESSAGE_S)


def remote(tenant_id: int, language: str) -> ToVoicemail:
    """Listening from anywhere (VM-02/03, an IVR menu's `voicemail` action): the caller names the mailbox by its
    number, then its PIN (kemi.policy.mailbox_menu.ask_box)."""
    return ToVoicemail(tenant_id, 0, LISTEN, language, MAX_MESSAGE_S)


def refusal(action: ToVoicemail) -> Reject:
    """How the call ends when the mailbox cannot take it: as it would have without the mailbox."""
    if action.greeting == LISTEN:
        return Reject(480, "Temporarily Unavailable", "the mailbox cannot be reached now")
    if action.greeting == "busy":
        return Reject(486, "Busy Here", "the callee is busy and the mailbox could not take the call")
    return Reject(480, "Temporarily Unavailable", "the callee is unavailable and the mailbox could not take the call")


def describe(action: ToVoicemail) -> str:
    lang = f", {action.language}" if action.language else ""
    if action.greeting == LISTEN and not action.mailbox_id:
        return f"voicemail access (any mailbox of the company, with its PIN{lang})"
    if action.greeting == LISTEN:
        return f"mailbox {action.mailbox_id} (listening{lang})"
    return f"mailbox {action.mailbox_id} ({action.greeting} greeting{lang}, messages up to {action.max_s} s)"


# ---------------------------------------------------------------- how the node names a deposit


class Deposit(NamedTuple):
    """What the media server is asked to do for one INVITE: greet with `greeting` in `language`, record up to `max_s`
    seconds for mailbox `mailbox_id`."""

    mailbox_id: int  # 0: remote access (the caller names the mailbox; `tenant_id`'s)
    greeting: str
    language: str
    max_s: int
    tenant_id: int = 0


_TARGET = re.compile(
    r"^vm\.([1-9][0-9]{0,11})\.(busy|unavailable|listen)\.([a-z]{2})\.([1-9][0-9]{0,3})$"
    r"|^vm\.0\.listen\.([a-z]{2})\.([1-9][0-9]{0,3})\.t([1-9][0-9]{0,11})$"
)


def target_user(action: ToVoicemail, default_language: str) -> str:
    """The Request-URI's user part for the media server: `vm.<mailbox>.<greeting>.<language>.<max seconds>`."""
    language = action.language if action.language in LANGUAGES else default_language
    if not action.mailbox_id:  # remote access: the tenant whose mailboxes may be named
        return f"vm.0.listen.{language}.{action.max_s}.t{action.tenant_id}"
    return f"vm.{action.mailbox_id}.{action.greeting}.{language}.{action.max_s}"


def target_uri(
    action: ToVoicemail, media_server: str, call_id: str, workers: int, default_language: str, attempt: int = 0
) -> str:
    address, _, port = media_server.rpartition(":")
    return f"sip:{target_user(action, default_language)}@{address}:{worker_port(int(port), call_id, workers, attempt)}"


def parse_target(user: str) -> Deposit | None:
    """The media server's reading of a Request-URI user part (None: not a deposit)."""
    m = _TARGET.match(user)
    if m is None:
        return None
    if m.group(1) is None:  # remote access
        if m.group(5) not in LANGUAGES or int(m.group(6)) > MAX_MESSAGE_S:
            return None
        return Deposit(0, LISTEN, m.group(5), int(m.group(6)), int(m.group(7)))
    if m.group(3) not in LANGUAGES or int(m.group(4)) > MAX_MESSAGE_S:
        return None
    return Deposit(int(m.group(1)), m.group(2), m.group(3), int(m.group(4)))


# ---------------------------------------------------------------- the PIN (set by the API, checked by the media server)

PIN_ROUNDS = 100_000
PIN_RULE = re.compile(r"[0-9]{4,10}")
PIN_RULE_TEXT = "a PIN is 4 to 10 digits"


def valid_pin(pin: str) -> bool:
    """A PIN the API (voicemail.set_pin) and the phone (kemi.policy.mailbox_menu, changing it) both accept."""
    return bool(PIN_RULE.fullmatch(pin))


def hash_pin(pin: str, salt: str = "") -> str:
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt.encode(), PIN_ROUNDS).hex()
    return f"pbkdf2-sha256${PIN_ROUNDS}${salt}${digest}"


HASH_FORM = re.compile(r"pbkdf2-sha256\$([0-9]{4,8})\$[0-9a-f]{1,64}\$[0-9a-f]{64}")


def pin_hash_form(stored: str) -> bool:
    """Is this a PIN hash as `hash_pin` writes it (a PIN changed by phone reaches the control plane only hashed)?"""
    m = HASH_FORM.fullmatch(stored)
    return m is not None and 1000 <= int(m.group(1)) <= 10_000_000


def pin_matches(stored: str, pin: str) -> bool:
    """Does `pin` open a mailbox whose PIN hash is `stored`? (False without a PIN: remote access is closed then.)"""
    try:
        scheme, rounds, salt, digest = stored.split("$")
        n = int(rounds)
    except ValueError:
        return False
    if scheme != "pbkdf2-sha256" or not pin or not 1000 <= n <= 10_000_000:
        return False
    got = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt.encode(), n).hex()
    return hmac.compare_digest(got, digest)


# ---------------------------------------------------------------- calling back who left a message


def callback_number(caller: str) -> str:
    """The number a listener's phone dials to call back who left a message: the caller as the node identified them
    (an extension, or a public number in E.164), '' when there is none to call (anonymous, or not a number)."""
    caller = caller.strip()
    digits = caller[1:] if caller.startswith("+") else caller
    if not digits.isascii() or not digits.isdigit() or not 2 <= len(digits) <= 16:
        return ""
    return caller


# ---------------------------------------------------------------- the central voicemail (VM-08)


def diverted_by(header: str) -> tuple[str, str]:
    """Who forwarded a call, from its Diversion header (RFC 5806; the first entry is the last forwarding — the phone
    that sent the call here): (their number as the URI's user part has it, the reason: 'user-busy', 'no-answer',
    'unconditional', ...). ('', '') when there is none or it cannot be read."""
    entry, depth, quoted = "", 0, False
    for ch in header[:1024]:  # the first entry: up to a comma outside <...> and outside a quoted display name
        if ch == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and not quoted:
            break
        entry += ch
    uri, _, params = entry.partition(">") if "<" in entry else ("", "", entry)
    uri = uri.partition("<")[2] if uri else entry.split(";", 1)[0]
    scheme, _, rest = uri.strip().partition(":")
    if scheme.lower() not in ("sip", "sips", "tel") or not rest:
        return "", ""
    user = rest.split("@", 1)[0].split(";", 1)[0] if scheme.lower() != "tel" else rest.split(";", 1)[0]
    reason = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "reason":
            reason = value.strip().strip('"').lower()
    return user.strip(), reason
