"""Media policy: how RTPengine treats each call leg."""

from __future__ import annotations

# Every call's media goes through RTPengine; ICE is stripped (plain SIP phones, no WebRTC yet).
RTPENGINE_FLAGS = "replace-origin replace-session-connection ICE=remove RTP/AVP"


def rtpengine_flags(nated: bool) -> str:
    """For a party behind NAT, the SDP address is private: take the signalling source instead
    (RTPengine then learns the real media address from the first packets)."""
    return RTPENGINE_FLAGS + " SIP-source-address" if nated else RTPENGINE_FLAGS


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
