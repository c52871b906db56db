"""Uploaded recordings (a mailbox's greeting): checked and converted to what the media server plays, or refused with
one clear reason (controlplane/services/audio.py)."""

import io
import math
import struct
import wave

import pytest

from controlplane.services.audio import AudioRefused, telephony_wav


def wav(seconds=2.0, rate=44100, channels=2, width=2, amplitude=8000, hz=440.0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(rate * seconds)):
            v = int(amplitude * math.sin(2 * math.pi * hz * i / rate))
            v = max(-32768, min(32767, v))
            sample = struct.pack("<h", v) if width == 2 else bytes([128 + v // 256])
            frames += sample * channels
        w.writeframes(bytes(frames))
    return out.getvalue()


def test_a_cd_quality_stereo_file_becomes_telephony_mono():
    data, seconds = telephony_wav(wav())
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert abs(w.getnframes() / 8000 - 2.0) < 0.01
    assert seconds == pytest.approx(2.0, abs=0.01)


def test_eight_bit_and_telephony_rate_files_are_taken_too():
    assert telephony_wav(wav(rate=8000, channels=1, width=1))[1] == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize("data, why", [
    (b"RIFF....WAVEnot really", "not a PCM WAV file"),
    (b"", "not a PCM WAV file"),
    (wav(seconds=0.2), "too short"),
    (wav(seconds=121, rate=8000, channels=1), "too long"),
    (wav(amplitude=0), "silent"),
    (wav(amplitude=100000, rate=8000, channels=1), "distorted"),  # a sine driven far past full scale
])
def test_what_cannot_be_played_is_refused_with_its_reason(data, why):
    with pytest.raises(AudioRefused, match=why):
        telephony_wav(data)
