"""E.164 normalisation and destination classes, tested without Kamailio."""
import pytest
from hypothesis import given, strategies as st

from kemi.policy.numbering import DestClass, Plan, classify, clean, is_emergency, national_form, permits, to_e164

BERLIN = Plan("DE", "30")


@pytest.mark.parametrize("dialled", ["030 1234567", "+49 30 1234567", "0049 30 1234567", "0049-30-123 45 67", "(030) 1234567", "%2B49301234567", "1234567"])
def test_national_international_and_short_forms_become_one_e164_number(dialled):
    assert to_e164(clean(dialled), BERLIN) == "+49301234567"


def test_short_form_needs_an_area_code():
    assert to_e164("1234567", Plan("DE", "")) is None
    assert to_e164("1234567", Plan("DE", "89")) == "+49891234567"


def test_not_numbers_are_refused():
    assert clean("alice") is None
    assert clean("12a4") is None
    assert to_e164(clean("00"), BERLIN) is None


@pytest.mark.parametrize("dialled,cls", [
    ("030 1234567", DestClass.LOCAL),
    ("089 1234567", DestClass.NATIONAL),
    ("0151 12345678", DestClass.MOBILE),
    ("0800 1234567", DestClass.LOCAL),  # toll-free
    ("0180 1234567", DestClass.SPECIAL),  # shared cost
    ("0044 20 7946 0958", DestClass.EUROPE),  # abroad, zone 1
    ("0041 44 668 1800", DestClass.EUROPE),
    ("001 212 555 0123", DestClass.INTERNATIONAL),  # abroad, zone 2
    ("0086 10 1234 5678", DestClass.INTERNATIONAL),
])
def test_destination_classes(dialled, cls):
    assert classify(to_e164(clean(dialled), BERLIN), BERLIN).cls is cls


@pytest.mark.parametrize("dialled", ["0900 1234567", "010 12 030123456", "011 33", "012 3456789", "01013 89123456"])
def test_barred_ranges_are_barred(dialled):
    dest = classify(to_e164(clean(dialled), BERLIN), BERLIN)
    assert dest.barred and dest.barred.startswith("numbers starting 0")


def test_directory_services_are_marked_not_barred():
    for dialled in ("11880", "118 33", "0118 80"):
        dest = classify(to_e164(clean(dialled), BERLIN), BERLIN)
        assert dest.directory and not dest.barred and dest.e164.startswith("+49118")


def test_emergency_numbers_by_country():
    assert is_emergency("112", BERLIN) and is_emergency("110", BERLIN)
    assert not is_emergency("110", Plan("GB", "20"))
    assert is_emergency("112", Plan("GB", "20"))


def test_national_form():
    assert national_form("+49301234567", "DE") == "0301234567"
    assert national_form("+442079460958", "DE") == "00442079460958"


@given(st.sampled_from(list(DestClass)), st.sampled_from(list(DestClass)))
def test_permission_classes_nest(permission, dest):
    """A permission allows exactly its own class and every class before it, never a later one."""
    order = list(DestClass)
    assert permits(permission, dest) == (order.index(dest) <= order.index(permission))


@given(st.from_regex(r"0[1-9][0-9]{5,11}", fullmatch=True))
def test_every_national_number_normalises_to_plus_49(dialled):
    e164 = to_e164(dialled, BERLIN)
    assert e164 == "+49" + dialled[1:]
    assert national_form(e164, "DE") == dialled
