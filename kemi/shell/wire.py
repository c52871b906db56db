"""How several values cross from Kamailio to Python in one call, unambiguously. No KSR here: unit-tested.

A `$_s(...)` format prints its pseudo-variables one after the other with `SEP` between them. `SEP` is the ASCII
unit separator: not legal unescaped anywhere in SIP, but a hostile message can carry any byte, so the split is
only trusted when it yields exactly as many fields as were printed — a value holding `SEP` yields more, and the
caller reads the fields one by one instead. No field can shift into another whatever bytes a value holds.

Kamailio prints an absent value as `<null>`; a field that is exactly that reads as absent ('') — also when a
header's own value is the six characters `<null>` (documented in docs/security.md; it never widens a verdict:
absent credentials are challenged, an absent tag is a new request).
"""

from __future__ import annotations

SEP = "\x1f"
NULL = "<null>"
_NULL_FIELD, _EMPTY_FIELD = SEP + NULL + SEP, SEP + SEP  # twice replaced: neighbouring absent fields share a separator
_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def one_format(pvs: tuple[str, ...] | list[str]) -> str:
    """The `$_s` format that prints `pvs` in one crossing."""
    return "$_s(" + SEP.join(pvs) + ")"


def split(printed: object, expected: int) -> list[str] | None:
    """The fields of a one-crossing read; None when it cannot be trusted (the read failed: not a string, or a value
    held the separator) — then read field by field."""
    if printed.__class__ is not str or printed.count(SEP) != expected - 1:
        return None
    if NULL in printed:  # absent fields (whole fields only; a value that merely contains the text keeps it)
        framed = (SEP + printed + SEP).replace(_NULL_FIELD, _EMPTY_FIELD).replace(_NULL_FIELD, _EMPTY_FIELD)
        return framed[1:-1].split(SEP)
    return printed.split(SEP)


def text(value: object) -> str:
    """A single pseudo-variable's value as text: ints (counters, ports, codes) printed, absent ''."""
    if value is None:
        return ""
    if value.__class__ is str:
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def from_hex(hexa: object) -> str:
    """A value Kamailio printed through `{s.encode.hexa}` (read so because its bytes are not UTF-8): decoded so that
    nothing raises — bytes that are not UTF-8 become `\\xNN` escapes, every other character is kept."""
    if hexa.__class__ is not str:
        return ""
    try:
        return bytes.fromhex(hexa).decode("utf-8", "backslashreplace")
    except ValueError:
        return ""


def hex_name(pv: str) -> str:
    """`$ua` -> `$(ua{s.encode.hexa})`: the same pseudo-variable, printed as hex."""
    return "$(" + pv[1:] + "{s.encode.hexa})"


def number(value: str) -> int:
    """A non-negative decimal number, 0 for anything else ('²' and '٣' are digits to str.isdigit, not to int())."""
    return int(value) if value.isascii() and value.isdigit() else 0


def lower(value: str) -> str:
    """ASCII lower case, as Kamailio's {s.tolower}: keys built on both sides must match byte for byte."""
    return value.lower() if value.isascii() else value.translate(_UPPER)
