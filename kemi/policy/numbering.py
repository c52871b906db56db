"""Numbers: E.164 normalisation, destination classes, barred ranges and emergency numbers.

The country data (country code, national and international prefixes, the patterns of mobile,
premium-rate, toll-free, ... numbers) comes from the `phonenumbers` metadata; it is compiled
once per country into plain regular expressions, so classifying a number costs microseconds
instead of a full `phonenumbers.parse` (~30 us) on every call.

Emergency and other short numbers (police, fire, ambulance, 112, 911, the harmonised European
116xxx services, ...) come from the same library's short-number metadata (libphonenumber's
ShortNumberMetadata.xml, maintained by Google from the national regulators' plans; source and
version in docs/decisions.md), with two guarantees on top: 112 in every EU/EEA country,
Switzerland and the UK, 911 in every country of the North American plan.

What `phonenumbers` does not know is the rest of regulation: the ranges that are never routed
(DE: 010x call-by-call, 011x, 012x, 0900) and the directory services that are routed only
where the tenant has them enabled (DE: 118xx). Those are in `REGULATION`.
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
    emergency: tuple[str, ...] = ()  # emergency numbers beyond the short-number metadata's
    barred: tuple[str, ...] = ()  # national significant number prefixes that are never routed
    directory: str = ""  # regex of directory-service short numbers (national significant number)


REGULATION = {
    "DE": Regulation(barred=("10", "11", "12", "900"), directory=r"118\d{2,3}"),
}

# 112 is the emergency number of every EU/EEA country (Directive (EU) 2018/1972 art. 109), Switzerland and the UK;
# 911 of every country of the North American Numbering Plan (country code 1).
EU_EEA_CH_UK = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
        "CH",
        "GB",
    }
)

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
    emergency: re.Pattern | None  # the country's emergency numbers (fullmatch of the dialled digits)
    emergency_lengths: tuple[int, ...]
    short: tuple[tuple[DestClass | None, re.Pattern], ...] = ()  # short numbers by cost; None: not routable to a trunk


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
    emergency, lengths, short = _short_numbers(region.upper(), meta.country_code or 0, reg)
    return Country(
        region=region.upper(),
        code=str(meta.country_code),
        national_prefix=meta.national_prefix or "",
        intl_prefix=meta.preferred_international_prefix
        or (meta.international_prefix or "00" if (meta.international_prefix or "").isdigit() else "00"),
        valid=pattern(meta.general_desc) or re.compile(r"\d{4,14}"),
        types=tuple(types),
        regulation=reg,
        directory=re.compile(reg.directory) if reg.directory else None,
        emergency=emergency,
        emergency_lengths=lengths,
        short=short,
    )


def _short_numbers(region: str, country_code: int, reg: Regulation):
    """The emergency pattern and the routable short numbers (by expected cost) of a region, from libphonenumber's
    short-number metadata. Carrier-specific and SMS-only short codes are not routable through a trunk."""
    from phonenumbers.phonemetadata import PhoneMetadata

    meta = PhoneMetadata.short_metadata_for_region(region)

    def pattern(name: str) -> str:
        desc = getattr(meta, name, None) if meta is not None else None
        return getattr(desc, "national_number_pattern", None) or ""

    extra = list(reg.emergency)
    if region in EU_EEA_CH_UK:
        extra.append("112")
    if country_code == 1:
        extra.append("911")
    alternatives = [p for p in (pattern("emergency"), *map(re.escape, extra)) if p]
    emergency = re.compile("|".join(f"(?:{p})" for p in alternatives)) if alternatives else None
    desc = getattr(meta, "emergency", None) if meta is not None else None
    lengths = set(
        getattr(desc, "possible_length", None) or (range(2, SHORT_MAX_DIGITS + 1) if pattern("emergency") else ())
    )
    lengths.update(len(x) for x in extra)
    short: list[tuple[DestClass | None, re.Pattern]] = []
    if pattern("short_code"):
        for cls, name in (
            (None, "carrier_specific"),
            (None, "sms_services"),
            (DestClass.SPECIAL, "premium_rate"),
            (DestClass.LOCAL, "toll_free"),
            (DestClass.NATIONAL, "standard_rate"),
            (DestClass.NATIONAL, "short_code"),
        ):
            if pattern(name):
                short.append((cls, re.compile(pattern(name))))
    return emergency, tuple(sorted(n for n in lengths if n <= SHORT_MAX_DIGITS)), tuple(short)


SHORT_MAX_DIGITS = 6  # longer digit strings are never read as short numbers


def is_emergency(digits: str, plan: Plan) -> bool:
    """Is `digits` (as dialled, through `clean`) an emergency number in the plan's country?"""
    pattern = country(plan.region).emergency
    return pattern is not None and len(digits) <= SHORT_MAX_DIGITS and pattern.fullmatch(digits) is not None


def short_number(digits: str, plan: Plan) -> DestClass | None:
    """A short number of the plan's country other than an emergency number (the harmonised European 116xxx services,
    government and utility numbers, ...) and the class it is permitted as: toll-free ones as local calls, premium-rate
    ones as special, the rest as national. None: not a routable short number (directory services go by E.164)."""
    if not digits.isdigit() or len(digits) > SHORT_MAX_DIGITS:
        return None
    c = country(plan.region)
    if not c.short or (c.directory is not None and c.directory.fullmatch(digits)):
        return None
    for cls, pattern in c.short:
        if pattern.fullmatch(digits):
            return cls
    return None


@functools.cache
def emergency_numbers(region: str) -> tuple[str, ...]:
    """Every emergency number of a region, listed (for docs, the API and the checks on extensions)."""
    c = country(region)
    if c.emergency is None:
        return ()
    return tuple(d for n in c.emergency_lengths for d in _digits(n) if c.emergency.fullmatch(d))


def _digits(n: int):
    return (str(i).zfill(n) for i in range(10**n))


def primary_emergency(region: str) -> str:
    """The number an emergency call without digits (a phone's `urn:service:sos`, RFC 5031) is sent to: 911 in North
    America, 112 wherever it is an emergency number, else the country's first."""
    numbers = emergency_numbers(region)
    for preferred in ("911", "112") if country(region).code == "1" else ("112",):
        if preferred in numbers:
            return preferred
    return numbers[0] if numbers else "112"


def is_sos_urn(uri: str) -> bool:
    """RFC 5031 emergency service URNs: urn:service:sos and its sub-services (urn:service:sos.police, ...)."""
    u = uri.strip().lower()
    return u == "urn:service:sos" or u.startswith("urn:service:sos.")


@functools.cache
def site_regions() -> frozenset[str]:
    """The countries a site can be in: those whose emergency numbers are known."""
    import phonenumbers

    return frozenset(
        r
        for r in phonenumbers.SUPPORTED_REGIONS
        if r in phonenumbers.SUPPORTED_SHORT_REGIONS and country(r).emergency is not None
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
        out = "+" + digits[len(c.intl_prefix) :]
    elif c.national_prefix and digits.startswith(c.national_prefix):
        out = "+" + c.code + digits[len(c.national_prefix) :]
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
        return c.national_prefix + e164[1 + len(c.code) :]
    return c.intl_prefix + e164[1:]


@dataclass(frozen=True, slots=True)
class Destination:
    e164: str
    cls: DestClass
    barred: str = ""  # why this number is never routed ('' when it may be)
    directory: bool = False
    valid: bool = True


# International zone 1 (DestClass.EUROPE), by ISO region of the country calling code.
EUROPE_ZONE = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
        "CH",
        "GB",
        "AD",
        "MC",
        "SM",
        "VA",
    }
)


@functools.lru_cache(maxsize=8192)
def classify(e164: str, plan: Plan) -> Destination:
    """The destination class of an E.164 number seen from `plan` (the caller's country and area)."""
    home = country(plan.region)
    if not e164.startswith("+" + home.code):
        code = country_code_of(e164)
        zone1 = code is not None and region_of_code(code) in EUROPE_ZONE
        return Destination(e164, DestClass.EUROPE if zone1 else DestClass.INTERNATIONAL)
    nsn = e164[1 + len(home.code) :]
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
