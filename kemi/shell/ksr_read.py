"""Read the current SIP message from KSR. The only reader of KSR pseudo-variables.

Every crossing into Kamailio costs about a microsecond, so the header facts a request route
needs are read in one call: a `$_s(...)` format that Kamailio expands into one string, split
here. A value that contains the separator (not legal in any of these fields) or a format that
Kamailio cannot expand falls back to reading field by field, so a hostile message is never
misread, only read slower.
"""
from __future__ import annotations

from typing import NamedTuple

import time

import KSR

from kemi.policy.live import LIVE_VERSION

_SEP = " "  # no space is legal in a method, URI user or host, address, port, Call-ID, tag or realm
_NULL = "<null>"  # how Kamailio prints an absent value
# Hunt-group members read per crossing. Every $sht in a $_s takes one of Kamailio's pv print
# buffers (a ring of pv_buffer_slots, kamailio.cfg), and so does the $_s itself: with more $sht
# than slots the ring wraps and overwrites the result. A call reads each member's last call, offers
# and calls: 1 + 45 x 3 + (rings + 2) < 160 slots for up to 20 rings. Their status and log-in
# (pushed, they change rarely) are read again only when the version `acd=>ver:live` changed: 70 x 2.
PER_AGENT = 3
AGENT_CHUNK = 45
PUSHED_CHUNK = 70
_NOTHING = ("", "0")  # a counter or flag that is absent or zero
_ONLINE = ("", "")  # a member with no status and no log-out mark


class Message(NamedTuple):
    """The header facts of a request, as strings; hosts lower-cased; absent values ''."""

    method: str
    ruri_user: str
    ruri_host: str
    from_user: str
    from_host: str
    to_user: str
    to_host: str
    to_tag: str
    src_ip: str
    src_port: int
    local_port: int
    call_id: str
    auth_user: str  # username of the digest credentials ('' when there are none)
    auth_realm: str
    banned: str  # the source's ban ('' when it is not banned)
    locked_until: str  # the cool-down of the account in the credentials (epoch seconds; '' or 0 when none)
    requests: int  # the source's request counter after counting this request (0: not counted, edge protection off)
    user_agent: str  # last: the only field that may contain spaces


# No $cT: finding a Content-Type means scanning every header; only in-dialog requests need it (has_sdp).
_PVS = ("$rm", "$rU", "$rd", "$fU", "$fd", "$tU", "$td", "$tt", "$si", "$sp", "$Rp", "$ci", "$au", "$ar", "$sht(ban=>$si)",
        "$sht(authlock=>until:$au@$(ar{s.tolower}))")
_FORMATS: dict[str, tuple[tuple[str, ...], str]] = {}  # request counter key -> (the pvs, their one format)


def _pv(name: str) -> str:
    return KSR.pv.gete(name) or ""


def _format(counter: str) -> tuple[tuple[str, ...], str]:
    found = _FORMATS.get(counter)
    if found is None:
        pvs = (*_PVS, f"$shtinc({counter})" if counter else "0", "$ua")
        found = _FORMATS[counter] = (pvs, "$_s(" + _SEP.join(pvs) + ")")
    return found


def _build(values: list[str]) -> Message:
    m, ru, rd, fu, fd, tu, td, tt, si, sp, rp, ci, au, ar, ban, lock, requests, ua = values
    return Message(m, ru, rd.lower(), fu, fd.lower(), tu, td.lower(), tt, si, int(sp) if sp.isdigit() else 0,
                   int(rp) if rp.isdigit() else 0, ci, au, ar.lower(), ban, lock, int(requests) if requests.isdigit() else 0, ua)


def message(counter: str = "") -> Message:
    """The request's facts; `counter` (an htable item, `table=>key`, the key may name $si) is incremented in the
    same crossing and its new value read (the edge's request counter: no crossing of its own). Kamailio parses
    each format once per worker and keeps it: the caller cycles through a bounded set of counter names.
    A message read field by field (a hostile value with a space) counts twice: harmless, it only counts more."""
    pvs, fmt = _format(counter)
    values = (KSR.pv.gete(fmt) or "").replace(_NULL, "").split(_SEP, len(pvs) - 1)  # the User-Agent may hold spaces
    if len(values) != len(pvs):
        values = [_pv(name) if name != "0" else "0" for name in pvs]
    return _build(values)


def is_myself_ruri() -> bool:
    return KSR.is_myself_ruri() > 0


_REPLY_FORMAT = "$_s($rs $bf $cT $avp(cm_grp))"


def reply() -> tuple[int, int, str, str]:
    """Status code, branch flags, content type and the hunt-group mark of the reply's call: one crossing."""
    values = (KSR.pv.gete(_REPLY_FORMAT) or "").replace(_NULL, "").split(_SEP)
    if len(values) != 4:
        values = [_pv("$rs"), _pv("$bf"), _pv("$cT"), _pv("$avp(cm_grp)")]
    code, bflags, ctype, group = values
    return int(code) if code.isdigit() else 0, int(bflags) if bflags.isdigit() else 0, ctype.lower(), group


def answering_contact() -> str:
    """In a reply route: the contact URI of the branch that answered."""
    return _pv("$T_branch(uri)")


def contacts_of(aor: str) -> list[str]:
    """The registered contact URIs of an AOR (usrloc), to tell which member a branch belongs to."""
    if KSR.registrar.reg_fetch_contacts("location", aor, "cmq") < 0:
        return []
    count = int(KSR.pv.get("$ulc(cmq=>count)") or 0)
    return [_pv(f"$(ulc(cmq=>addr)[{i}])") for i in range(count)]


def transaction_id() -> tuple[int, int]:
    """The current transaction's index and label (to find it again: t_continue)."""
    return int(_pv("$T(id_index)") or 0), int(_pv("$T(id_label)") or 0)


def transaction_reply() -> tuple[int, str]:
    return int(_pv("$T_reply_code") or 0), _pv("$T_reply_reason")


def has_sdp(content_type: str | None = None) -> bool:
    if content_type is None:
        content_type = _pv("$cT").lower()
    return "application/sdp" in content_type


def local_port() -> int:
    return int(_pv("$Rp") or 0)


def avp(name: str) -> str:
    return _pv(f"$avp({name})")


MEDIA_PVS = ("mos", "jitter", "loss", "rtt")  # $avp(cm_<name>), filled by the rtpengine module at a deletion (kamailio.cfg)


def media_quality() -> dict[str, str] | None:
    """The media scores the last rtpengine deletion left (None when RTPengine scored nothing)."""
    values = (KSR.pv.gete("$_s(" + _SEP.join(f"$avp(cm_{n})" for n in MEDIA_PVS) + ")") or "").replace(_NULL, "").split(_SEP)
    if len(values) != len(MEDIA_PVS) or not values[0]:
        return None
    return dict(zip(MEDIA_PVS, values))


def dlg_var(name: str) -> str:
    return _pv(f"$dlg_var({name})")


def dlg_vars(*names: str) -> list[str]:
    """Several dialog variables in one crossing (values without spaces)."""
    values = (KSR.pv.gete("$_s(" + _SEP.join(f"$dlg_var({n})" for n in names) + ")") or "").replace(_NULL, "").split(_SEP)
    return values if len(values) == len(names) else [dlg_var(n) for n in names]


class KsrLiveView:
    """The policy's live view on Kamailio's shared memory: htable `status`, dialog profile `calls`."""

    def status(self, user_id: int) -> str:
        value = KSR.htable.sht_get("status", f"u{user_id}")
        return value if isinstance(value, str) and value else "online"

    def busy(self, user_id: int) -> bool:
        KSR.dialog.get_profile_size("calls", f"u{user_id}", "$var(cm_calls)")
        return int(KSR.pv.get("$var(cm_calls)") or 0) > 0

    def __init__(self) -> None:
        self._reads: dict[tuple, list[tuple[str, tuple[int, ...], int]]] = {}  # the $_s formats of a group's read
        self._pushed_reads: dict[tuple, list[tuple[str, tuple[int, ...]]]] = {}  # ... and of its members' status and log-in
        self._pushed: dict[tuple, tuple[str, dict]] = {}  # group's read -> (version, member -> (status, logged-out mark))
        self._states: dict[tuple, object] = {}  # a member's five values as read -> their AgentState (outside wrap-up): parsed once

    def _group_reads(self, group_id: int, user_ids: tuple[int, ...], rings: int) -> list[tuple[str, tuple[int, ...], int]]:
        """(format, members, values expected) per crossing: the version of the pushed values, then each member's last
        call, offers and calls, then the group's pointers, waiting calls and status; built once per group and member list."""
        key = (group_id, user_ids, rings)
        reads = self._reads.get(key)
        if reads is None:
            tail = [f"$sht(acd=>ptr:g{group_id}:r{i})" for i in range(rings)] + [f"$sht(acdq=>n:g{group_id})", f"$sht(status=>g{group_id})"]
            reads = []
            for start in range(0, max(len(user_ids), 1), AGENT_CHUNK):
                chunk = user_ids[start:start + AGENT_CHUNK]
                parts = [f"$sht(acd=>{LIVE_VERSION})"] if start == 0 else []
                parts += [f"$sht({name})" for u in chunk for name in (f"acd=>end:u{u}", f"acdoffer=>u{u}", f"acdbusy=>u{u}")]
                if start + AGENT_CHUNK >= len(user_ids):
                    parts += tail
                reads.append(("$_s(" + _SEP.join(parts) + ")", chunk, len(parts)))
            pushed = []
            for start in range(0, len(user_ids), PUSHED_CHUNK):
                chunk = user_ids[start:start + PUSHED_CHUNK]
                parts = [f"$sht({name})" for u in chunk for name in (f"status=>u{u}", f"acd=>out:g{group_id}:u{u}")]
                pushed.append(("$_s(" + _SEP.join(parts) + ")", chunk))
            if len(self._reads) > 4096:  # member lists change with the configuration: drop old ones now and then
                self._reads.clear()
                self._pushed_reads.clear()
                self._pushed.clear()
            self._reads[key] = reads
            self._pushed_reads[key] = pushed
        return reads

    def _pushed_values(self, key: tuple, version: str) -> dict:
        """The members' status and log-in marks (set by the control plane and feature codes, which change the
        version with every write): read again only when the version changed since this worker last read them."""
        known = self._pushed.get(key)
        if known is not None and known[0] == version and version:
            return known[1]
        values: dict = {}
        for fmt, chunk in self._pushed_reads[key]:
            got = (KSR.pv.gete(fmt) or "").replace(_NULL, "").split(_SEP)
            if len(got) != 2 * len(chunk):
                KSR.warn(f"callmanager: status of group {key[0]}'s members unreadable ({len(got)} of {2 * len(chunk)} values)\n")
                return {}  # unreadable: everyone counts as online and logged in (not kept: read again on the next call)
            for u, status, out in zip(chunk, got[0::2], got[1::2]):
                if status or out not in _NOTHING:
                    values[u] = (status, out)
        self._pushed[key] = (version, values)
        return values

    def agents(self, group_id: int, user_ids: tuple[int, ...], rings: int):
        """Every member's status, log-in, wrap-up, last call, offers and calls, the circular pointers,
        the calls waiting and the group's own status: one crossing per AGENT_CHUNK members (status and
        log-in only when they changed)."""
        from kemi.policy.hunting import FREE, AgentState, GroupLive

        states = {}
        now = time.time()
        values: list[str] = []
        known = self._states
        pushed: dict = {}
        key = (group_id, user_ids, rings)
        for i, (fmt, chunk, expected) in enumerate(self._group_reads(group_id, user_ids, rings)):
            values = (KSR.pv.gete(fmt) or "").replace(_NULL, "").split(_SEP)
            if len(values) != expected:
                KSR.warn(f"callmanager: live state of group {group_id} unreadable ({len(values)} of {expected} values)\n")
                values = [""] * expected  # unreadable: everyone counts as available, the claims still prevent double offers
            if i == 0:  # the first crossing starts with the version of the pushed values
                version = values.pop(0)
                # no version: nothing was ever pushed into this Kamailio (or the read failed): nobody away or logged out
                pushed = self._pushed_values(key, version) if version else {}
            n = PER_AGENT * len(chunk)
            get = pushed.get
            for u, end, offered, busy in zip(chunk, values[0:n:PER_AGENT], values[1:n:PER_AGENT], values[2:n:PER_AGENT]):
                status, out = get(u, _ONLINE)
                if not (status or out or end) and offered in _NOTHING and busy in _NOTHING:
                    states[u] = FREE  # nothing known about them: no object built
                    continue
                state_key = (status, out, end, offered, busy)
                state = known.get(state_key)
                if state is None:
                    last_end, _, wrap_until = end.partition(":")
                    wrap = int(wrap_until) if wrap_until.isdigit() else 0
                    state = AgentState(logged_in=out in _NOTHING, status=status or "online", wrapup=wrap > now,
                                       last_end=float(last_end) if last_end.isdigit() else 0.0, offered=offered not in _NOTHING,
                                       busy=busy.isdigit() and busy != "0")
                    if wrap <= now:  # not in wrap-up: the same values mean the same state from now on
                        if len(known) > 50000:
                            known.clear()
                        known[state_key] = state
                states[u] = state
        last_values = values[PER_AGENT * len(chunk):] if user_ids else values
        pointers = {i: int(v) for i, v in enumerate(last_values[:rings]) if v.isdigit()}
        waiting, group_status = (last_values[rings:rings + 2] + ["", ""])[:2]
        return GroupLive(states, pointers, int(waiting) if waiting.isdigit() else 0, group_status or "online")

    def callback(self, number: str) -> tuple[int, float] | None:
        value = KSR.htable.sht_get("acd", f"cb:{number}")
        if not isinstance(value, str) or ":" not in value:
            return None
        agent, until = value.split(":", 1)
        return (int(agent), float(until)) if agent.isdigit() and until.isdigit() else None
