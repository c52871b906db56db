"""Calls to hunt groups through the routing policy (no Kamailio): the queue, VIP and number
priority, screening, the group's own status and forwarding, presentation, busy agents."""
from kemi.policy.decision import Reject, RouteToGroup, RouteToTrunk, RouteToUser
from kemi.policy.hunting import AgentState, GroupLive
from kemi.policy.live import Quiet
from kemi.policy.routing import VIP_PRIORITY, offer_waiting
from kemi.policy.facts import AuthResult, RequestFacts
from kemi.policy.routing import decide_initial
from tests.unit.test_routing_public import CARRIER_A, public_snapshot

AGENTS = [{"id": 10 + i, "tenant_id": 1, "name": f"Agent {i}", "extension": f"30{i}", "aors": [f"sip:agent{i}@acme.example"]}
          for i in range(3)]
NIGHT_PLAN = {"id": 5, "name": "office", "tz": "UTC", "ranges": [{"days": [0, 1, 2, 3, 4], "start": 480, "end": 1080}]}
MONDAY_NOON, MONDAY_NIGHT = 1_795_392_000 + 12 * 3600, 1_795_392_000 + 22 * 3600  # 2026-11-23 (a Monday) UTC


def snap_with(**group):
    g = {"id": 7, "tenant_id": 1, "name": "Support", "extension": "700", "number": "+49301234570",
         "rings": [{"members": [10, 11, 12], "strategy": "top_down", "wait_s": 30, "member_s": 10}], **group}
    return public_snapshot(extra_users=AGENTS, groups=[g], time_plans=[NIGHT_PLAN],
                           numbers_extra=[{"e164": "+49301234570", "tenant_id": 1, "user_id": None, "group_id": 7, "priority": 3}])


class Floor(Quiet):
    """Agents' states as a test sets them."""

    def __init__(self, states=None, waiting=0, group_status="online"):
        super().__init__()
        self.states, self.n_waiting, self.group_status = states or {}, waiting, group_status

    def agents(self, group_id, user_ids, rings):
        return GroupLive({u: self.states.get(u, AgentState()) for u in user_ids}, {}, self.n_waiting, self.group_status)


def dial(snap, live, dialled="700", user="alice", now=MONDAY_NOON):
    facts = RequestFacts("INVITE", dialled, "acme.example", user, "acme.example", dialled, "acme.example", "192.0.2.10", 5060, "c1",
                         user, "acme.example", AuthResult.OK)
    return decide_initial(facts, snap, now, live)


def from_carrier(snap, live, caller="+4917612345678", did="+49301234570", now=MONDAY_NOON):
    facts = RequestFacts("INVITE", did, CARRIER_A, caller, CARRIER_A, did, CARRIER_A, CARRIER_A, 5060, "c2", "", "", AuthResult.NONE)
    return decide_initial(facts, snap, now, live)


BUSY = {m: AgentState(busy=True) for m in (10, 11, 12)}


def test_a_free_member_gets_the_call_at_once():
    d = dial(snap_with(queue_s=60), Floor())
    assert isinstance(d.action, RouteToGroup) and d.action.steps[0].members[0][0] == 10


def test_nobody_free_with_a_queue_time_the_caller_waits_else_overflow():
    d = dial(snap_with(queue_s=60), Floor(BUSY))
    assert isinstance(d.action, RouteToGroup) and not d.action.steps and d.action.queue_s == 60
    assert any("waits" in t for t in d.trace)
    assert isinstance(dial(snap_with(), Floor(BUSY)).action, Reject)  # no queue: 480 (or the overflow target)


def test_nobody_logged_in_overflows_even_with_a_queue():
    out = {m: AgentState(logged_in=False) for m in (10, 11, 12)}
    d = dial(snap_with(queue_s=60, overflow={"target_user": 2}), Floor(out))
    assert isinstance(d.action, RouteToUser) and d.action.user_id == 2


def test_a_new_call_queues_behind_waiting_ones_even_when_a_member_is_free():
    d = dial(snap_with(queue_s=60), Floor(waiting=2))
    assert isinstance(d.action, RouteToGroup) and not d.action.steps
    assert any("2 call(s) already waiting" in t for t in d.trace)


def test_more_waiting_than_the_limit_overflows():
    d = dial(snap_with(queue_s=60, max_waiting=2, overflow={"target_user": 2}), Floor(BUSY, waiting=2))
    assert isinstance(d.action, RouteToUser) and d.action.user_id == 2


def test_priority_from_the_dialled_number_and_vip_callers():
    assert from_carrier(snap_with(queue_s=60), Floor(BUSY)).action.priority == 3
    vip = from_carrier(snap_with(queue_s=60, vip=["+4917612345678"]), Floor(BUSY)).action
    assert vip.priority == 3 + VIP_PRIORITY
    assert dial(snap_with(queue_s=60, vip=["u1"]), Floor(BUSY)).action.priority == VIP_PRIORITY


def test_offer_waiting_only_when_someone_is_free():
    snap = snap_with(queue_s=60)
    assert offer_waiting(snap, 7, Floor(BUSY)) is None
    free_12 = {**BUSY, 12: AgentState()}
    offer = offer_waiting(snap, 7, Floor(free_12))
    assert [st.members[0][0] for st in offer.steps] == [12]


def test_block_list_rejects_or_diverts():
    d = dial(snap_with(blocked=[{"key": "u1", "divert": None}]), Floor())
    assert isinstance(d.action, Reject) and d.action.code == 603
    d = dial(snap_with(blocked=[{"key": "u1", "divert": {"kind": "block", "target_user": 2}}]), Floor())
    assert isinstance(d.action, RouteToUser) and d.action.user_id == 2


def test_anonymous_external_callers_rejected_when_configured():
    d = from_carrier(snap_with(anonymous="reject"), Floor(), caller="anonymous")
    assert isinstance(d.action, Reject) and d.action.code == 433
    assert isinstance(from_carrier(snap_with(anonymous="reject"), Floor()).action, RouteToGroup)


def test_night_service_outside_the_time_plan_and_status_based_forwarding():
    snap = snap_with(forwarding=[{"kind": "unconditional", "target_user": 2, "time_plan": 5, "when": "outside"}])
    assert isinstance(dial(snap, Floor(), now=MONDAY_NOON).action, RouteToGroup)
    night = dial(snap, Floor(), now=MONDAY_NIGHT)
    assert isinstance(night.action, RouteToUser) and night.action.user_id == 2
    closed = snap_with(forwarding=[{"kind": "dnd", "target_number": "+49309876543"}])
    d = dial(closed, Floor(group_status="dnd"))
    assert isinstance(d.action, RouteToTrunk) and d.action.target == "+49309876543"
    assert dial(snap_with(), Floor(group_status="dnd")).action.code == 480  # closed, nowhere to go


def test_group_forwarding_to_another_group_and_loops_are_cut():
    g2 = {"id": 8, "tenant_id": 1, "name": "Backoffice", "extension": "800", "rings": [{"members": [12]}],
          "forwarding": [{"kind": "unconditional", "target_group": 7}]}
    snap = public_snapshot(extra_users=AGENTS, groups=[
        {"id": 7, "tenant_id": 1, "name": "Support", "extension": "700", "rings": [{"members": [10]}],
         "forwarding": [{"kind": "unconditional", "target_group": 8}]}, g2])
    d = dial(snap, Floor())
    assert isinstance(d.action, Reject) and any("cannot take the call" in t for t in d.trace)


def test_presentation_to_members():
    assert dial(snap_with(), Floor()).action.present is None
    assert dial(snap_with(presentation="group"), Floor()).action.present == ("Support", "sip:+49301234570@acme.example")
    assert dial(snap_with(presentation="clir"), Floor()).action.present[1] == "sip:anonymous@anonymous.invalid"


def test_agents_calls_are_tracked_so_groups_see_them_busy():
    d = dial(public_snapshot(extra_users=AGENTS, groups=[{"id": 7, "tenant_id": 1, "name": "S", "extension": "700",
                                                          "rings": [{"members": [10]}]}]), Quiet(), dialled="300")
    assert isinstance(d.action, RouteToUser) and 10 in d.action.track


def test_the_overflow_target_is_decided_when_the_call_overflows():
    from kemi.policy.decision import CallParty
    from kemi.policy.routing import group_overflow

    snap = public_snapshot(extra_users=AGENTS, groups=[
        {"id": 7, "tenant_id": 1, "name": "Support", "extension": "700", "rings": [{"members": [10]}], "overflow": {"target_group": 8}},
        {"id": 8, "tenant_id": 1, "name": "Backoffice", "extension": "800", "rings": [{"members": [11, 12], "strategy": "top_down"}]}])
    assert isinstance(dial(snap, Floor()).action, RouteToGroup)  # offered to 10; nothing about the overflow yet
    trace: list[str] = []
    caller = CallParty(1, 1, "201")
    later = group_overflow(snap, 7, caller, Floor({11: AgentState(busy=True)}), MONDAY_NOON, trace)
    assert isinstance(later, RouteToGroup) and later.group_id == 8 and later.steps[0].members[0][0] == 12  # 11 is busy by then
    assert group_overflow(snap, 8, caller, Floor(), MONDAY_NOON, trace) is None  # no overflow target: 480


def test_a_chain_of_overflows_ends_after_the_limit():
    from kemi.policy.decision import CallParty
    from kemi.policy.routing import MAX_OVERFLOWS, group_overflow

    snap = snap_with(overflow={"target_user": 2})
    trace: list[str] = []
    assert isinstance(group_overflow(snap, 7, CallParty(1, 1, "201"), Floor(), MONDAY_NOON, trace, MAX_OVERFLOWS), RouteToUser)
    assert group_overflow(snap, 7, CallParty(1, 1, "201"), Floor(), MONDAY_NOON, trace, MAX_OVERFLOWS + 1) is None
    assert trace[-1] == f"overflowed {MAX_OVERFLOWS} times: no further"
