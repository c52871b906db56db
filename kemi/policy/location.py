"""Where a caller is, in the form emergency services receive it: a civic address in a PIDF-LO document.

RFC 6442 (location conveyance in SIP) carries the location by value: the INVITE's body becomes multipart/mixed
with the SDP and an `application/pidf+xml` part (RFC 4119 PIDF-LO, civic address per RFC 5139), and a
`Geolocation: <cid:...>` header names that part; `Geolocation-Routing: yes` lets the network route on it.
Everything here is pure: the shell only writes what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from .sip_text import plain

PIDF_TYPE = "application/pidf+xml"


@dataclass(frozen=True, slots=True)
class Location:
    """A civic address: a site's, or the free-form address of a number used elsewhere (nomadic use, `text`)."""

    country: str  # ISO 3166 alpha-2
    street: str = ""
    house_number: str = ""
    postal_code: str = ""
    city: str = ""
    text: str = ""  # free form: sent as the civic address's LOC element (additional location information)

    def describe(self) -> str:
        """One line, for the location header and the trace ('Unter den Linden 5, 10117 Berlin, DE')."""
        if self.text:
            return plain(
                f"{self.text}, {self.country}" if self.country and not self.text.endswith(self.country) else self.text
            )
        street = " ".join(x for x in (self.street, self.house_number) if x)
        place = " ".join(x for x in (self.postal_code, self.city) if x)
        return plain(", ".join(x for x in (street, place, self.country) if x))

    @property
    def known(self) -> bool:
        return bool(self.text or self.street or self.city or self.postal_code)


# RFC 5139 civic address elements, in document order.
_CIVIC = (("RD", "street"), ("HNO", "house_number"), ("PC", "postal_code"), ("A3", "city"), ("LOC", "text"))


def pidf_lo(location: Location, entity: str, timestamp: str, tuple_id: str = "loc") -> str:
    """The PIDF-LO document of a civic location (RFC 4119/5139/5491). `entity`: the caller as a pres: URI;
    `timestamp`: RFC 3339 time the location was determined. Every value is escaped."""
    elements = [f"<ca:country>{escape(plain(location.country, 2))}</ca:country>"]
    for tag, attr in _CIVIC:
        value = plain(getattr(location, attr))
        if value:
            elements.append(f"<ca:{tag}>{escape(value)}</ca:{tag}>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"'
        ' xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"'
        f" entity={quoteattr(plain(entity))}>\r\n"
        f" <tuple id={quoteattr(plain(tuple_id))}>\r\n"
        "  <status><gp:geopriv>\r\n"
        "   <gp:location-info><ca:civicAddress "
        f"xml:lang=\"en\">{''.join(elements)}</ca:civicAddress></gp:location-info>\r\n"
        "   <gp:usage-rules/>\r\n"
        "   <gp:method>Manual</gp:method>\r\n"
        "  </gp:geopriv></status>\r\n"
        f"  <timestamp>{escape(plain(timestamp))}</timestamp>\r\n"
        " </tuple>\r\n"
        "</presence>\r\n"
    )


def geolocation_headers(content_id: str) -> tuple[str, ...]:
    """The RFC 6442 headers that point at the PIDF-LO body part with this Content-ID (without angle brackets)."""
    return (f"Geolocation: <cid:{content_id}>", "Geolocation-Routing: yes")


BOUNDARY = "callmanager-location-boundary"


def with_location(body: str, content_type: str, content_id: str, pidf: str) -> tuple[str, str]:
    """The INVITE's body with the PIDF-LO added as a second part (RFC 6442 5.1): (multipart/mixed body, its Content-
    Type).
    `body`/`content_type`: the offer as it leaves (after RTPengine); an INVITE without a body gets the PIDF-LO alone."""
    parts = []
    if body:
        parts.append(f"Content-Type: {plain(content_type) or 'application/sdp'}\r\n\r\n{body}")
    parts.append(
        f"Content-Type: {PIDF_TYPE}\r\nContent-ID: <{plain(content_id)}>\r\nContent-Disposition: "
        f"render;handling=optional\r\n\r\n{pidf}"
    )
    text = (
        "".join(f"--{BOUNDARY}\r\n{p}" + ("" if p.endswith("\r\n") else "\r\n") for p in parts) + f"--{BOUNDARY}--\r\n"
    )
    return text, f"multipart/mixed;boundary={BOUNDARY}"
