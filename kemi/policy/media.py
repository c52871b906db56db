"""Media policy: how RTPengine treats each call leg."""

from __future__ import annotations

# Every call's media goes through RTPengine; ICE is stripped (plain SIP phones, no WebRTC yet).
RTPENGINE_FLAGS = "replace-origin replace-session-connection ICE=remove RTP/AVP"


def rtpengine_flags(nated: bool) -> str:
    """For a party behind NAT, the SDP address is private: take the signalling source instead
    (RTPengine then learns the real media address from the first packets)."""
    return RTPENGINE_FLAGS + " SIP-source-address" if nated else RTPENGINE_FLAGS
