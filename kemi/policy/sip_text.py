"""Values written into SIP messages: whatever an admin typed, it can never add a header or break a quoted string.

The API refuses control characters in every string that can reach a SIP message; these functions make the same
guarantee again where the value is written (defence in depth, and for values that come from elsewhere).
"""

from __future__ import annotations

import re

# Characters no SIP header or XML 1.0 document may carry: control characters and Unicode line separators.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def plain(text: str, limit: int = 300) -> str:
    """A value safe in a header or an XML text node: each run of control characters becomes one space."""
    return CONTROL.sub(" ", text).strip()[:limit]


def quoted(text: str, limit: int = 200) -> str:
    """An RFC 3261 quoted-string (display names, Warning texts): plain, with backslash and double quote escaped."""
    return '"' + plain(text, limit).replace("\\", "\\\\").replace('"', '\\"') + '"'


_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}@]+")  # RFC 3261 word (Call-ID, tags)


def is_word(value: str) -> bool:
    """Is `value` an RFC 3261 `word` (what a Call-ID or tag consists of)? Such a value can be passed in a module's
    space-separated flag string without adding a flag."""
    return bool(value) and _TOKEN.fullmatch(value) is not None
