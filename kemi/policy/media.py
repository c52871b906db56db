"""Media policy: how RTPengine treats each call leg, and what a tenant's encryption policy asks of a call.

Every call's media goes through RTPengine. Each leg of a call has a media mode: `rtp` (plain RTP/AVP), `srtp` (SRTP
keyed by SDES, RTP/SAVP: phones that offer it) or `webrtc` (DTLS-SRTP with ICE and rtcp-mux, UDP/TLS/RTP/SAVPF:
browsers). The caller's mode is what its offer says; the callee's is the policy's: trunks and the media server are
plain, a user gets SRTP when their tenant requires it or every device of theirs does. RTPengine bridges any two
(`flags`), so neither side needs to speak the other's mode. docs/tls.md.
"""

from __future__ import annotations

from typing import NamedTuple

BASE = "replace-origin replace-session-connection"
# Two plain legs (most calls): the flags every call had before modes existed.
RTPENGINE_FLAGS = BASE + " ICE=remove RTP/AVP"
RTP, SRTP, WEBRTC = "rtp", "srtp", "webrtc"
MODES = (RTP, SRTP, WEBRTC)
SECURE_TRANSPORTS = frozenset({"tls", "wss"})
_WORDS = {RTP: "RTP", SRTP: "SRTP (SDES)", WEBRTC: "DTLS-SRTP (WebRTC)"}


def with_nat(flags: str, nated: bool) -> str:
    """For a party behind NAT, the SDP address is private: take the signalling source instead
    (RTPengine then learns the real media address from the first packets)."""
    return flags + " SIP-source-address" if nated else flags


def rtpengine_flags(nated: bool) -> str:
    return with_nat(RTPENGINE_FLAGS, nated)


def plain_peers(trunks, media_server: str, media_workers: int) -> frozenset:
    """Where media is always plain RTP, as (host, port): the trunks (`.host`, `.port`) and the media server's
    processes ("address:port" of the first, the next on the following ports)."""
    peers = {(t.host.lower(), t.port) for t in trunks}
    host, _, port = media_server.rpartition(":")
    if host and port.isdigit():
        peers |= {(host.strip("[]").lower(), int(port) + i) for i in range(max(1, media_workers))}
    return frozenset(peers)


def offer_profile(sdp: str) -> str:
    """The transport profile of an SDP's first audio stream ("RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", ...; the first
    stream of any kind when there is no audio); '' : no media line."""
    first = ""
    for line in sdp.replace("\r", "\n").split("\n"):
        if line.startswith("m="):
            parts = line[2:].split()
            profile = parts[2] if len(parts) > 2 else ""
            if parts[:1] == ["audio"]:
                return profile[:40]
            first = first or profile[:40]
    return first


def mode_of(profile: str) -> str:
    """A leg's mode from the profile its offer (or answer) carries."""
    p = profile.upper()
    if p.startswith("UDP/TLS/RTP/SAVP"):
        return WEBRTC
    if "SAVP" in p:
        return SRTP
    return RTP


class MediaPlan(NamedTuple):
    """The two legs of a call: the caller's mode (what it offered) and the callee's (what the policy offers its SIP
    devices); `web`: some device of the callee is a browser (a branch over WS/WSS is offered WebRTC)."""

    caller: str = RTP
    callee: str = RTP
    web: bool = False

    @property
    def plain(self) -> bool:
        return self.caller == RTP and self.callee == RTP and not self.web

    def code(self) -> str:
        """As the dialog and the transaction keep it: 'srtp>rtp', 'rtp>rtp>w' (browsers among the callee's devices)."""
        return f"{self.caller}>{self.callee}" + (">w" if self.web else "")

    def words(self) -> str:
        """For the call's trace and route.simulate."""
        web = f", {_WORDS[WEBRTC]} to the callee's browsers" if self.web else ""
        if self.caller == self.callee:
            return (
                f"media: {_WORDS[self.caller]} both ways" + ("" if self.caller == RTP else " (RTPengine re-keys)") + web
            )
        return (
            f"media: {_WORDS[self.caller]} from the caller, {_WORDS[self.callee]} to the callee{web} "
            "(RTPengine bridges)"
        )


def parse_plan(code: str) -> MediaPlan | None:
    """A plan from its code ('' or anything malformed: None — the call is treated as plain)."""
    parts = code.split(">")
    if len(parts) in (2, 3) and parts[0] in MODES and parts[1] in MODES and parts[2:] in ([], ["w"]):
        return MediaPlan(parts[0], parts[1], len(parts) == 3)
    return None


def plan(offer: str, callee_srtp: bool, callee_web: bool = False) -> MediaPlan:
    """A new call's plan: the caller as it offered (`offer`: the SDP's profile), the callee as the policy says."""
    return MediaPlan(mode_of(offer), SRTP if callee_srtp else RTP, callee_web)


def flags(toward: str, source: str, answer: bool = False) -> str:
    """RTPengine's flags for an SDP going to a leg of mode `toward` from a leg of mode `source` (an offer, or with
    `answer` the answer to that leg's offer). Two plain legs: exactly RTPENGINE_FLAGS.

    WebRTC follows the field notes (verified here): an offer from a browser asks RTPengine to stay DTLS-passive towards
    that browser (`DTLS-reverse=passive`: the browser, which has not seen the answer yet, must not be made to wait as a
    server too — measured: without it the handshake fails, to a phone and to another browser alike); an offer to a
    browser forces ICE, rtcp-mux and a mid."""
    if toward == WEBRTC:
        words = [BASE, "ICE=force UDP/TLS/RTP/SAVPF rtcp-mux-require SDES-off"]
        words.append("DTLS=passive" if answer else "rtcp-mux-offer generate-mid")
        if source == WEBRTC and not answer:  # the offering browser must not meet an early ClientHello either
            words.append("DTLS-reverse=passive")
        return " ".join(words)
    words = [BASE, "ICE=remove", "RTP/SAVP" if toward == SRTP else "RTP/AVP"]
    if source == WEBRTC:
        words.append("rtcp-mux-demux")
        if not answer:
            words.append("DTLS=off DTLS-reverse=passive")
        if toward == RTP:
            words.append("SDES-off")
    return " ".join(words)


# What a transaction's replies are told (the AVP `cm_media`, read with every reply): "i:<caller>><callee>" on a new
# call (the answer's own profile says the callee's mode), "d:<sender>><other>" on an in-dialog offer.


def branch_mode(plan: MediaPlan, host: str, port: int, plain_peers: frozenset, transport: str = "") -> str:
    """The mode a branch of a new call is offered: plain towards a trunk or the media server (`plain_peers`: their
    (host, port)), WebRTC towards a browser (a branch over WS/WSS), else the callee's mode of the plan."""
    if transport in ("ws", "wss"):
        return WEBRTC
    return RTP if (host.lower(), port) in plain_peers else plan.callee


def uri_transport(*uris: str) -> str:
    """The transport the first of these URIs that names one names (`;transport=ws`), lower-cased; '' : none."""
    for uri in uris:
        low = uri.lower()
        at = low.find(";transport=")
        if at >= 0:
            return low[at + 11 :].split(";", 1)[0].split(">", 1)[0].split("?", 1)[0]
    return ""


def uri_host_port(uri: str) -> tuple[str, int]:
    """Host and port of a SIP URI (5060 when it names none; IPv6 in brackets kept without them)."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split("@", 1)[-1]
    rest = rest.split(";", 1)[0].split("?", 1)[0].split(">", 1)[0]
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = rest.partition(":")
    return host.lower(), int(port) if port.isdigit() and len(port) <= 5 else 5060


def answer(avp: str, answer_profile: str, code: int = 200) -> tuple[str, str | None]:
    """For a reply (`code`) with SDP on a transaction whose offer had a plan (`avp`, see above): (the flags for the
    answer, the dialog's plan to keep from now on — a new call's 2xx only, else None). A malformed `avp`: plain."""
    kind, _, plan_code = avp.partition(":")
    p = parse_plan(plan_code)
    if p is None:
        return RTPENGINE_FLAGS, None
    if kind == "i":
        answered = MediaPlan(p.caller, mode_of(answer_profile))
        return flags(answered.caller, answered.callee, True), answered.code() if 200 <= code < 300 else None
    return flags(p.caller, p.callee, True), None


def in_dialog(plan_code: str, downstream: bool, method: str = "INVITE") -> tuple[str, str] | None:
    """An in-dialog SDP (a re-INVITE's or UPDATE's offer, or an ACK's answer to a late offer) sent by the caller
    (`downstream`) or the callee: (flags for it, what its replies are told); None: a plain call (RTPENGINE_FLAGS)."""
    answer = method == "ACK"
    p = parse_plan(plan_code)
    if p is None or p.plain:
        return None
    sender, other = (p.caller, p.callee) if downstream else (p.callee, p.caller)
    return flags(other, sender, answer), f"d:{sender}>{other}"


# ---------------------------------------------------------------- the encryption policy (docs/tls.md)


def encryption_refusal(
    transport: str, offer: str, method: str, needs_tls: bool, needs_srtp: bool
) -> tuple[int, str, str] | None:
    """(code, reason, warning) for a request an account's policy refuses: signalling not over TLS (403), or a call
    whose offer is not SRTP (488); None: allowed. A REGISTER is judged on its transport only."""
    if needs_tls and transport.lower() not in SECURE_TRANSPORTS:
        return 403, "Forbidden", "TLS required: this account registers and calls over TLS only (sips: / transport=tls)"
    if needs_srtp and method == "INVITE" and mode_of(offer) == RTP:
        why = "the offer has no media" if not offer else f"the offer is {offer}"
        return 488, "Not Acceptable Here", f"SRTP required: this account's calls must offer SRTP ({why})"
    return None


# ---------------------------------------------------------------- music on hold (issue 23)

MUSIC_VAR = "moh"  # dialog variable: the tag of the party hearing the music now ('' : nobody)


def hold_offer(sdp: str) -> bool | None:
    """What an in-dialog offer does to the other party: True puts it on hold (its audio stream `sendonly` or
    `inactive`, at session or stream level, or RFC 2543's `c=0.0.0.0`), False takes it off hold (anything else);
    None: no audio stream in it (not about hold)."""
    lines = [ln.strip() for ln in sdp.replace("\r\n", "\n").split("\n")]
    session: list[str] = []
    audio: list[str] | None = None
    for ln in lines:
        if ln.startswith("m="):
            if audio is not None:
                break  # the first audio stream decides
            if ln.startswith("m=audio "):
                audio = []
            continue
        (session if audio is None else audio).append(ln)
    if audio is None:
        return None
    attrs = audio + session  # a stream's own direction first, then the session's
    direction = next((a[2:] for a in attrs if a in ("a=sendonly", "a=inactive", "a=sendrecv", "a=recvonly")), "")
    conn = next((a for a in audio if a.startswith("c=")), None) or next((a for a in session if a.startswith("c=")), "")
    zero = conn.split()[-1:] in (["0.0.0.0"], ["::"])
    return direction in ("sendonly", "inactive") or zero


def hold_music(holds: bool | None, playing_to: str, other_tag: str) -> tuple[str, str] | None:
    """The music for an in-dialog offer from one party (`other_tag`: the party it is sent to): ("play", tag) when it
    puts that party on hold and no music plays yet, ("stop", tag) when it resumes a call with music playing; None:
    nothing to do (a refresh, a second hold, no audio in the offer)."""
    if holds is None or not other_tag:
        return None
    if holds and not playing_to:
        return "play", other_tag
    if not holds and playing_to:
        return "stop", playing_to
    return None
