"""Where a person is calling, the platform says why a call cannot go through instead of failing silently (issue 23,
AUD): a refusal becomes an announcement — the media server plays the prompt as early media (183), then answers the
refusal itself; when the media server cannot, the node answers it (`kemi.policy.call.on_failure`).

Also the one place that knows how the node names an announcement to the media server (`target_user` /
`parse_target`), so the two sides cannot drift apart.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple

from .decision import Announce, Decision, Reject

LANGUAGES = ("en", "de")  # the prompt sets shipped (mediaserver/prompts)
# The media server answers an announcement's INVITE with 183 at once and ends it after the prompt: no answer within
# FR_MS means it is away (the node refuses without the announcement, call.announced); INV_MS bounds the prompt.
FR_MS, INV_MS = 2000, 60000
WARNING_HEADER = "X-Callmanager-Warning"  # the refusal's explanation, for the media server to send on as its Warning

# The prompt for a refusal: by its code, and for a few codes by what its warning says (first match wins).
_BY_WARNING: tuple[tuple[int, str, str], ...] = (
    (403, "fraud control", "limit_reached"),
    (403, "call limit reached", "limit_reached"),
    (404, "is not a feature code", "feature_rejected"),
    (404, "is not a group you belong to", "feature_rejected"),
    (404, "you have no profile", "feature_rejected"),
    (404, "you have no mailbox", "feature_rejected"),
    (403, "you cannot forward to yourself", "feature_rejected"),
)
# A feature code done (kemi.policy.features): its confirmation, by kind.
CONFIRMATIONS = {
    kind: f"fc_{kind}"
    for kind in ("dnd_on", "dnd_off", "forward_on", "forward_off", "profile", "group_login", "group_logout")
}
_BY_CODE = {
    404: "not_in_service",
    484: "incomplete",
    486: "busy",
    480: "unavailable",
    403: "barred",
    433: "anonymous_rejected",
    503: "no_route",
}
PROMPTS = tuple(sorted({*_BY_CODE.values(), *(p for _, _, p in _BY_WARNING), *CONFIRMATIONS.values()}))


def prompt_for(refusal: Reject) -> str | None:
    """The prompt that says why (None: this refusal is not announced — e.g. 603 Decline, which says nothing on
    purpose, or anything that is not about the call's destination)."""
    for code, words, prompt in _BY_WARNING:
        if refusal.code == code and words in refusal.warning:
            return prompt
    return _BY_CODE.get(refusal.code)


def speaks(
    decision: Decision, method: str, language: str, enabled: bool = True, tenants: Mapping[int, Any] | None = None
) -> str:
    """The language a call's refusal is announced in ('' : not announced): to a person (a user of the platform or a
    caller from the public network — not an unidentified source) placing a call (INVITE), with a media server. The
    caller's tenant's language (a caller from the public network: the called tenant's, by the caller's number where the
    tenant says so — ACD-21), else the node's `language`."""
    if not enabled or method != "INVITE" or decision.caller is None:
        return ""
    tenant_id = decision.caller.tenant_id or (decision.callee.tenant_id if decision.callee else None)
    tenant = tenants.get(tenant_id) if tenants and tenant_id is not None else None
    by_number = getattr(tenant, "language_for", None)  # ACD-21: a caller from the public network by their number
    external = decision.caller.user_id is None
    chosen = (by_number(decision.caller.number, external) if by_number else getattr(tenant, "language", "")) or language
    return chosen if chosen in LANGUAGES else LANGUAGES[0]


def spoken(
    decision: Decision, method: str, language: str, enabled: bool = True, tenants: Mapping[int, Any] | None = None
) -> Decision:
    """The first decision, announced where that helps the caller: refused for a reason there is a prompt for."""
    action = decision.action
    lang = speaks(decision, method, language, enabled, tenants)
    if not lang or not isinstance(action, Reject):
        return decision
    prompt = prompt_for(action)
    if prompt is None:
        return decision
    tenant_id = decision.caller.tenant_id if decision.caller is not None else None
    tenant_id = tenant_id or (decision.callee.tenant_id if decision.callee else None)
    announced = Announce(prompt, action, lang, tenant_id)
    return decision._replace(action=announced, trace=decision.trace + (said(prompt, lang),))


def after_failure(code: int, reason: str, language: str, tenant_id: int | None = None) -> Announce | None:
    """A call that ends refused by the far end with nothing left to try (busy, unavailable, a carrier's refusal),
    announced in `language` ('' or no prompt for it: None, the reply goes back as it is)."""
    if not language:
        return None
    refusal = Reject(code, reason)
    prompt = prompt_for(refusal)
    return Announce(prompt, refusal, language, tenant_id) if prompt is not None else None


def confirmed(kind: str, done: Reject, language: str, tenant_id: int | None = None) -> Announce | None:
    """A feature code done (`done`: the node's answer to the phone, 603 with what was done): its confirmation said
    first in `language` ('' or an unknown kind: None, answered at once)."""
    prompt = CONFIRMATIONS.get(kind)
    return Announce(prompt, done, language, tenant_id) if prompt and language else None


def said(prompt: str, language: str) -> str:
    return f"announced to the caller: {prompt} ({language})"


NOT_PLAYED = "the announcement could not be played"  # kemi.policy.call.announced's trace line begins so


def announcements(trace) -> list[tuple[str, bool]]:
    """From a call's trace (its record): each announcement it was sent to and whether it was played — (prompt, False)
    when the media server could not play it. For the NOC's counts."""
    out: list[tuple[str, bool]] = []
    for line in trace:
        if not isinstance(line, str):
            continue
        if line.startswith("announced to the caller: "):
            prompt = line[len("announced to the caller: ") :].split(" ", 1)[0]
            if prompt in PROMPTS:
                out.append((prompt, True))
        elif line.startswith(NOT_PLAYED) and out:
            out[-1] = (out[-1][0], False)
    return out


# ---------------------------------------------------------------- how the node names an announcement


class Target(NamedTuple):
    """What the media server is asked to do for one INVITE: play `prompt` in `language` (the tenant's own recording of
    it when it has one), then answer `code reason`."""

    prompt: str
    code: int
    language: str
    tenant_id: int | None = None


_TARGET = re.compile(r"^ann\.([a-z_]{1,40})\.([3-6][0-9][0-9])\.([a-z]{2})(?:\.t([1-9][0-9]{0,11}))?$")


def target_user(action: Announce) -> str:
    """The Request-URI's user part for the media server: `ann.<prompt>.<code>.<language>[.t<tenant>]`."""
    tenant = f".t{action.tenant_id}" if action.tenant_id else ""
    return f"ann.{action.prompt}.{action.refusal.code}.{action.language}{tenant}"


def target_uri(action: Announce, media_server: str, call_id: str = "", workers: int = 1, attempt: int = 0) -> str:
    """The Request-URI of the announcement on the media server at "address:port" — on one of its `workers` processes
    (ports port .. port+workers-1, mediaserver/workers.py), the same one for every request of a call."""
    address, _, port = media_server.rpartition(":")
    return f"sip:{target_user(action)}@{address}:{worker_port(int(port), call_id, workers, attempt)}"


def worker_port(base: int, call_id: str, workers: int, attempt: int = 0) -> int:
    """The port of the media server process a call goes to: spread by its Call-ID, stable for the call; `attempt` 1:
    the next process (the first did not answer)."""
    return base + ((zlib.crc32(call_id.encode("utf-8", "replace")) + attempt) % workers if workers > 1 else 0)


def parse_target(user: str) -> Target | None:
    """The media server's reading of a Request-URI user part (None: not an announcement it knows)."""
    m = _TARGET.match(user)
    if m is None or m.group(1) not in PROMPTS or m.group(3) not in LANGUAGES:
        return None
    return Target(m.group(1), int(m.group(2)), m.group(3), int(m.group(4)) if m.group(4) else None)
