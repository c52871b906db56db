"""Edge protection: what happens to a request before any routing (SEC-06, SEC-10).

Pure functions of (settings, counters read from shared memory, now). The shell keeps the
counters in Kamailio's htables (every worker sees the same values) and acts on the verdicts:

- **Floods**: every request from a source that is not exempt (trunks, own nodes) counts
  against `max_requests` per sliding window (estimated from two buckets); past it the source
  is banned.
- **Bursts are not floods**: what does not authenticate counts separately against the much
  lower `max_unauthenticated`, and every successful authentication from the source pays one
  back (it answered the challenge the request before it got). An office of 200 phones behind
  one NAT address registering at once stays near zero; a flood of requests that never
  authenticate (scanners, guessers, garbage) is banned within `max_unauthenticated` requests
  (counted over the current and the whole previous bucket, so none slip through at a boundary).
- **Brute force**: failed digest authentications per source (ban) and per account (a
  cool-down from *any* source, trusted ones included, doubling each time up to a cap; the
  right password is refused during it, emergency calls excepted). Unknown accounts are
  counted and locked exactly like existing ones, so a lock tells an attacker nothing.
- **Scanners** that name themselves in User-Agent are banned at once.
- **IP restrictions**: an account may be limited to addresses or ranges; the right password
  from elsewhere is refused like a wrong one.

A banned source is dropped silently (no reply at all) until its ban expires by itself.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

# User-Agent substrings of well-known SIP scanners (lower case).
SCANNERS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipsak",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "pplsip",
    "sipscan",
    "smap",
    "nessus",
    "nmap",
)


class EdgeSettings(NamedTuple):
    enabled: bool = True
    window_s: int = 10  # the sliding window of the request counters
    max_requests: int = 1000  # requests per window from one source (all of them) before a ban
    max_unauthenticated: int = 50  # requests per window that did not authenticate (net of successful ones) before a ban
    ban_s: int = 300  # how long a banned source is dropped
    auth_failures_source: int = 10  # failed authentications from one source (any account) before a ban
    auth_failures_account: int = 5  # failed authentications of one account (from anywhere) before its cool-down
    lock_s: int = 60  # the first cool-down of an account; each further one doubles
    lock_max_s: int = 86400  # ... up to this
    exempt: tuple = ()  # networks never counted or banned (own nodes, SBCs); trunks' addresses are exempt too

    @classmethod
    def from_doc(cls, doc: dict) -> "EdgeSettings":
        known = {k: v for k, v in doc.items() if k in cls._fields}
        if "exempt" in known:
            known["exempt"] = networks(known["exempt"])
        return cls(**known)


def networks(cidrs) -> tuple:
    """Parsed networks (addresses become /32 or /128); raises ValueError on a malformed one."""
    return tuple(ipaddress.ip_network(str(c).strip(), strict=False) for c in cidrs)


def in_networks(ip: str, nets: tuple) -> bool:
    if not nets:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in nets)


KEY_MAX = 128  # the longest name a sender controls that is used as a key in shared memory as it is


def bounded_key(text: str) -> str:
    """A name a sender controls (an account `user@realm`), as a shared-memory key bounded in bytes: kept when short
    (every real account), else cut and suffixed with a digest of the whole (still one key per name)."""
    if len(text) <= KEY_MAX:
        return text
    import hashlib

    return text[: KEY_MAX - 17] + "#" + hashlib.sha1(text.encode("utf-8", "backslashreplace")).hexdigest()[:16]


def is_scanner(user_agent: str) -> str:
    """The scanner a User-Agent names ('' for none)."""
    ua = user_agent.lower()
    if not ua:
        return ""
    return next((s for s in SCANNERS if s in ua), "")


class Window(NamedTuple):
    """Which counter bucket `now` falls in, and how much of it has passed."""

    bucket: int
    elapsed: float  # 0..1


def window(now: float, window_s: int) -> Window:
    return Window(int(now // window_s), (now % window_s) / window_s)


def needs_previous(current: int, limit: int, w: Window, weighted: bool = True) -> bool:
    """Is the previous bucket worth reading? A weighted count `current + previous * (1 - elapsed)`
    can reach `limit` only if current >= limit * elapsed (a previous bucket at the limit was banned)."""
    return current >= limit * w.elapsed if weighted else True


def sliding_count(current: int, previous: int, w: Window, weighted: bool = True) -> float:
    """Requests in the last window: the current bucket plus the previous one, weighted by what is left
    of it (an estimate of the last window_s seconds) or whole (exact: nothing slips through at a boundary,
    the count covers up to two windows)."""
    return current + max(previous, 0) * ((1.0 - w.elapsed) if weighted else 1.0)


def over(current: int, previous: int, limit: int, w: Window, weighted: bool = True) -> bool:
    return limit > 0 and sliding_count(current, previous, w, weighted) >= limit


def lock_seconds(earlier_locks: int, s: EdgeSettings) -> int:
    """The cool-down of an account locked for the (earlier_locks + 1)-th time (within a day)."""
    return min(s.lock_s * (2 ** min(earlier_locks, 30)), s.lock_max_s)


class AuthVerdict(NamedTuple):
    ok: bool  # may the request go on as authenticated? (if not, it counts as a failure of its source)
    count_account: bool  # ... and of the account (not while the account cools down: the lock does not grow by itself)
    why: str  # for the log and the trace ('' when ok)


def plainly_accepted(checked_ok: bool, locked_until: float, allowed: tuple, now: float) -> bool:
    """`judge_auth` is sure to accept without anything more read: right credentials, no cool-down running, no address
    restriction (the common case, decided before the emergency check and the verdict's words are made)."""
    return checked_ok and locked_until <= now and not allowed


def judge_auth(
    checked_ok: bool, locked_until: float, allowed: tuple, src_ip: str, emergency: bool, now: float
) -> AuthVerdict:
    """The digest check's outcome adjusted for an account's cool-down and its address restriction.

    `checked_ok`: the credentials are right. A locked account is refused whatever it presents
    (emergency calls excepted); that counts against the source, not the account. An account
    restricted to `allowed` networks is refused from elsewhere, and that counts like a wrong password.
    """
    if locked_until > now and not emergency:
        return AuthVerdict(False, False, f"account locked for {locked_until - now:.0f} s more after repeated failures")
    if not checked_ok:
        return AuthVerdict(False, True, "wrong credentials")
    if allowed and not in_networks(src_ip, allowed):
        return AuthVerdict(False, True, f"the account may not be used from {src_ip}")
    return AuthVerdict(True, False, "")
