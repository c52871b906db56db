"""The web phone in a real browser (issue 24, docs/webrtc.md): Debian's Chromium, driven through the page as a user
drives it, against a real node (Kamailio over WS, RTPengine bridging DTLS-SRTP and RTP, the control plane serving
the page and the API). Each call is checked where a user would notice: the page's words, WebRTC's own statistics
(DTLS connected, packets both ways), RTPengine relaying both legs — and no media session left afterwards."""

import concurrent.futures
import re

import httpx
import pytest

from tests.harness.node import TestNode
from tests.harness.pj_phone import PjPhone
from tests.harness.relay import gone, legs
from tests.harness.sipp import Sipp
from tests.scenario.conftest import running, wait_for, wait_snapshot

DOMAIN = "browser.example"


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_components):
    n = TestNode(tmp_path_factory.mktemp("browser") / "var")
    with running([n]):
        yield n


@pytest.fixture(scope="module")
def office(node, tmp_path_factory):
    """Ann and Ben use the web phone (their own API tokens); Carl a SIP phone (SIPp); Dora a pjsua2 phone (it reports
    the keys it hears)."""
    tenant = node.rpc("tenant.create", name="Browser AG", sip_domain=DOMAIN)
    node.rpc("site.create", tenant_id=tenant["id"], name="Berlin", region="DE", area_code="30")
    people = {}
    for name, ext in (("ann", "201"), ("ben", "202"), ("carl", "203"), ("dora", "204")):
        user = node.rpc("user.create", tenant_id=tenant["id"], name=name.title())
        node.rpc("extension.create", number=ext, user_id=user["id"])
        token = node.rpc("token.create", name=f"{name}-phone", role="user", tenant_id=tenant["id"], user_id=user["id"])
        people[name] = {"user": user, "ext": ext, "token": token["token"]}
        if name in ("carl", "dora"):
            node.rpc("sip_account.create", user_id=user["id"], username=name, password=f"{name}-secret-pw1")
    wait_snapshot(node)
    sipp = Sipp(node.sip, tmp_path_factory.mktemp("sipp"))
    carl = sipp.phone("carl", DOMAIN, "carl-secret-pw1")
    assert sipp.register(carl).ok
    return {**people, "tenant": tenant, "sipp": sipp, "carl_phone": carl}


def relayed_both_legs(node, call_id: str) -> list[int]:
    packets = legs(node, call_id)
    assert len(packets) == 2 and all(p > 20 for p in packets), packets  # RTPengine relayed both legs
    return packets


def no_session_left(node, call_id: str) -> None:
    assert gone(node, call_id), f"RTPengine still has {call_id}"


def logged_in(pages, node, office, who: str, viewport=(1280, 900)):
    phone = pages(node.settings.api_base, who, viewport)
    phone.login(office[who]["token"])
    return phone


def call_id(phone) -> str:
    return phone.page.evaluate("window.callmanagerPhone.callId")


def test_the_page_is_served_with_its_assets_cached_and_the_api_unchanged(node):
    base = node.settings.api_base
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{base}/", follow_redirects=False).headers["location"] == "/phone/"
        page = http.get(f"{base}/phone/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert page.headers["cache-control"] == "no-cache" and "script-src 'self'" in page.headers["content-security-policy"]
        script = re.search(r'src="(assets/phone-[A-Z0-9]+\.js)"', page.text).group(1)
        js = http.get(f"{base}/phone/{script}")
        assert js.status_code == 200 and "immutable" in js.headers["cache-control"]
        again = http.get(f"{base}/phone/{script}", headers={"If-None-Match": js.headers["etag"]})
        assert again.status_code == 304  # revalidated without sending the bundle again
        assert http.get(f"{base}/phone/missing.js").status_code == 404


def test_a_browser_calls_a_sip_phone_holds_and_resumes(node, office, pages):
    """Logged in and dialled with the keyboard only; the SIP phone hears the hold (sendonly) and the resume."""
    ann = logged_in(pages, node, office, "ann")
    callee = office["sipp"].callee(office["carl_phone"], mode="hold", echo=True)
    ann.call("203")
    ann.wait_state(r"^In call with")
    cid = call_id(ann)
    ann.media_flows()
    relayed_both_legs(node, cid)
    assert re.fullmatch(r"0:0\d", ann.text("call-timer"))  # the duration, apart from the announced state
    ann.click("Hold")
    ann.wait_state(r"^On hold with")
    assert ann.page.get_by_role("button", name="Resume").get_attribute("aria-pressed") == "true"
    ann.click("Resume")
    ann.wait_state(r"^In call with")
    before = ann.stats()["received"]
    ann.page.wait_for_timeout(1500)
    assert ann.stats()["received"] > before + 20  # media flows again after the resume
    ann.click("Hang up")
    ann.wait_state(r"^Call ended \(you hung up\)")
    assert Sipp.wait(callee, 20).ok  # the SIP phone saw hold (a=sendonly), resume (a=sendrecv), then the BYE
    no_session_left(node, cid)


def test_a_sip_phone_calls_the_browser_which_answers(node, office, pages):
    ann = logged_in(pages, node, office, "ann")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        caller = pool.submit(office["sipp"].caller, office["carl_phone"], "201", hold_ms=4000)
        ann.wait_state(r"^Incoming call from")
        ann.click("Answer")
        ann.wait_state(r"^In call with")
        cid = call_id(ann)
        ann.media_flows()
        relayed_both_legs(node, cid)
        assert caller.result(timeout=30).ok
    ann.wait_state(r"^Call ended \(the other party hung up\)")
    no_session_left(node, cid)
    ann.wait_text("recent-list", r"Incoming from 203", timeout=10)  # the call's record, read through the API


def test_a_call_the_caller_gives_up_is_a_missed_call(node, office, pages):
    ann = logged_in(pages, node, office, "ann")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        caller = pool.submit(office["sipp"].caller, office["carl_phone"], "201", expect="cancel", ring_ms=2500)
        ann.wait_state(r"^Incoming call from")
        assert ann.page.evaluate("document.activeElement.id") == "answer-button"  # the focus is where the user acts
        assert caller.result(timeout=30).ok
    ann.wait_state(r"^Missed call from (carl|203)$")  # who called, as the request named them
    assert ann.page.get_by_role("button", name="Answer").is_hidden()
    ann.wait_text("recent-list", r"Missed call from 203", timeout=10)


def test_browser_to_browser_with_hold_mute_and_keys(node, office, pages):
    ann = logged_in(pages, node, office, "ann")
    ben = logged_in(pages, node, office, "ben")
    ann.call("202")
    ben.wait_state(r"^Incoming call from")
    ben.click("Answer")
    ann.wait_state(r"^In call with")
    ben.wait_state(r"^In call with")
    cid = call_id(ann)
    ann.media_flows()
    ben.media_flows()
    relayed_both_legs(node, cid)
    ann.click("Mute")
    ann.wait_state(r"^In call")
    assert ann.page.get_by_role("button", name="Unmute").get_attribute("aria-pressed") == "true"
    ann.click("Unmute")
    ann.click("Hold")
    ben.wait_state(r"^Held by the other party")
    ann.click("Resume")
    ben.wait_state(r"^In call with")
    ben.click("Hang up")
    ann.wait_state(r"^Call ended \(the other party hung up\)")
    no_session_left(node, cid)


def test_keys_pressed_in_the_browser_reach_the_far_end(node, office, pages):
    dora = PjPhone.start(node.sip, "dora", DOMAIN, "dora-secret-pw1", transport="udp")
    try:
        assert dora.register() == 200
        ann = logged_in(pages, node, office, "ann")
        ann.call("204")
        dora.incoming()
        dora.answer()
        ann.wait_state(r"^In call with")
        cid = call_id(ann)
        ann.media_flows()
        ann.press_keys("15#")
        assert dora.keys_heard(3) == "15#"  # RFC 2833 events through RTPengine, as the far end's phone decoded them
        assert ann.text("tones-sent") == "Sent: 15#"
        ann.page.keyboard.press("9")  # the keyboard's keys too, while no text field has the focus
        assert dora.keys_heard(1) == "9"
        ann.click("Hang up")
        dora.ended()
        no_session_left(node, cid)
    finally:
        dora.close()


def test_a_failed_call_says_why(node, office, pages):
    """The page names the node's own answer: the reason and code the call's record keeps."""
    ann = logged_in(pages, node, office, "ann")
    ann.call("2999")  # outside the extensions, and this tenant has no trunk
    text = ann.wait_state(r"^Call failed: ")
    cdr = wait_for(lambda: node.rpc("cdr.list", call_id=call_id(ann))["items"], timeout=10)
    assert cdr and text == f"Call failed: {cdr[0]['sip_reason']} ({cdr[0]['sip_code']})", (text, cdr)
    assert ann.text("call-error") == text  # said once more where an error is announced (role=alert)
    busy = office["sipp"].callee(office["carl_phone"], mode="busy")
    ann.call("203")
    ann.wait_state(r"^Call failed: Busy Here \(486\)$")
    assert Sipp.wait(busy, 20).ok
    ann.wait_text("recent-list", r"Outgoing to 203 .* busy", timeout=10)


def test_blind_transfer_from_the_browser(node, office, pages):
    """Carl calls Ann, Ann transfers him to 202: Carl's phone gets the REFER naming 202; Ann's phone leaves the call."""
    ann = logged_in(pages, node, office, "ann")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        caller = pool.submit(office["sipp"].caller, office["carl_phone"], "201", expect="refer", refer_to="sip:202@", bye_within_ms=15000)
        ann.wait_state(r"^Incoming call from")
        ann.click("Answer")
        ann.wait_state(r"^In call with")
        ann.page.get_by_label("Transfer to").fill("202")
        ann.page.get_by_label("Transfer to").press("Enter")
        ann.wait_state(r"^Transferred .* to 202")
        assert caller.result(timeout=30).ok


def test_dnd_and_forwarding_from_the_page_and_a_wrong_token(node, office, pages):
    phone = pages(node.settings.api_base, "stranger")
    phone.page.get_by_label("Your API token").fill("not-a-token")
    phone.click("Log in")
    phone.wait_text("login-error", r"Could not log in: .*unauthorized")
    assert phone.page.locator("#phone").is_hidden()
    phone.page.get_by_label("Your API token").fill(node.token)  # the platform's token: no user to be a phone for
    phone.click("Log in")
    phone.wait_text("login-error", r"Could not log in: this token belongs to no user")
    assert phone.page.locator("#phone").is_hidden() and phone.page.get_by_label("Your API token").is_visible()

    ann = logged_in(pages, node, office, "ann")
    ann_id = office["ann"]["user"]["id"]
    ann.page.get_by_label("Do not disturb").check()
    ann.wait_text("settings-state", r"Do not disturb is on")
    assert node.rpc("user.get", id=ann_id)["status"] == "dnd"
    ann.page.get_by_label("Do not disturb").uncheck()
    ann.wait_text("settings-state", r"Do not disturb is off")
    assert node.rpc("user.get", id=ann_id)["status"] == "online"

    ann.page.get_by_label("Forward all my calls to").fill("030 1234567")
    ann.page.get_by_label("Forwarding on").check()
    ann.wait_text("settings-state", r"All calls are forwarded to \+49301234567")  # as the node understood it
    rules = node.rpc("forwarding.list", user_id=ann_id)["items"]
    assert [(r["kind"], r["target_number"], r["enabled"]) for r in rules] == [("unconditional", "+49301234567", True)]
    ann.page.get_by_label("Forwarding on").uncheck()
    ann.wait_text("settings-state", r"Forwarding to \+49301234567 is off")
    assert node.rpc("forwarding.list", user_id=ann_id)["items"][0]["enabled"] is False
    ann.page.get_by_label("Forward all my calls to").fill("")
    ann.click("Save")
    ann.wait_text("settings-state", r"Forwarding removed")
    assert node.rpc("forwarding.list", user_id=ann_id)["items"] == []


@pytest.mark.parametrize("width,height,columns", [(375, 740, 1), (1280, 900, 2)])
def test_the_page_fits_phone_and_desktop_widths(node, office, pages, width, height, columns):
    ann = logged_in(pages, node, office, "ann", viewport=(width, height))
    layout = ann.page.evaluate(
        """() => ({scroll: document.documentElement.scrollWidth, width: window.innerWidth,
                  lefts: [...new Set([...document.querySelectorAll('#phone > section')]
                          .map((s) => Math.round(s.getBoundingClientRect().left)))].length})"""
    )
    assert layout["scroll"] <= layout["width"], layout  # nothing wider than the screen
    assert layout["lefts"] == columns, layout
    # every control a user needs is reachable with the keyboard: Tab reaches the number field and the call button
    ann.page.get_by_label("Number or extension").focus()
    ann.page.keyboard.press("Tab")
    assert ann.page.evaluate("document.activeElement.id") == "call-button"
