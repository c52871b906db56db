"""Hunt-group calls with real Kamailio, RTPengine and SIPp: rings, cascading, log-out and overflow."""
import itertools
import time

from tests.scenario.conftest import wait_for, wait_snapshot
from tests.scenario.test_forwarding import ext_of

_ext = itertools.count(700)


def make_group(node, public, rings, **kw):
    return node.rpc("group.create", tenant_id=public["tenant"]["id"], name=f"g{next(_ext)}", extension=str(next(_ext)),
                    rings=[{"members": [{"user_id": u["id"]} for u in members], **opts} for members, opts in rings], **kw)


def received_invite(proc) -> bool:
    return proc.messages.exists() and "INVITE sip:" in proc.messages.read_text(errors="replace")


def test_broadcast_ring_rings_all_members_and_one_answers(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    agents = [pbx_user() for _ in range(3)]
    g = make_group(node, public, [([a[0] for a in agents], {"strategy": "broadcast", "wait_s": 10})])
    wait_snapshot(node)
    for _, phone, _ in agents:
        assert sipp.register(phone).ok
    ringing = [sipp.callee(agents[0][1], "ring"), sipp.callee(agents[1][1], "ring")]
    answer = sipp.callee(agents[2][1], "answer")
    r = sipp.caller(alice, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(answer).ok and all(sipp.wait(p).ok for p in ringing)  # the others got CANCEL
    cdr = wait_for(lambda: [c for c in node.rpc("cdr.list")["items"] if c["callee"] == g["extension"]], timeout=5)[0]
    assert cdr["disposition"] == "answered" and any("ring 1 (broadcast)" in t for t in cdr["trace"])


def test_cascading_to_ring_two_after_the_wait_time_and_logged_out_member_skipped(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    first, second, away = pbx_user(), pbx_user(), pbx_user()
    g = make_group(node, public, [([first[0], away[0]], {"strategy": "broadcast", "wait_s": 2}), ([second[0]], {"wait_s": 10})])
    node.rpc("agent.logout", group_id=g["id"], user_id=away[0]["id"])
    wait_snapshot(node)
    for _, phone, _ in (first, second, away):
        assert sipp.register(phone).ok
    ring1 = sipp.callee(first[1], "ring")
    logged_out = sipp.callee(away[1], "answer", timeout_s=8)
    answer = sipp.callee(second[1], "answer")
    r = sipp.caller(alice, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(ring1).ok and sipp.wait(answer).ok
    sipp.wait(logged_out, timeout_s=15)
    assert not received_invite(logged_out)  # logged out: never offered
    cdr = wait_for(lambda: [c for c in node.rpc("cdr.list")["items"] if c["callee"] == g["extension"]], timeout=5)[0]
    assert any("next step" in t for t in cdr["trace"]) and any("logged out" in t for t in cdr["trace"])


def test_all_members_logged_out_overflows_to_the_target_at_once(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    agent = pbx_user()
    backup_user, backup, _ = pbx_user()
    g = make_group(node, public, [([agent[0]], {"wait_s": 10})], overflow_user_id=backup_user["id"])
    node.rpc("agent.logout", group_id=g["id"], user_id=agent[0]["id"])
    wait_snapshot(node)
    assert sipp.register(agent[1]).ok and sipp.register(backup).ok
    answer = sipp.callee(backup, "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok
    assert sipp.wait(answer).ok
    node.rpc("agent.login", group_id=g["id"], user_id=agent[0]["id"])
    answer = sipp.callee(agent[1], "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok  # logged in again: the agent takes it
    assert sipp.wait(answer).ok


def test_top_down_offers_one_member_at_a_time_from_the_top(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    a, b, c = pbx_user(), pbx_user(), pbx_user()
    g = make_group(node, public, [([a[0], b[0], c[0]], {"strategy": "top_down", "wait_s": 10, "member_s": 2})])
    wait_snapshot(node)
    for _, phone, _ in (a, b, c):
        assert sipp.register(phone).ok
    top, second = sipp.callee(a[1], "ring"), sipp.callee(b[1], "ring")
    answer = sipp.callee(c[1], "answer")
    r = sipp.caller(alice, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(top).ok and sipp.wait(second).ok and sipp.wait(answer).ok
    cdr = wait_for(lambda: [c for c in node.rpc("cdr.list")["items"] if c["callee"] == g["extension"]], timeout=5)[0]
    offers = [t for t in cdr["trace"] if t.startswith("offering to user")]
    assert offers == [f"offering to user(s) {m[0]['id']} for 2 s" for m in (a, b, c)]


def test_wrap_up_makes_the_agent_skip_exactly_the_calls_inside_the_window(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    a, b = pbx_user(), pbx_user()
    g = make_group(node, public, [([a[0], b[0]], {"strategy": "top_down", "wait_s": 10, "member_s": 5})], wrapup_s=4)
    wait_snapshot(node)
    assert sipp.register(a[1]).ok and sipp.register(b[1]).ok
    answer = sipp.callee(a[1], "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok  # a (top) takes the first call
    assert sipp.wait(answer).ok
    answer_b = sipp.callee(b[1], "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok  # a is in wrap-up: b takes the second
    assert sipp.wait(answer_b).ok
    time.sleep(4.5)  # the window is over: a is available again without anyone acting
    answer = sipp.callee(a[1], "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok
    assert sipp.wait(answer).ok
    cdrs = [c for c in node.rpc("cdr.list")["items"] if c["callee"] == g["extension"]]
    assert any("in wrap-up" in t for c in cdrs for t in c["trace"])


def test_an_agent_whose_answer_was_retransmitted_is_free_again_after_the_call(node, sipp, pbx_user, public):
    """A phone that sends its 200 twice (a retransmission before the ACK arrived): the agent is counted
    once — busy during the call, free after it (the second 200 used to release the offer once more and
    count the agent busy for good: the group's calls never reached them again)."""
    from tests.harness.raw_sip import EagerPhone

    _, alice, _ = pbx_user()
    agent = pbx_user()
    g = make_group(node, public, [([agent[0]], {"strategy": "top_down", "wait_s": 10, "member_s": 5})])
    wait_snapshot(node)
    assert sipp.register(agent[1]).ok
    phone = EagerPhone(agent[1].port, agent[1].media_port)
    r = sipp.caller(alice, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert phone.wait() and phone.answers_sent == 2

    def state():
        q = next(x for x in node.rpc("queue.status")["items"] if x["group_id"] == g["id"])
        return {a["user_id"]: a["state"] for a in q["agents"]}[agent[0]["id"]]

    assert wait_for(lambda: state() == "available", timeout=5), state()
    for _ in range(2):  # and the group's next calls reach them
        answer = sipp.callee(agent[1], "answer")
        r = sipp.caller(alice, g["extension"], hold_ms=300)
        assert r.ok, r.output[-2000:]
        assert sipp.wait(answer).ok


def test_longest_idle_offers_the_agent_whose_last_call_ended_longest_ago(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    a, b, c = pbx_user(), pbx_user(), pbx_user()
    g = make_group(node, public, [([a[0], b[0], c[0]], {"strategy": "longest_idle", "wait_s": 10, "member_s": 5})])
    wait_snapshot(node)
    for _, phone, _ in (a, b, c):
        assert sipp.register(phone).ok
    # never called: all idle "forever", list order picks a; then b and c (idle longer than a);
    # then a again, whose call ended before b's and c's
    for expected in (a, b, c, a):
        uas = sipp.callee(expected[1], "answer")
        assert sipp.caller(alice, g["extension"], hold_ms=300).ok
        assert sipp.wait(uas).ok
        time.sleep(1.1)  # idle times are kept in whole seconds


def test_n_simultaneous_calls_to_n_idle_agents_each_agent_offered_exactly_one(node, sipp, pbx_user, public):
    callers = [pbx_user()[1] for _ in range(3)]
    agents = [pbx_user() for _ in range(3)]
    g = make_group(node, public, [([a[0] for a in agents], {"strategy": "top_down", "wait_s": 30, "member_s": 10})])
    wait_snapshot(node)
    for _, phone, _ in agents:
        assert sipp.register(phone).ok
    uas = [sipp.callee(phone, "answer", timeout_s=40) for _, phone, _ in agents]
    calls = [sipp.caller_in_background(c, g["extension"], hold_ms=2500, timeout_s=40) for c in callers]
    results = [c.result(timeout=60) for c in calls]
    assert all(r.ok for r in results), [r.output[-800:] for r in results if not r.ok]
    assert all(sipp.wait(p, timeout_s=60).ok for p in uas)
    invites = [p.messages.read_text(errors="replace").count("INVITE sip:") for p in uas]
    assert invites == [1, 1, 1]  # across both Kamailio workers: nobody offered two calls


def test_queue_status_shows_agents_waiting_calls_and_todays_figures(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    a, b, c = pbx_user(), pbx_user(), pbx_user()  # c never registers
    g = make_group(node, public, [([a[0], b[0], c[0]], {"strategy": "broadcast", "wait_s": 6})], wrapup_s=30)
    node.rpc("agent.logout", group_id=g["id"], user_id=b[0]["id"])
    wait_snapshot(node)
    assert sipp.register(a[1]).ok and sipp.register(b[1]).ok
    ringing = sipp.callee(a[1], "ring")
    call = sipp.caller_in_background(alice, g["extension"], expect="cancel", ring_ms=2500)

    def mine():
        return next(x for x in node.rpc("queue.status")["items"] if x["group_id"] == g["id"])

    live = wait_for(lambda: (lambda q: q if q["waiting"] and q["longest_wait_s"] >= 1 else None)(mine()), timeout=5)
    assert live and len(live["waiting"]) == 1 and 1 <= live["longest_wait_s"] <= 5  # the caller has been waiting, not for ages
    states = {x["user_id"]: x["state"] for x in live["agents"]}
    assert states == {a[0]["id"]: "available", b[0]["id"]: "logged_out", c[0]["id"]: "unregistered"}
    assert call.result(timeout=30).ok and sipp.wait(ringing).ok
    answer = sipp.callee(a[1], "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok
    assert sipp.wait(answer).ok
    after = wait_for(lambda: (lambda q: q if q["today"]["answered"] >= 1 else None)(mine()), timeout=5)
    assert after["today"]["abandoned"] >= 1 and after["today"]["offered"] >= 2
    assert {x["user_id"]: x["state"] for x in after["agents"]}[a[0]["id"]] == "wrap_up"


def test_queue_metrics_are_scraped_per_group(node, pbx_user, public):
    import httpx

    a = pbx_user()
    g = make_group(node, public, [([a[0]], {"wait_s": 5})])
    node.rpc("agent.logout", group_id=g["id"], user_id=a[0]["id"])
    text = httpx.get(node.settings.api_url.replace("/rpc", "/metrics"), timeout=10).text
    assert "callmanager_queue_up 1.0" in text
    assert f'callmanager_queue_agents{{group="{g["name"]}",state="logged_out",tenant="{public["tenant"]["id"]}"}} 1.0' in text


def test_agent_logs_out_and_in_from_the_phone(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    a, b = pbx_user(), pbx_user()
    g = make_group(node, public, [([a[0], b[0]], {"strategy": "top_down", "wait_s": 10, "member_s": 5})])
    wait_snapshot(node)
    assert sipp.register(a[1]).ok and sipp.register(b[1]).ok
    assert sipp.caller(a[1], "*42" + g["extension"], expect=603).ok  # log out from the phone: live at once
    answer_b = sipp.callee(b[1], "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok  # a is out: b takes it
    assert sipp.wait(answer_b).ok
    assert wait_for(lambda: any(x["state"] == "logged_out" for x in next(q for q in node.rpc("queue.status")["items"]
                                                                           if q["group_id"] == g["id"])["agents"]), timeout=5)
    assert sipp.caller(a[1], "*41" + g["extension"], expect=603).ok
    answer_a = sipp.callee(a[1], "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok  # in again: the top member takes it
    assert sipp.wait(answer_a).ok
    assert sipp.caller(a[1], "*41999", expect=404).ok  # not a group of theirs


def test_log_in_changes_by_the_api_reach_the_next_calls_after_the_workers_have_read_the_group(node, sipp, pbx_user, public):
    """Kamailio's workers keep the members' status and log-in they read until the control plane changes their version."""
    _, alice, _ = pbx_user()
    a, b = pbx_user(), pbx_user()
    g = make_group(node, public, [([a[0], b[0]], {"strategy": "top_down", "wait_s": 10, "member_s": 5})])
    wait_snapshot(node)
    assert sipp.register(a[1]).ok and sipp.register(b[1]).ok

    def answered_by(phone) -> None:
        answer = sipp.callee(phone, "answer")
        r = sipp.caller(alice, g["extension"], hold_ms=200)
        assert r.ok, r.output[-2000:]
        assert sipp.wait(answer).ok

    for _ in range(2):  # both workers have read the group: a (top) takes the calls
        answered_by(a[1])
    node.rpc("agent.logout", group_id=g["id"], user_id=a[0]["id"])
    for _ in range(2):
        answered_by(b[1])
    node.rpc("agent.login", group_id=g["id"], user_id=a[0]["id"])
    for _ in range(2):
        answered_by(a[1])


def test_callback_recognition_offers_the_agent_who_called_first(node, sipp, pbx_user, public, trunks):
    from tests.scenario.conftest import CARRIER_IP

    first, agent = pbx_user(), pbx_user()
    g = make_group(node, public, [([first[0], agent[0]], {"strategy": "top_down", "wait_s": 20, "member_s": 5})], callback_window_s=120)
    did = node.rpc("number.assign", e164="+4930555098", group_id=g["id"])
    carrier = sipp.carrier(CARRIER_IP)
    trunks(carrier)
    wait_snapshot(node)
    assert sipp.register(first[1]).ok and sipp.register(agent[1]).ok
    out = sipp.callee(carrier, "answer")
    assert sipp.caller(agent[1], "0891234567", hold_ms=300).ok  # the agent calls a customer
    assert sipp.wait(out).ok
    answer = sipp.callee(agent[1], "answer")
    r = sipp.carrier_call(carrier, "0891234567", did["e164"], hold_ms=300)  # the customer calls the group back
    assert r.ok, r.output[-2000:]
    assert sipp.wait(answer).ok  # the agent who called them, not the top member
    cdr = wait_for(lambda: [c for c in node.rpc("cdr.list")["items"] if c["callee"] == did["e164"]], timeout=5)[0]
    assert any(f"callback: user {agent[0]['id']} called +49891234567" in t for t in cdr["trace"])


def group_cdrs(node, g, n=1):
    return wait_for(lambda: (lambda cs: cs if len(cs) >= n else None)(
        [c for c in node.rpc("cdr.list")["items"] if c["callee"] == g["extension"]]), timeout=10)


def test_a_caller_waits_ringing_while_the_only_agent_is_busy_then_gets_them(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    _, bob, _ = pbx_user()
    agent = pbx_user()
    g = make_group(node, public, [([agent[0]], {"wait_s": 10})], queue_s=20)
    wait_snapshot(node)
    assert sipp.register(agent[1]).ok
    uas = sipp.callee(agent[1], "answer", calls=2, timeout_s=40)
    first = sipp.caller_in_background(alice, g["extension"], hold_ms=3000)
    time.sleep(1.2)  # the agent is on the first call now
    second = sipp.caller_in_background(bob, g["extension"], hold_ms=300, timeout_s=40)
    waiting = wait_for(lambda: [w for item in node.rpc("queue.status")["items"] if item["group_id"] == g["id"]
                                for w in item["waiting"] if w["queued"]], timeout=5)
    assert len(waiting) == 1 and waiting[0]["priority"] == 0
    assert first.result(timeout=30).ok
    r = second.result(timeout=45)
    assert r.ok, r.output[-2000:]  # rang until the agent was free, then answered
    assert sipp.wait(uas, timeout_s=45).ok
    second_cdr = next(c for c in group_cdrs(node, g, 2) if any("waiting in the queue" in t for t in c["trace"]))
    assert second_cdr["disposition"] == "answered"
    assert any("a member is free after" in t for t in second_cdr["trace"])


def test_a_vip_waiting_call_is_offered_before_an_older_normal_one(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    _, normal, _ = pbx_user()
    vip_user, vip, _ = pbx_user()
    agent = pbx_user()
    g = make_group(node, public, [([agent[0]], {"wait_s": 10})], queue_s=30, vip=[{"user_id": vip_user["id"]}])
    wait_snapshot(node)
    assert sipp.register(agent[1]).ok
    uas = sipp.callee(agent[1], "answer", calls=3, timeout_s=60)
    busy = sipp.caller_in_background(alice, g["extension"], hold_ms=3000)
    time.sleep(1.2)
    older = sipp.caller_in_background(normal, g["extension"], hold_ms=1000, timeout_s=50)
    time.sleep(0.8)
    newer_vip = sipp.caller_in_background(vip, g["extension"], hold_ms=1000, timeout_s=50)
    assert busy.result(timeout=30).ok
    assert newer_vip.result(timeout=50).ok and older.result(timeout=50).ok
    assert sipp.wait(uas, timeout_s=60).ok
    cdrs = group_cdrs(node, g, 3)
    by_caller = {c["caller"]: c for c in cdrs}
    vip_cdr = next(c for c in cdrs if any("VIP" in t for t in c["trace"]))
    normal_cdr = next(c for c in cdrs if c is not vip_cdr and any("waiting in the queue" in t for t in c["trace"]))
    assert vip_cdr["answer_time"] < normal_cdr["answer_time"], by_caller  # the VIP came later but went first


def only_agent_busy(node, sipp, pbx_user, public, queue_s: int, hold_ms: int):
    """A group of one agent with a queue of queue_s and an overflow user (registered), the agent on a group call
    for hold_ms: (group, a second caller, the overflow user's phone, the agent's UAS, the busy call)."""
    _, alice, _ = pbx_user()
    _, bob, _ = pbx_user()
    agent = pbx_user()
    backup_user, backup, _ = pbx_user()
    g = make_group(node, public, [([agent[0]], {"wait_s": 10})], queue_s=queue_s, overflow_user_id=backup_user["id"])
    wait_snapshot(node)
    assert sipp.register(agent[1]).ok and sipp.register(backup).ok
    uas = sipp.callee(agent[1], "answer")
    busy = sipp.caller_in_background(alice, g["extension"], hold_ms=hold_ms)
    time.sleep(1.2)
    return g, bob, backup, uas, busy


def test_waiting_longer_than_the_queue_time_overflows(node, sipp, pbx_user, public):
    g, bob, backup, uas, busy = only_agent_busy(node, sipp, pbx_user, public, queue_s=2, hold_ms=5000)
    answer = sipp.callee(backup, "answer")
    r = sipp.caller(bob, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(answer).ok and busy.result(timeout=30).ok and sipp.wait(uas).ok
    cdr = next(c for c in group_cdrs(node, g, 2) if any("waiting in the queue" in t for t in c["trace"]))
    assert any("no member became free: overflow" in t for t in cdr["trace"])
    # nothing is left in the queue
    item = next(i for i in node.rpc("queue.status")["items"] if i["group_id"] == g["id"])
    assert not [w for w in item["waiting"] if w["queued"]]


def test_a_call_that_cannot_wait_overflows_with_one_record_route_and_one_media_offer(node, sipp, pbx_user, public):
    """A queue too short to wait in (1 s: less than a hold needs) with nobody free: the call was already
    prepared for the queue (record-route, dialog, media offer) when the hold was refused — the overflow
    must not prepare it a second time (two Record-Route entries of the node, a second offer to RTPengine)."""
    from tests.harness.raw_sip import EagerPhone

    g, bob, backup, uas, busy = only_agent_busy(node, sipp, pbx_user, public, queue_s=1, hold_ms=4000)
    phone = EagerPhone(backup.port, backup.media_port)
    r = sipp.caller(bob, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert phone.wait() and busy.result(timeout=30).ok and sipp.wait(uas).ok
    head = phone.invite.split("\r\n\r\n", 1)[0].lower()
    routes = [h for h in head.split("\r\n") if h.startswith("record-route:")]
    entries = [e for h in routes for e in h.split(":", 1)[1].split(",")]
    assert len(entries) == 1, routes
    assert phone.invite.count("v=0") == 1, phone.invite  # one SDP offer, RTPengine's, not two bodies one after the other
    assert any("cannot wait" in t for c in group_cdrs(node, g, 2) for t in c["trace"])


def test_busy_and_dnd_members_are_skipped_and_an_agent_on_a_direct_call_counts_as_busy(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    _, carol, _ = pbx_user()
    a, b, c = pbx_user(), pbx_user(), pbx_user()
    g = make_group(node, public, [([a[0], b[0], c[0]], {"strategy": "top_down", "wait_s": 20, "member_s": 5})])
    node.rpc("user.set_status", id=a[0]["id"], status="dnd")
    wait_snapshot(node)
    for _, phone, _ in (a, b, c):
        assert sipp.register(phone).ok
    direct = sipp.callee(b[1], "answer")
    on_call = sipp.caller_in_background(carol, ext_of(node, b[0]), hold_ms=3000)
    time.sleep(1.2)  # b is on a direct call now
    answer = sipp.callee(c[1], "answer")
    dnd = sipp.callee(a[1], "answer", timeout_s=6)
    r = sipp.caller(alice, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(answer).ok and on_call.result(timeout=30).ok and sipp.wait(direct).ok
    sipp.wait(dnd, timeout_s=15)
    assert not received_invite(dnd)
    cdr = group_cdrs(node, g)[0]
    assert any(f"{a[0]['id']} (dnd)" in t for t in cdr["trace"]) and any(f"{b[0]['id']} (on a call)" in t for t in cdr["trace"])


def test_members_see_the_group_as_the_caller_when_configured(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    agent = pbx_user()
    g = make_group(node, public, [([agent[0]], {"wait_s": 10})], presentation="group")
    wait_snapshot(node)
    assert sipp.register(agent[1]).ok
    uas = sipp.callee(agent[1], "answer")
    assert sipp.caller(alice, g["extension"], hold_ms=300).ok
    assert sipp.wait(uas).ok
    invite = uas.messages.read_text(errors="replace").split("INVITE sip:", 1)[1].split("\n\n", 1)[0]
    from_line = next(line for line in invite.splitlines() if line.lower().startswith("from:"))
    assert g["name"] in from_line and f"sip:{g['extension']}@" in from_line, from_line


def test_group_screening_block_list_and_status_based_forwarding(node, sipp, pbx_user, public):
    alice_user, alice, _ = pbx_user()
    _, bob, _ = pbx_user()
    agent = pbx_user()
    night_user, night, _ = pbx_user()
    g = make_group(node, public, [([agent[0]], {"wait_s": 10})], blocked=[{"user_id": alice_user["id"]}],
                   forwarding=[{"kind": "dnd", "target_user_id": night_user["id"]}])
    wait_snapshot(node)
    assert sipp.register(agent[1]).ok and sipp.register(night).ok
    assert sipp.caller(alice, g["extension"], expect=603).ok  # on the group's block list
    node.rpc("group.update", id=g["id"], status="dnd")  # night service: live at once
    answer = sipp.callee(night, "answer")
    assert sipp.caller(bob, g["extension"], hold_ms=300).ok
    assert sipp.wait(answer).ok
    node.rpc("group.update", id=g["id"], status="online")
    uas = sipp.callee(agent[1], "answer")
    assert sipp.caller(bob, g["extension"], hold_ms=300).ok
    assert sipp.wait(uas).ok


def test_circular_goes_on_after_the_last_offered_member_and_skips_one_without_a_device(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    a, b, c, gone = pbx_user(), pbx_user(), pbx_user(), pbx_user()  # `gone` never registers: unreachable
    g = make_group(node, public, [([a[0], b[0], gone[0], c[0]], {"strategy": "circular", "wait_s": 20, "member_s": 5})])
    wait_snapshot(node)
    for _, phone, _ in (a, b, c):
        assert sipp.register(phone).ok
    for expected in (a, b, c, a):  # each call starts after the member offered the previous one
        uas = sipp.callee(expected[1], "answer")
        r = sipp.caller(alice, g["extension"], hold_ms=200)
        assert r.ok, r.output[-2000:]
        assert sipp.wait(uas).ok
    cdrs = group_cdrs(node, g, 4)
    third = sorted(cdrs, key=lambda c: c["start_time"])[2]  # b -> gone (no device, skipped) -> c
    assert any(f"user(s) {gone[0]['id']}: no registered device" in t for t in third["trace"])


def test_a_sip_account_member_rings_only_that_device_and_a_team_brings_its_members(node, sipp, pbx_user, public):
    _, alice, _ = pbx_user()
    agent_user, mobile, _ = pbx_user()
    desk_acc = node.rpc("sip_account.create", user_id=agent_user["id"], username=f"desk{agent_user['id']}", password="pw-desk-12345")
    desk = sipp.phone(desk_acc["username"], "trunk-ag.example", "pw-desk-12345")
    teammate = pbx_user()
    team = make_group(node, public, [([teammate[0]], {"wait_s": 10})])
    g = node.rpc("group.create", tenant_id=public["tenant"]["id"], name=f"g{next(_ext)}", extension=str(next(_ext)),
                 rings=[{"members": [{"sip_account_id": desk_acc["id"]}], "wait_s": 3},
                        {"members": [{"team_id": team["id"]}], "wait_s": 10}])
    wait_snapshot(node)
    for phone in (mobile, desk, teammate[1]):
        assert sipp.register(phone).ok
    not_this_one = sipp.callee(mobile, "answer", timeout_s=8)
    desk_rings = sipp.callee(desk, "ring")
    answer = sipp.callee(teammate[1], "answer")
    r = sipp.caller(alice, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(desk_rings).ok and sipp.wait(answer).ok  # the desk phone rang (ring 1), the team took it (ring 2)
    sipp.wait(not_this_one, timeout_s=15)
    assert not received_invite(not_this_one)  # the agent's other device never rang


def test_a_large_groups_live_state_is_read_for_every_member(node, sipp, pbx_user, public):
    """30 members: their live state takes more than one read; a logged-out and a DND member far
    down the list are skipped like at the top (a wrong read counts everyone as available)."""
    _, alice, _ = pbx_user()
    padding = [node.rpc("user.create", tenant_id=public["tenant"]["id"], name=f"Pad {i}") for i in range(27)]  # no device
    out, dnd, b = pbx_user(), pbx_user(), pbx_user()
    members = padding[:20] + [out[0], dnd[0]] + padding[20:] + [b[0]]
    g = make_group(node, public, [(members, {"strategy": "top_down", "wait_s": 20, "member_s": 4})])
    node.rpc("agent.logout", group_id=g["id"], user_id=out[0]["id"])
    node.rpc("user.set_status", id=dnd[0]["id"], status="dnd")
    wait_snapshot(node)
    for _, phone, _ in (out, dnd, b):
        assert sipp.register(phone).ok
    never = [sipp.callee(out[1], "answer", timeout_s=6), sipp.callee(dnd[1], "answer", timeout_s=6)]
    answer = sipp.callee(b[1], "answer")
    r = sipp.caller(alice, g["extension"], hold_ms=300)
    assert r.ok, r.output[-2000:]
    assert sipp.wait(answer).ok
    for p in never:
        sipp.wait(p, timeout_s=15)
        assert not received_invite(p)
    offers = [t for t in group_cdrs(node, g)[0]["trace"] if t.startswith("offering to user")]
    assert offers == [f"offering to user(s) {b[0]['id']} for 4 s"]  # the only member present
