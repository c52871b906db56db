"""Bencode, the encoding of RTPengine's ng control protocol."""

from __future__ import annotations


class BencodeError(ValueError):
    pass


def encode(value) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(encode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(encode(k) + encode(v) for k, v in items) + b"e"
    raise BencodeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes):
    value, end = _decode(data, 0)
    if end != len(data):
        raise BencodeError(f"trailing data at offset {end}")
    return value


def _decode(data: bytes, i: int):
    try:
        c = data[i : i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1 : end]), end + 1
        if c == b"l":
            i, out = i + 1, []
            while data[i : i + 1] != b"e":
                v, i = _decode(data, i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            i, mapping = i + 1, {}
            while data[i : i + 1] != b"e":
                k, i = _decode(data, i)
                v, i = _decode(data, i)
                mapping[k] = v
            return mapping, i + 1
        if c.isdigit():
            colon = data.index(b":", i)
            n = int(data[i:colon])
            start = colon + 1
            if start + n > len(data):
                raise BencodeError("string runs past the end")
            raw = data[start : start + n]
            try:
                return raw.decode(), start + n
            except UnicodeDecodeError:
                return raw, start + n
    except (ValueError, IndexError) as exc:
        raise BencodeError(f"malformed bencode at offset {i}: {exc}") from exc
    raise BencodeError(f"unexpected byte {c!r} at offset {i}")
