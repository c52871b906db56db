"""Emergency and short numbers in every country a site can be in (TRK-04, TRK-08): the tables, the routing, the location."""
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings, strategies as st

from kemi.policy.decision import Reject, RouteToTrunk
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.live import QUIET
from kemi.policy.location import Location, pidf_lo
from kemi.policy.numbering import EU_EEA_CH_UK, DestClass, Plan, country, emergency_numbers, is_emergency, short_number, site_regions
from kemi.policy.routing import decide_initial
from tests.unit.test_routing_public import CARRIER_A, CARRIER_B, public_snapshot

REGIONS = sorted(site_regions())
CIVIC = "{urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr}"


def site_snapshot(region="GB", area_code="20", site=None, alice=None, trunks=None, **kw):
    """Alice (user 1) at a site in `region`; the site's fields from `site`."""
    s = {"id": 5, "tenant_id": 1, "region": region, "street": "Baker Street", "house_number": "221b", "postal_code": "NW1 6XE",
         "city": "London", **(site or {})}
    alice = {"region": region, "area_code": area_code, "address": "", "site": 5, **(alice or {})}
    return public_snapshot(alice=alice, trunks=trunks, sites=[s], **kw)


def dial(dialled, snap, live=QUIET):
    facts = RequestFacts("INVITE", dialled, "acme.example", "alice", "acme.example", dialled, "acme.example", "192.0.2.10", 5060, "c1",
                         "alice", "acme.example", AuthResult.OK)
    return decide_initial(facts, snap, now=1_780_000_000.0, live=live)


def civic(action: RouteToTrunk) -> dict[str, str]:
    content_id, document, headers = action.geolocation
    assert f"Geolocation: <cid:{content_id}>" in headers and "Geolocation-Routing: yes" in headers
    root = ET.fromstring(document)
    return {el.tag.removeprefix(CIVIC): el.text for el in root.iter() if el.tag.startswith(CIVIC) and el.tag != CIVIC + "civicAddress"}


# ---------------------------------------------------------------- the tables


@pytest.mark.parametrize("region,numbers", [("GB", {"999", "112"}), ("FR", {"15", "17", "18", "112"}), ("IT", {"112", "113", "115", "118"}),
                                            ("DE", {"110", "112"}), ("AT", {"112", "122", "133", "144"}), ("CH", {"112", "117", "118", "144"}),
                                            ("US", {"911"}), ("CA", {"911"}), ("ES", {"112", "085"}), ("PL", {"112", "997", "998", "999"})])
def test_national_emergency_numbers(region, numbers):
    assert numbers <= set(emergency_numbers(region))


def test_112_in_every_eu_eea_country_switzerland_and_the_uk_and_911_in_north_america():
    for region in EU_EEA_CH_UK:
        assert region in REGIONS and is_emergency("112", Plan(region)), region
    nanp = [r for r in REGIONS if country(r).code == "1"]
    assert {"US", "CA"} <= set(nanp)
    for region in nanp:
        assert is_emergency("911", Plan(region)), region


def test_what_is_not_an_emergency_number():
    assert not is_emergency("999", Plan("DE", "30")) and not is_emergency("110", Plan("GB", "20"))
    assert not is_emergency("1120", Plan("DE", "30")) and not is_emergency("0112", Plan("DE", "30"))
    assert not is_emergency("+49112", Plan("DE", "30"))


def test_short_numbers_are_read_as_such_not_as_local_numbers():
    assert short_number("116117", Plan("DE", "30")) is DestClass.LOCAL  # toll-free: medical on-call service
    assert short_number("116123", Plan("GB", "20")) is DestClass.LOCAL
    assert short_number("115", Plan("DE", "30")) is DestClass.NATIONAL  # government number, standard rate
    assert short_number("11833", Plan("DE", "30")) is None  # directory services go by E.164, only where enabled
    assert short_number("3311", Plan("DE", "30")) is None  # carrier-specific: no trunk can carry it
    assert short_number("9876543", Plan("DE", "30")) is None


# ---------------------------------------------------------------- the issue's cases


@pytest.mark.parametrize("region,area,number", [("GB", "20", "999"), ("FR", "1", "15"), ("FR", "1", "17"), ("FR", "1", "18"),
                                                 ("IT", "6", "113"), ("US", "212", "911")])
def test_the_national_numbers_go_out_as_emergency_calls_not_as_local_numbers(region, area, number):
    d = dial(number, site_snapshot(region, area))
    a = d.action
    assert isinstance(a, RouteToTrunk) and a.emergency and a.target == number and a.fraud is None
    assert a.hops[0].uri.startswith(f"sip:{number}@")
    assert any(f"emergency number {number} in {region}" in t for t in d.trace)


def test_short_number_goes_out_as_dialled_with_its_class():
    d = dial("116117", site_snapshot("DE", "30", site={"city": "Berlin"}))
    a = d.action
    assert isinstance(a, RouteToTrunk) and not a.emergency and a.target == "116117" and a.fraud[1] == "local"
    locked = dial("116117", site_snapshot("DE", "30", alice={"locked": True}))
    assert isinstance(locked.action, Reject) and locked.action.code == 403
    internal = dial("116117", site_snapshot("DE", "30", alice={"outbound": "internal"}))
    assert isinstance(internal.action, Reject) and "local calls are not permitted" in internal.action.warning


# ---------------------------------------------------------------- nothing blocks an emergency call, in any country

class DndEverywhere:
    def status(self, user_id):
        return "dnd"

    def busy(self, user_id):
        return True

    def __getattr__(self, name):
        return getattr(QUIET, name)


BLOCKERS = {
    "user locked": {"alice": {"locked": True}},
    "outbound internal": {"alice": {"outbound": "internal"}},
    "forwarding": {"alice": {"forwarding": [{"id": 1, "kind": "unconditional", "target_number": "+4930999999"}]}},
    "user fraud lock": {"fraud": {"locks": [{"id": 1, "tenant_id": 1, "user_id": 1, "level": 4, "reason": "spend"}]}},
    "tenant fraud lock": {"fraud": {"locks": [{"id": 2, "tenant_id": 1, "user_id": None, "level": 4, "reason": "tenant spend"}]}},
    "company outbound internal": {"fraud": {"policies": {"1": {"outbound": "internal"}}}},
    "tariff lock": {"fraud": {"locks": [{"id": 3, "tenant_id": 1, "user_id": 1, "level": 2, "dest_class": "local", "reason": "tariff"}],
                              "tariff": {"rates": {"+": 9.0}}}},
    "trunks limited to other prefixes": {"trunks": [
        {"id": 1, "name": "carrier-a", "host": CARRIER_A, "port": 5060, "transport": "udp", "priority": 1, "prefixes": ["+999"]},
        {"id": 2, "name": "carrier-b", "host": CARRIER_B, "port": 5070, "transport": "tcp", "priority": 2, "prefixes": ["+998"]}]},
}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(REGIONS).flatmap(lambda r: st.tuples(st.just(r), st.sampled_from(emergency_numbers(r)))),
       st.sets(st.sampled_from(sorted(BLOCKERS)), max_size=4), st.booleans())
def test_every_emergency_number_of_every_country_gets_out_whatever_blocks_other_calls(region_number, blockers, dnd):
    region, number = region_number
    kw: dict = {"alice": {}, "fraud": {"locks": [], "policies": {}}}
    for b in sorted(blockers):
        for k, v in BLOCKERS[b].items():
            if k == "alice":
                kw["alice"].update(v)
            elif k == "fraud":
                for fk, fv in v.items():
                    kw["fraud"][fk] = kw["fraud"].get(fk, []) + fv if isinstance(fv, list) else {**kw["fraud"].get(fk, {}), **fv}
            else:
                kw[k] = v
    snap = site_snapshot(region, "", **kw)
    d = dial(number, snap, DndEverywhere() if dnd else QUIET)
    a = d.action
    assert isinstance(a, RouteToTrunk), (region, number, blockers, d.trace)
    assert a.emergency and a.target == number and a.fraud is None and not a.privacy
    assert [h.name for h in a.hops] == ["carrier-a", "carrier-b"]
    assert civic(a)["country"] == region and a.caller_number == "+49301234501"


# ---------------------------------------------------------------- the emergency route and the location


def test_the_sites_emergency_trunk_goes_first_then_the_others():
    a = dial("999", site_snapshot(site={"emergency_trunk": 2})).action
    assert [h.name for h in a.hops] == ["carrier-b", "carrier-a"]


def test_no_trunk_at_all_is_a_503_with_the_reason():
    d = dial("999", site_snapshot(trunks=[]))
    assert isinstance(d.action, Reject) and d.action.code == 503 and "emergency" in d.action.warning


def test_the_site_address_is_sent_as_a_civic_address_and_one_line():
    a = dial("999", site_snapshot()).action
    assert civic(a) == {"country": "GB", "RD": "Baker Street", "HNO": "221b", "PC": "NW1 6XE", "A3": "London"}
    assert a.location == "Baker Street 221b, NW1 6XE London, GB"


def test_a_nomadic_number_sends_its_own_address():
    a = dial("999", site_snapshot(alice={"address": "Hotel Adlon, Berlin"})).action
    assert civic(a) == {"country": "GB", "LOC": "Hotel Adlon, Berlin"}


def test_a_user_without_any_site_still_gets_out_with_the_country():
    snap = public_snapshot(alice={"region": "DE", "area_code": "30", "address": "", "site": None})
    a = dial("112", snap).action
    assert isinstance(a, RouteToTrunk) and a.emergency and civic(a) == {"country": "DE"}
    assert any("location unknown (country DE only)" in t for t in dial("112", snap).trace)


def test_the_pidf_escapes_whatever_an_address_holds():
    loc = Location("GB", street='<x y="1">&amp;', city="A\r\nP-Asserted-Identity: <sip:evil@x>", text="")
    doc = pidf_lo(loc, 'pres:1"@x', "2026-12-04T08:00:00Z")
    root = ET.fromstring(doc)  # well-formed
    texts = {el.tag.removeprefix(CIVIC): el.text for el in root.iter() if el.tag.startswith(CIVIC)}
    assert texts["RD"] == '<x y="1">&amp;' and "\n" not in texts["A3"] and "\r" not in doc.replace("\r\n", "")
    assert "\n" not in loc.describe() and "\r" not in loc.describe()


@pytest.mark.parametrize("region,expected", [("DE", "112"), ("GB", "112"), ("US", "911"), ("CA", "911"), ("FR", "112")])
def test_an_emergency_urn_from_a_phone_goes_to_the_countrys_emergency_number(region, expected):
    """RFC 5031: phones that know they dial an emergency call send urn:service:sos — even a locked user's."""
    snap = site_snapshot(region, "", alice={"locked": True})
    for urn in ("urn:service:sos", "urn:service:sos.fire"):
        d = dial(urn, snap)
        a = d.action
        assert isinstance(a, RouteToTrunk) and a.emergency and a.target == expected and a.hops[0].uri.startswith(f"sip:{expected}@"), d.trace
    unauthenticated = decide_initial(RequestFacts("INVITE", "urn:service:sos", "sos", "x", "acme.example", "", "acme.example", "192.0.2.99",
                                                  5060, "c2", "", "", AuthResult.NONE), snap)
    assert not isinstance(unauthenticated.action, RouteToTrunk)  # only a caller the node knows (it must know where they are)


def test_the_node_rings_an_emergency_centre_long_and_never_ends_the_call_by_its_timers():
    from kemi.policy.routing import EMERGENCY_LIFETIME_S, EMERGENCY_RING_S, session_lifetime

    a = dial("999", site_snapshot()).action
    assert a.ring_s == EMERGENCY_RING_S >= 300  # not the usual INVITE timer
    assert dial("0207946 0958", site_snapshot(alice={"outbound": "international"})).action.ring_s == 0  # ordinary calls: the node's
    assert session_lifetime("90", 43200, emergency=True) == EMERGENCY_LIFETIME_S  # a short Session-Expires does not end it
    assert session_lifetime("", 43200, emergency=True) == EMERGENCY_LIFETIME_S > 43200
    assert session_lifetime("90", 43200) == 122
