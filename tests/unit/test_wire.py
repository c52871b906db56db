"""The one-crossing read between Kamailio and Python: no value can shift into another, whatever it holds."""
from hypothesis import given, strategies as st

from kemi.shell import wire


def kamailio_prints(values: list[str | None]) -> str:
    """What Kamailio's `$_s(...)` of `wire.one_format` prints: each value (absent ones as `<null>`) with SEP between."""
    return wire.SEP.join(wire.NULL if v is None else v for v in values)


values = st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=25)


@given(values)
def test_a_read_is_exact_or_refused_never_shifted(vals):
    got = wire.split(kamailio_prints(vals), len(vals))
    if got is None:  # refused: only when a value holds the separator (then the shell reads field by field)
        assert any(v is not None and wire.SEP in v for v in vals)
        return
    assert got == ["" if v is None or v == wire.NULL else v for v in vals]


@given(values, st.integers(min_value=0, max_value=24), st.text(min_size=1))
def test_a_separator_inside_any_value_is_never_split_as_a_field(vals, at, text):
    vals = list(vals)
    i = at % len(vals)
    vals[i] = text + wire.SEP + text
    assert wire.split(kamailio_prints(vals), len(vals)) is None


def test_the_reviews_vector_a_space_in_the_call_id_shifts_nothing():
    fields = ["1", "203.0.113.9", "5060", "5060", "flood:1700000000", "INVITE", "100", "acme.example", "u1", "acme.example",
              "100", "acme.example", None, "abc victim", None, None, "Linphone/5.0 (belle-sip/4.5)", "sip:100@acme.example", "udp", "0"]
    got = wire.split(kamailio_prints(fields), len(fields))
    assert got[4] == "flood:1700000000"  # the ban is still read as the ban
    assert got[13] == "abc victim" and got[14] == "" and got[16] == "Linphone/5.0 (belle-sip/4.5)"


def test_a_failed_read_is_refused():
    assert wire.split(-1, 3) is None  # Kamailio's print buffer overflowed: an int, not the text
    assert wire.split(None, 3) is None
    assert wire.split("a" + wire.SEP + "b", 3) is None


@given(st.binary(max_size=300))
def test_bytes_that_are_not_utf8_decode_without_raising_and_keep_every_utf8_character(raw):
    got = wire.from_hex(raw.hex())
    assert isinstance(got, str)
    got.encode("utf-8")  # can be written anywhere (log, JSON, SQLite)
    try:
        assert got == raw.decode("utf-8")  # valid UTF-8: exactly the value
    except UnicodeDecodeError:
        assert "\\x" in got  # the bytes that are not UTF-8 show as escapes


def test_single_values_as_text():
    assert wire.text(5060) == "5060" and wire.text(None) == "" and wire.text("x") == "x"
    assert wire.text(b"a\xffb") == "a\\xffb"
    assert wire.from_hex("zz") == "" and wire.from_hex(-1) == ""
    assert wire.hex_name("$ua") == "$(ua{s.encode.hexa})"
    assert wire.hex_name("$sht(ban=>$si)") == "$(sht(ban=>$si){s.encode.hexa})"


@given(st.text(max_size=30))
def test_numbers_never_raise(text):
    n = wire.number(text)
    assert n == (int(text) if text.isascii() and text.isdigit() else 0)


def test_numbers_refuse_digits_int_does_not_take():
    assert wire.number("²") == 0 and wire.number("٣") == 0 and wire.number("12") == 12 and wire.number("-1") == 0


@given(st.text(max_size=30))
def test_lower_case_is_ascii_only_as_kamailios(text):
    got = wire.lower(text)
    assert len(got) == len(text)
    assert all(a == (b.lower() if b.isascii() else b) for a, b in zip(got, text))
