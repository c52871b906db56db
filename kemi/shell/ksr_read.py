"""Read the current SIP message from KSR. The only reader of KSR pseudo-variables.

Every crossing into Kamailio costs about a microsecond, so the header facts a request route
needs are read in one call: a `$_s(...)` format that Kamailio expands into one string, split
here by `kemi.shell.wire` (a separator no field can shift across). When that read cannot be
trusted — a value holds the separator, the message is larger than Kamailio's print buffer
(pv_buffer_size, 8 KB), or its bytes are not UTF-8 — the fields are read one by one, a value
that is not UTF-8 through `{s.encode.hexa}`: any message Kamailio's parser accepted is read,
a hostile one only slower.
"""

from __future__ import annotations

from typing import NamedTuple

import time

import KSR

from kemi import contract as shm

from kemi.contract import LIVE_VERSION
from kemi.policy.hunting import FREE, AgentState, GroupLive

from . import wire
from .wire import number as _number

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
    """The header facts of a request, as strings; hosts lower-cased (ASCII, as Kamailio's {s.tolower}); absent values
    ''."""

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
    user_agent: str
    scheme: str = ""  # the Request-URI's scheme as Kamailio parsed it ('' when the R-URI did not parse: read it raw)
    proto: str = "udp"  # the transport it came over (udp, tcp, tls, ws, wss, sctp)
    exact: bool = True  # read in one crossing; False: field by field (locked_until not read: ask the htable by name)
    draining: bool = False  # the node is being drained (node.drain: htable item node=>drain)
    content_type: str = ""  # lower-cased (in-dialog requests: is there SDP to hand to RTPengine)
    session_expires: str = ""  # RFC 4028 (INVITE, UPDATE)
    require: str = ""  # all Require headers (REGISTER: an extension the registrar must support)


# The source's request counter first: incremented before any field that could make the one read fail (Kamailio
# prints in order), so a read that falls back never counts a request twice. No $cT: finding a Content-Type means
# scanning every header; only in-dialog requests need it (has_sdp).
_HEAD = ("$si", "$sp", "$Rp", f"$sht({shm.BAN.name}=>$si)")
_FIELDS = ("$rm", "$rU", "$rd", "$fU", "$fd", "$tU", "$td", "$tt", "$ci", "$au", "$ar", "$ua", "$rz", "$pr")
_DRAIN = f"$sht({shm.NODE.name}=>{shm.DRAIN})"
# headers some requests need, read with all the rest: the sanity checks parse every header of every request anyway
_HEADERS = ("$cT", "$hdr(Session-Expires)", "$(hdr(Require)[*])")
_CURRENT: list[Message | None] = [None]  # the request route's message while it runs (forget() at its end)
_VALUES: list[list[str] | None] = [None]  # its one-crossing read's fields (a straight path builds no Message)
_LOCK = f"$sht({shm.AUTHLOCK.name}=>until:$au@$(ar{{s.tolower}}))"  # last: its key is printed from the credentials
_FORMATS: dict[str, tuple[int, str]] = {}  # request counter key -> (fields, their one format)


def one(name: str) -> str:
    """One pseudo-variable as text, whatever its bytes ('' when absent or unreadable)."""
    try:
        return wire.text(KSR.pv.gete(name))
    except UnicodeDecodeError:  # not UTF-8: read its bytes as hex, decoded without raising
        return wire.from_hex(KSR.pv.gete(wire.hex_name(name)))


def _format(counter: str) -> tuple[int, str]:
    found = _FORMATS.get(counter)
    if found is None:
        pvs = (f"$shtinc({counter})" if counter else "0", *_HEAD, *_FIELDS, _DRAIN, *_HEADERS, _LOCK)
        found = _FORMATS[counter] = (len(pvs), wire.one_format(pvs))
    return found


def fields(counter: str = "") -> list[str] | None:
    """The request's header facts as the one-crossing read printed them (positions: `F_*`); None when that read
    cannot be trusted (then `message` reads them one by one). `counter` (an htable item, `table=>key`, the key may
    name $si) is incremented in the same crossing and its new value read (the edge's request counter: no crossing of
    its own). Kamailio parses each format once per worker and keeps it: the caller cycles through a bounded set of
    counter names."""
    expected, fmt = _format(counter)
    try:
        values = _VALUES[0] = wire.split(KSR.pv.gete(fmt), expected)
    except UnicodeDecodeError:
        return None
    return values


# Positions in `fields`: the order of `_format`'s pseudo-variables.
F_REQUESTS, F_SRC_IP, F_SRC_PORT, F_LOCAL_PORT, F_BANNED, F_METHOD, F_RURI_USER, F_RURI_HOST = range(8)
F_FROM_USER, F_FROM_HOST, F_TO_USER, F_TO_HOST, F_TO_TAG, F_CALL_ID, F_AUTH_USER, F_AUTH_REALM = range(8, 16)
F_USER_AGENT, F_SCHEME, F_PROTO, F_DRAIN, F_CONTENT_TYPE, F_SESSION_EXPIRES, F_REQUIRE, F_LOCKED_UNTIL = range(16, 24)


def message(counter: str = "", values: list[str] | None = None) -> Message:
    """The request's facts (`values`: its `fields`, when read already; else read here, one crossing, or one by one
    when that read cannot be trusted)."""
    if values is None:
        values = fields(counter)
    if values is None:
        return _message_by_field(counter)
    requests, si, sp, rp, ban, m, ru, rd, fu, fd, tu, td, tt, ci, au, ar, ua, uri, proto, drain, ct, se, req, lock = (
        values
    )
    # ports and the counter are Kamailio's own decimal prints; hosts and realm are ASCII in any ordinary request (the
    # checks inline: this runs for every request)
    msg = _CURRENT[0] = Message(
        m,
        ru,
        rd.lower() if rd.isascii() else wire.lower(rd),
        fu,
        fd.lower() if fd.isascii() else wire.lower(fd),
        tu,
        td.lower() if td.isascii() else wire.lower(td),
        tt,
        si,
        int(sp) if sp.isdigit() else 0,
        int(rp) if rp.isdigit() else 0,
        ci,
        au,
        ar.lower() if ar.isascii() else wire.lower(ar),
        ban,
        lock,
        int(requests) if requests.isdigit() else 0,
        ua,
        uri,
        proto,
        True,
        drain == "1",
        ct.lower(),
        se,
        req,
    )
    return msg


def forget() -> None:
    """The request route ended: its message is no longer the current one (later routes read for themselves)."""
    _CURRENT[0] = _VALUES[0] = None


def current() -> Message | None:
    """The message the running request route read (None outside a request route)."""
    return _CURRENT[0]


def _message_by_field(counter: str) -> Message:
    """The slow, exact read: every field alone. The request was counted by the failed one-crossing read (the counter
    comes first in it); here its value is only read. The account's cool-down is left to the caller (exact=False)."""
    requests = _number(one(f"$sht({counter})")) if counter else 0
    si, sp, rp, ban = (one(name) for name in _HEAD)
    m, ru, rd, fu, fd, tu, td, tt, ci, au, ar, ua, uri, proto = (one(name) for name in _FIELDS)
    lower = wire.lower
    msg = _CURRENT[0] = Message(
        m,
        ru,
        lower(rd),
        fu,
        lower(fd),
        tu,
        lower(td),
        tt,
        si,
        _number(sp),
        _number(rp),
        ci,
        au,
        lower(ar),
        ban,
        "",
        requests,
        ua,
        uri,
        proto,
        False,
        draining(),
        one("$cT").lower(),
        one("$hdr(Session-Expires)"),
        one("$(hdr(Require)[*])"),
    )
    return msg


def request_uri() -> str:
    """The Request-URI as the request line has it, unparsed (for a URI Kamailio's parser refused, $ru is empty)."""
    line = one("$mb").partition("\r\n")[0].partition("\n")[0]
    parts = line.split(" ")
    return parts[1] if len(parts) == 3 else ""


# sanity checks (module docs): R-URI SIP version (505) and scheme (416), mandatory headers, CSeq method and number,
# Content-Length against the body, Expires, Proxy-Require (420: none supported), URIs parse (400), first Via;
# R-URI, From and To URIs parsed (docs/security.md, "Malformed input").
SANITY_CHECKS = 1 | 2 | 4 | 32 | 64 | 128 | 256 | 512 | 1024 | 16384
SANITY_URI_CHECKS = 1 | 2 | 4


def sane() -> bool:
    """The sanity module's checks pass (when not, it answered 400, 420 or 505 itself where it could)."""
    return KSR.sanity.sanity_check(SANITY_CHECKS, SANITY_URI_CHECKS) >= 0


def check_credentials(realm: str, ha1: str, identity_must_match: bool) -> int:
    """The digest credentials against this HA1 (auth module's return code; kemi.policy.auth.auth_result reads it)."""
    return KSR.auth.pv_auth_check(realm, ha1, 1, 1 if identity_must_match else 0)


def draining() -> bool:
    """Is this node being drained (node.drain over the control plane's API sets the htable item)? (A request's
    message read has it already: Message.draining.)"""
    return one(_DRAIN) == "1"


def is_myself_ruri() -> bool:
    return KSR.is_myself_ruri() > 0


_REPLY_PVS = ("$rs", "$bf", "$cT", f"$avp({shm.AVP_GROUP_MARK})", f"$avp({shm.AVP_MEDIA})")
_REPLY_FORMAT = wire.one_format(_REPLY_PVS)


def reply() -> tuple[int, int, str, str, str]:
    """Status code, branch flags, content type, the hunt-group mark and the media plan of the reply's call: one
    crossing."""
    try:
        values = wire.split(KSR.pv.gete(_REPLY_FORMAT), 5)
    except UnicodeDecodeError:
        values = None
    if values is None:
        values = [one(name) for name in _REPLY_PVS]
    code, bflags, ctype, group, media = values
    return _number(code), _number(bflags), ctype.lower(), group, media


def call_id() -> str:
    return one("$ci")


def answering_contact() -> str:
    """In a reply route: the contact URI of the branch that answered."""
    return one("$T_branch(uri)")


def contacts_of(aor: str) -> list[str]:
    """The registered contact URIs of an AOR (usrloc), to tell which member a branch belongs to."""
    if KSR.registrar.reg_fetch_contacts("location", aor, "cmq") < 0:
        return []
    count = _number(one("$ulc(cmq=>count)"))
    return [one(f"$(ulc(cmq=>addr)[{i}])") for i in range(count)]


def transaction_id() -> tuple[int, int]:
    """The current transaction's index and label (to find it again: t_continue)."""
    return _number(one("$T(id_index)")), _number(one("$T(id_label)"))


def transaction_reply() -> tuple[int, str]:
    return _number(one("$T_reply_code")), one("$T_reply_reason")


def transaction_reply_header(name: str) -> str:
    """In a failure route: a header of the winning reply ('' when absent)."""
    return one(f"$T_rpl($hdr({name}))")


def body() -> str:
    """The message's body (an SDP offer or answer)."""
    return one("$rb")


def has_sdp(content_type: str | None = None) -> bool:
    if content_type is None:
        msg = _CURRENT[0]
        content_type = msg.content_type if msg is not None else one("$cT").lower()
    return "application/sdp" in content_type


def session_expires() -> str:
    """The request's Session-Expires (RFC 4028): from the request route's read, or read now."""
    msg = _CURRENT[0]
    if msg is not None:
        return msg.session_expires
    values = _VALUES[0]
    return values[F_SESSION_EXPIRES] if values is not None else one("$hdr(Session-Expires)")


def local_port() -> int:
    return _number(one("$Rp"))


def avp(name: str) -> str:
    return one(f"$avp({name})")


MEDIA_PVS = ("mos", "jitter", "loss", "rtt")  # filled by the rtpengine module at a deletion (kamailio.cfg)
_MEDIA_FORMAT = wire.one_format([f"$avp({a})" for a in (shm.AVP_MOS, shm.AVP_JITTER, shm.AVP_LOSS, shm.AVP_RTT)])


def media_quality() -> dict[str, str] | None:
    """The media scores the last rtpengine deletion left (None when RTPengine scored nothing)."""
    values = wire.split(KSR.pv.gete(_MEDIA_FORMAT), len(MEDIA_PVS))
    if values is None or not values[0]:
        return None
    return dict(zip(MEDIA_PVS, values))


ENDED = shm.ENDED.name  # calls whose end was accounted (once per dialog)
_CLAIM_KEY = f"{ENDED}=>$dlg(h_entry):$dlg(h_id)"
_END_PVS = (
    f"$shtinc({_CLAIM_KEY})",  # first: a read that falls back has counted the claim already
    f"$dlg_var({shm.DLG_AGENT})",
    f"$dlg_var({shm.DLG_TRACKED})",
    f"$dlg_var({shm.DLG_ANSWER})",
    "$dlg(callid)",
    "$dlg(from_tag)",
    f"$dlg_var({shm.DLG_CALL})",
    f"$dlg_var({shm.DLG_FRAUD})",
    "$dlg(h_id)",
    "$dlg(start_ts)",
)
_END_FORMAT = wire.one_format(_END_PVS)


class DialogEnd(NamedTuple):
    """What accounting a dialog's end reads, with its claim (htable `cmended`, atomic: 1 for the first claim, more for
    any later one; 0: no dialog or the table unreadable, the caller accounts unclaimed)."""

    claims: int
    agent: str  # DLG_AGENT: the agent who answered a group call
    tracked: str  # DLG_TRACKED: users on this call
    answer: str  # DLG_ANSWER: "<answered at>/<first rang at>"
    call_id: str
    from_tag: str
    state: str  # DLG_CALL: the call state document
    fraud_mark: str  # DLG_FRAUD: "tenant:user:class:price" of a call out under the fraud limits ('' for any other)
    h_id: str  # the dialog's number: which node of a cluster made it (kemi.policy.cluster.made_here)
    start_ts: str  # when the dialog was answered, as the dialog module keeps it (also on a peer's copy)


def dialog_end() -> DialogEnd:
    """Claim the current dialog's end and read what its accounting needs: one crossing (field by field when the
    one read cannot be trusted; the claim is then only read, the failed read made it)."""
    try:
        values = wire.split(KSR.pv.gete(_END_FORMAT), len(_END_PVS))
    except UnicodeDecodeError:
        values = None
    if values is None:
        return DialogEnd(_number(one(f"$sht({_CLAIM_KEY})")), *(one(pv) for pv in _END_PVS[1:]))
    return DialogEnd(_number(values[0]), *values[1:])


def dlg_var(name: str) -> str:
    return one(f"$dlg_var({name})")


def dlg_vars(*names: str) -> list[str]:
    """Several dialog variables in one crossing."""
    return several(*(f"$dlg_var({n})" for n in names))


def several(*pvs: str) -> list[str]:
    """Several pseudo-variables in one crossing (field by field when that read cannot be trusted). For values that
    change nothing when read (no $shtinc: a fallback reads each again)."""
    try:
        values = wire.split(KSR.pv.gete(wire.one_format(pvs)), len(pvs))
    except UnicodeDecodeError:
        values = None
    return values if values is not None else [one(pv) for pv in pvs]


class KsrLiveView:
    """The policy's live view on Kamailio's shared memory: htable `status`, dialog profile `calls`."""

    def status(self, user_id: int) -> str:
        value = KSR.htable.sht_get(shm.STATUS.name, shm.user_key(user_id))
        return value if isinstance(value, str) and value else "online"

    def busy(self, user_id: int) -> bool:
        KSR.dialog.get_profile_size(shm.PROFILE_CALLS, shm.user_key(user_id), "$var(cm_calls)")
        return int(KSR.pv.get("$var(cm_calls)") or 0) > 0

    def __init__(self) -> None:
        self._reads: dict[tuple, list[tuple[str, tuple[int, ...], int]]] = {}  # the $_s formats of a group's read
        self._pushed_reads: dict[
            tuple, list[tuple[str, tuple[int, ...]]]
        ] = {}  # ... and of its members' status and log-in
        self._pushed: dict[
            tuple, tuple[str, dict]
        ] = {}  # group's read -> (version, member -> (status, logged-out mark))
        self._states: dict[
            tuple, AgentState
        ] = {}  # a member's five values as read -> their AgentState (outside wrap-up): parsed once

    def _group_reads(
        self, group_id: int, user_ids: tuple[int, ...], rings: int
    ) -> list[tuple[str, tuple[int, ...], int]]:
        """(format, members, values expected) per crossing: the version of the pushed values, then each member's last
        call, offers and calls, then the group's pointers, waiting calls and status; built once per group and member
        list."""
        key = (group_id, user_ids, rings)
        reads = self._reads.get(key)
        if reads is None:
            tail = [f"$sht({shm.ACD.name}=>{shm.ring_pointer_key(group_id, i)})" for i in range(rings)] + [
                f"$sht({shm.QUEUE.name}=>{shm.queue_count_key(group_id)})",
                f"$sht({shm.STATUS.name}=>g{group_id})",
            ]
            reads = []
            for start in range(0, max(len(user_ids), 1), AGENT_CHUNK):
                chunk = user_ids[start : start + AGENT_CHUNK]
                parts = [f"$sht({shm.ACD.name}=>{LIVE_VERSION})"] if start == 0 else []
                parts += [
                    f"$sht({name})"
                    for u in chunk
                    for name in (
                        f"{shm.ACD.name}=>{shm.agent_end_key(u)}",
                        f"{shm.OFFERS.name}=>{shm.user_key(u)}",
                        f"{shm.BUSY.name}=>{shm.user_key(u)}",
                    )
                ]
                if start + AGENT_CHUNK >= len(user_ids):
                    parts += tail
                reads.append((wire.one_format(parts), chunk, len(parts)))
            pushed = []
            for start in range(0, len(user_ids), PUSHED_CHUNK):
                chunk = user_ids[start : start + PUSHED_CHUNK]
                parts = [
                    f"$sht({name})"
                    for u in chunk
                    for name in (
                        f"{shm.STATUS.name}=>{shm.user_key(u)}",
                        f"{shm.ACD.name}=>{shm.logged_out_key(group_id, u)}",
                    )
                ]
                pushed.append((wire.one_format(parts), chunk))
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
            got = wire.split(KSR.pv.gete(fmt), 2 * len(chunk))
            if got is None:
                KSR.warn(f"callmanager: status of group {key[0]}'s members unreadable\n")
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

        states = {}
        now = time.time()
        values: list[str] = []
        known = self._states
        pushed: dict = {}
        key = (group_id, user_ids, rings)
        for i, (fmt, chunk, expected) in enumerate(self._group_reads(group_id, user_ids, rings)):
            read_values = wire.split(KSR.pv.gete(fmt), expected)
            if read_values is None:
                KSR.warn(f"callmanager: live state of group {group_id} unreadable\n")
            values = (
                read_values if read_values is not None else [""] * expected
            )  # unreadable: everyone counts as available, the claims still prevent double offers
            if i == 0:  # the first crossing starts with the version of the pushed values
                version = values.pop(0)
                # no version: nothing was ever pushed into this Kamailio (or the read failed): nobody away or logged out
                pushed = self._pushed_values(key, version) if version else {}
            n = PER_AGENT * len(chunk)
            get = pushed.get
            for u, end, offered, busy in zip(
                chunk, values[0:n:PER_AGENT], values[1:n:PER_AGENT], values[2:n:PER_AGENT]
            ):
                status, out = get(u, _ONLINE)
                if not (status or out or end) and offered in _NOTHING and busy in _NOTHING:
                    states[u] = FREE  # nothing known about them: no object built
                    continue
                state_key = (status, out, end, offered, busy)
                state = known.get(state_key)
                if state is None:
                    last_end, _, wrap_until = end.partition(":")
                    wrap = int(wrap_until) if wrap_until.isdigit() else 0
                    state = AgentState(
                        logged_in=out in _NOTHING,
                        status=status or "online",
                        wrapup=wrap > now,
                        last_end=float(last_end) if last_end.isdigit() else 0.0,
                        offered=offered not in _NOTHING,
                        busy=busy.isdigit() and busy != "0",
                    )
                    if wrap <= now:  # not in wrap-up: the same values mean the same state from now on
                        if len(known) > 50000:
                            known.clear()
                        known[state_key] = state
                states[u] = state
        last_values = values[PER_AGENT * len(chunk) :] if user_ids else values
        pointers = {i: int(v) for i, v in enumerate(last_values[:rings]) if v.isdigit()}
        waiting, group_status = (last_values[rings : rings + 2] + ["", ""])[:2]
        return GroupLive(states, pointers, int(waiting) if waiting.isdigit() else 0, group_status or "online")

    def callback(self, number: str) -> tuple[int, float] | None:
        value = KSR.htable.sht_get(shm.ACD.name, shm.callback_key(number))
        if not isinstance(value, str) or ":" not in value:
            return None
        agent, until = value.split(":", 1)
        return (int(agent), float(until)) if agent.isdigit() and until.isdigit() else None


def htable_items(table: str) -> list[tuple[str, str]]:
    """Every item of an htable (read by a timer, never per request)."""
    items = []
    KSR.htable.sht_iterator_start("cmt", table)
    while KSR.htable.sht_iterator_next("cmt") >= 0:
        items.append((one("$shtitkey(cmt)"), one("$shtitval(cmt)")))
    KSR.htable.sht_iterator_end("cmt")
    return items


def take_all(table: str) -> list[tuple[str, str]]:
    """Every item of a small htable, removed as it is read (requests queued for this process)."""
    items = htable_items(table)
    for key, _ in items:
        KSR.htable.sht_rm(table, key)
    return items
