"""Music on hold (issue 23): which in-dialog offers put the other party on hold, and what the node does about it."""

from kemi.policy.media import hold_music, hold_offer

SDP = "v=0\r\no=a 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\n{session}m=audio 4000 RTP/AVP 0\r\n{stream}"


def sdp(c="192.0.2.1", session="", stream="a=rtpmap:0 PCMU/8000\r\n"):
    return SDP.format(c=c, session=session, stream=stream)


def test_sendonly_inactive_and_the_old_zero_address_put_the_other_party_on_hold():
    assert hold_offer(sdp(stream="a=sendonly\r\n")) is True
    assert hold_offer(sdp(stream="a=inactive\r\n")) is True
    assert hold_offer(sdp(session="a=sendonly\r\n")) is True  # at session level
    assert hold_offer(sdp(c="0.0.0.0")) is True  # RFC 2543
    assert hold_offer(sdp(session="a=sendonly\r\n", stream="a=sendrecv\r\n")) is False  # the stream's own wins


def test_sendrecv_or_no_direction_resumes_and_an_offer_without_audio_is_not_about_hold():
    assert hold_offer(sdp(stream="a=sendrecv\r\n")) is False
    assert hold_offer(sdp()) is False
    assert hold_offer("v=0\r\nm=video 5000 RTP/AVP 96\r\na=sendonly\r\n") is None
    assert hold_offer("") is None


def test_music_plays_once_to_the_held_party_and_stops_on_resume():
    assert hold_music(True, "", "bob-tag") == ("play", "bob-tag")
    assert hold_music(True, "bob-tag", "bob-tag") is None  # a second hold offer: already playing
    assert hold_music(False, "bob-tag", "bob-tag") == ("stop", "bob-tag")
    assert hold_music(False, "", "bob-tag") is None  # a session refresh
    assert hold_music(None, "", "bob-tag") is None
    assert hold_music(True, "", "") is None
