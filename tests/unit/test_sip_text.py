"""Values written into SIP messages can never add a header, break a quoted string or add a module flag."""
from hypothesis import given, strategies as st

from kemi.policy.sip_text import is_word, plain, quoted


@given(st.text(max_size=300))
def test_plain_never_holds_a_line_break_or_control_character(text):
    out = plain(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in out)


@given(st.text(max_size=200))
def test_quoted_is_one_rfc3261_quoted_string(text):
    out = quoted(text)
    assert out.startswith('"') and out.endswith('"') and "\r" not in out and "\n" not in out
    inner = out[1:-1]
    i = 0
    while i < len(inner):  # every quote and backslash inside is escaped
        if inner[i] == "\\":
            assert i + 1 < len(inner) and inner[i + 1] in '"\\'
            i += 2
            continue
        assert inner[i] != '"'
        i += 1


def test_the_reviews_cases():
    assert quoted('Sales "VIP"\r\nP-Asserted-Identity: <sip:110@x>') == '"Sales \\"VIP\\" P-Asserted-Identity: <sip:110@x>"'
    assert quoted("a\\") == '"a\\\\"'


def test_a_call_id_with_a_space_is_not_a_word():
    assert is_word("a84b4c76e66710@pc33.atlanta.example") and is_word("1-2.3!%*_+`'~")
    assert not is_word("abc victim") and not is_word("abc\tx") and not is_word("") and not is_word("x via-branch=1 delete")
