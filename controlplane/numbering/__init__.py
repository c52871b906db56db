"""Public numbers in the control plane: E.164 validation and display forms (library `phonenumbers`)."""

from __future__ import annotations

import phonenumbers

from controlplane.api.errors import InvalidParams


def e164(value: str, field: str, region: str | None = None) -> str:
    """'+49 30 1234567' (or a national form with `region`) -> '+49301234567'; InvalidParams if it is not a number."""
    try:
        num = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidParams(f"{field}: {value!r} is not a telephone number ({exc})", field=field, value=value) from None
    if not phonenumbers.is_possible_number(num):
        raise InvalidParams(f"{field}: {value!r} is not a possible telephone number", field=field, value=value)
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def national(e164_number: str) -> str:
    """The national form for display ('+49301234567' -> '030 1234567'); '' for what is not E.164."""
    if not e164_number.startswith("+"):
        return ""
    try:
        num = phonenumbers.parse(e164_number, None)
    except phonenumbers.NumberParseException:
        return ""
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)


def region_ok(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS
