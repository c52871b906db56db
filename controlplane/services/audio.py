"""Recordings uploaded by admins and users (a mailbox's greeting; later a tenant's own prompts): checked and converted
to what the media server plays — WAV, 8 kHz, 16-bit, mono — before anything is written. A file that is not usable
gets one clear reason (`AudioRefused`), and nothing changes."""

from __future__ import annotations

import audioop  # noqa: I001 - Python 3.11's own (resampling, levels); see docs/decisions.md
import io
import math
import wave

RATE = 8000
MIN_S, MAX_S = 0.5, 120.0
MAX_BYTES = 16 * 1024 * 1024  # an upload larger than this is refused before it is read
SILENT_DBFS = -50.0  # quieter than this on average: nothing audible was recorded
CLIPPED_SHARE = 0.05  # more than this share of samples at full scale: distorted


class AudioRefused(ValueError):
    """Why an upload cannot be used (the message is the API's error)."""


def dbfs(rms: int) -> float:
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -120.0


def telephony_wav(data: bytes, min_s: float = MIN_S, max_s: float = MAX_S) -> tuple[bytes, float]:
    """The upload as an 8 kHz 16-bit mono WAV file, with its length in seconds; AudioRefused when it is not a PCM WAV
    file, too short or too long, silent, or clipped."""
    if len(data) > MAX_BYTES:
        raise AudioRefused(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            frames = w.readframes(n)
    except Exception as exc:  # noqa: BLE001 - whatever the parser trips on, the upload is not a usable WAV file
        raise AudioRefused(f"not a PCM WAV file ({type(exc).__name__}: {exc})"[:200]) from None
    if width not in (1, 2, 3, 4) or channels not in (1, 2) or not 8000 <= rate <= 96000:
        raise AudioRefused(f"unsupported WAV format: {channels} channel(s), {8 * width}-bit, {rate} Hz")
    if width == 1:
        frames = audioop.bias(frames, 1, -128)  # WAV's 8-bit samples are unsigned
    pcm = audioop.lin2lin(frames, width, 2)
    if channels == 2:
        pcm = audioop.tomono(pcm, 2, 0.5, 0.5)
    if rate != RATE:
        pcm, _ = audioop.ratecv(pcm, 2, 1, rate, RATE, None)
    seconds = len(pcm) / 2 / RATE
    if seconds < min_s:
        raise AudioRefused(f"too short: {seconds:.1f} s (at least {min_s:g} s)")
    if seconds > max_s:
        raise AudioRefused(f"too long: {seconds:.1f} s (at most {max_s:g} s)")
    level = dbfs(audioop.rms(pcm, 2))
    if level < SILENT_DBFS:
        raise AudioRefused(f"silent: the average level is {level:.0f} dBFS")
    samples = len(pcm) // 2
    clipped = sum(
        1 for i in range(0, len(pcm), 2) if abs(int.from_bytes(pcm[i : i + 2], "little", signed=True)) >= 32700
    )
    if clipped > CLIPPED_SHARE * samples:
        raise AudioRefused(f"distorted: {100 * clipped / samples:.0f} % of the samples are at full scale")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return out.getvalue(), round(seconds, 2)


def seconds_of(path) -> float | None:
    """The length of a WAV file on disk (None: not readable)."""
    try:
        with wave.open(str(path), "rb") as w:
            return round(w.getnframes() / float(w.getframerate()), 2)
    except (OSError, EOFError, wave.Error, ZeroDivisionError):
        return None


def install(data_base64: str, path, store=None) -> float:
    """An uploaded recording (base64 WAV) checked, converted and written to `path` whole (a caller never hears half
    of it); its length in seconds. AudioRefused with the reason (nothing written) when it cannot be used. `store`
    (controlplane.services.voicemail.Store): written through it (in a cluster, for every node)."""
    import base64
    import binascii
    import os
    from pathlib import Path

    try:
        raw = base64.b64decode(data_base64, validate=True)
    except binascii.Error:
        raise AudioRefused("data_base64 is not base64") from None
    wav, seconds = telephony_wav(raw)
    path = Path(path)
    if store is not None:
        store.save(path, wav)
        return seconds
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(wav)
    os.replace(tmp, path)
    return seconds
