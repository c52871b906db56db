"""Numbers: E.164 normalisation, destination classes, barred ranges and emergency numbers.

The country data (country code, national and international prefixes, the patterns of mobile,
premium-rate, toll-free, ... numbers) comes from the `phonenumbers` metadata; it is compiled
once per country into plain regular expressions, so classifying a number costs microseconds
instead of a full `phonenumbers.parse` (~30 us) on every call.

What `phonenumbers` does not know is regulation: the emergency numbers, the ranges that are
never routed (DE: 010x call-by-call, 011x, 012x, 0900) and the directory services that are
routed only where the tenant has them enabled (DE: 118xx). Those are in `REGULATION`.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import Enum


class DestClass(str, Enum):
    """Where a call goes, in the order of the outbound permission classes (each includes the ones before)."""

    INTERNAL = "internal"
    LOCAL = "local"  # same area code, and toll-free numbers
    NATIONAL = "national"
    MOBILE = "mobile"
    EUROPE = "europe"  # abroad, zone 1: the EU/EEA, Switzerland, the UK and Europe's microstates
    INTERNATIONAL = "international"  # abroad, zone 2: the rest of the world
    SPECIAL = "special"  # premium rate, shared cost, personal numbers, directory services


PERMISSION_ORDER = tuple(DestClass)


def permits(permission: DestClass, dest: DestClass) -> bool:
    """May a user with outbound `permission` call a destination of class `dest`?"""
    return PERMISSION_ORDER.index(dest) <= PERMISSION_ORDER.index(permission)


@dataclass(frozen=True, slots=True)
class Regulation:
    emergency: tuple[str, ...] = ("112",)
    barred: tuple[str, ...] = ()  # national significant number prefixes that are never routed
    directory: str = ""  # regex of directory-service short numbers (national significant number)


REGULATION = {
    "DE": Regulation(emergency=("110", "112"), barred=("10", "11", "12", "900"), directory=r"118\d{2,3}"),
    "AT": Regulation(emergency=("112", "122", "133", "144")),
    "CH": Regulation(emergency=("112", "117", "118", "144")),
}

# Dial this before a number to suppress your number for that one call (see docs/routing.md).
CLIR_PREFIX = "*31"

_VISUAL = re.compile(r"[\s\-/().]")


@dataclass(frozen=True)
class Country:
    region: str
    code: str
    national_prefix: str
    intl_prefix: str
    valid: re.Pattern
    types: tuple[tuple[DestClass, re.Pattern], ...]  # first match wins
    regulation: Regulation
    directory: re.Pattern | None


@functools.cache
def country(region: str) -> Country:
    """The compiled numbering data of a region (ISO 3166 alpha-2); KeyError for an unknown one."""
    import phonenumbers  # only loaded when a number outside the PBX is dialled

    meta = phonenumbers.PhoneMetadata.metadata_for_region(region.upper())
    if meta is None:
        raise KeyError(f"unknown region {region!r}")

    def pattern(desc) -> re.Pattern | None:
        p = getattr(desc, "national_number_pattern", None)
        return re.compile(p) if p else None

    types = []
    for cls, desc in (
        (DestClass.SPECIAL, meta.premium_rate),
        (DestClass.SPECIAL, meta.shared_cost),
        (DestClass.SPECIAL, meta.personal_number),
        (DestClass.SPECIAL, meta.uan),
        (DestClass.LOCAL, meta.toll_free),
        (DestClass.MOBILE, meta.mobile),
        (DestClass.MOBILE, meta.pager),
    ):
        p = pattern(desc)
        if p is not None:
            types.append((cls, p))
    reg = REGULATION.get(region.upper(), Regulation())
    return Country(
        region=region.upper(),
        code=str(meta.country_code),
        national_prefix=meta.national_prefix or "",
        intl_prefix=meta.preferred_international_prefix or (meta.international_prefix if (meta.international_prefix or "").isdigit() else "00"),
        valid=pattern(meta.general_desc) or re.compile(r"\d{4,14}"),
        types=tuple(types),
        regulation=reg,
        directory=re.compile(reg.directory) if reg.directory else None,
    )


@functools.cache
def region_of_code(code: str) -> str | None:
    import phonenumbers

    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(code))
    return regions[0] if regions and regions[0] != "001" else None


def country_code_of(e164: str) -> str | None:
    """The country calling code of an E.164 number ('+4930...' -> '49')."""
    import phonenumbers

    digits = e164[1:]
    for n in (1, 2, 3):
        if int(digits[:n] or 0) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return digits[:n]
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    """How short forms are read: the caller's (or trunk's) country and area code."""

    region: str = "DE"
    area_code: str = ""  # without the national prefix, e.g. '30' for Berlin


def clean(dialled: str) -> str | None:
    """Dialled digits without visual separators; None when it is not a telephone number at all."""
    s = _VISUAL.sub("", dialled.replace("%20", ""))
    if s.startswith("%2B"):
        s = "+" + s[3:]
    body = s[1:] if s.startswith("+") else s
    return s if body.isdigit() and len(body) <= 20 else None


def is_emergency(digits: str, plan: Plan) -> bool:
    return digits in country(plan.region).regulation.emergency


def to_e164(digits: str, plan: Plan, short_is_local: bool = True) -> str | None:
    """'030 1234567', '+49 30 1234567', '0049 30 1234567', '1234567' (area 30) -> '+49301234567'.

    `digits` has been through `clean`. Short forms (no prefix) become local numbers of the plan's
    area code, except directory services, which are national short numbers. None when the
    number cannot be read (too short or too long for E.164).
    """
    c = country(plan.region)
    if digits.startswith("+"):
        out = digits
    elif c.intl_prefix and digits.startswith(c.intl_prefix):
        out = "+" + digits[len(c.intl_prefix):]
    elif c.national_prefix and digits.startswith(c.national_prefix):
        out = "+" + c.code + digits[len(c.national_prefix):]
    elif c.directory is not None and c.directory.fullmatch(digits):
        out = "+" + c.code + digits
    elif short_is_local and plan.area_code:
        out = "+" + c.code + plan.area_code + digits
    else:
        return None
    return out if 4 <= len(out) - 1 <= 15 and out[1] != "0" else None


def national_form(e164: str, region: str) -> str:
    """The number as dialled inside its country ('+49301234567' -> '0301234567'); else international."""
    c = country(region)
    if e164.startswith("+" + c.code):
        return c.national_prefix + e164[1 + len(c.code):]
    return c.intl_prefix + e164[1:]


@dataclass(frozen=True, slots=True)
class Destination:
    e164: str
    cls: DestClass
    barred: str = ""  # why this number is never routed ('' when it may be)
    directory: bool = False
    valid: bool = True


# International zone 1 (DestClass.EUROPE), by ISO region of the country calling code.
EUROPE_ZONE = frozenset({"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT",
                         "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO", "CH", "GB", "AD", "MC", "SM", "VA"})


@functools.lru_cache(maxsize=8192)
def classify(e164: str, plan: Plan) -> Destination:
    """The destination class of an E.164 number seen from `plan` (the caller's country and area)."""
    home = country(plan.region)
    if not e164.startswith("+" + home.code):
        code = country_code_of(e164)
        zone1 = code is not None and region_of_code(code) in EUROPE_ZONE
        return Destination(e164, DestClass.EUROPE if zone1 else DestClass.INTERNATIONAL)
    nsn = e164[1 + len(home.code):]
    if home.directory is not None and home.directory.fullmatch(nsn):
        return Destination(e164, DestClass.SPECIAL, directory=True)
    for prefix in home.regulation.barred:
        if nsn.startswith(prefix):
            shown = home.national_prefix + prefix
            return Destination(e164, DestClass.SPECIAL, barred=f"numbers starting {shown} are not routed")
    for cls, pattern in home.types:
        if pattern.fullmatch(nsn):
            return Destination(e164, cls)
    if plan.area_code and nsn.startswith(plan.area_code):
        return Destination(e164, DestClass.LOCAL, valid=bool(home.valid.fullmatch(nsn)))
    return Destination(e164, DestClass.NATIONAL, valid=bool(home.valid.fullmatch(nsn)))
