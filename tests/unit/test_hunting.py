"""Hunt-group strategies on the pure core (no Kamailio)."""
from hypothesis import given, settings, strategies as st

from kemi.policy.hunting import AgentState, Group, Ring, available, next_pointer, plan

MEMBERS = (11, 12, 13, 14)


def group(strategy="broadcast", **ring):
    return Group(1, 1, "sales", (Ring(MEMBERS, strategy, **ring),))


def first_offer(p):
    return p.steps[0].members if p.steps else ()


def test_broadcast_offers_every_available_member_at_once():
    p = plan(group(), {12: AgentState(logged_in=False), 13: AgentState(wrapup=True)})
    assert [s.members for s in p.steps] == [(11, 14)]
    assert any("12 (logged out)" in t and "13 (in wrap-up)" in t for t in p.trace)


def test_top_down_always_from_the_top_one_at_a_time():
    p = plan(group("top_down", wait_s=25, member_s=10), {})
    assert [s.members for s in p.steps] == [(11,), (12,), (13,)] and [s.seconds for s in p.steps] == [10, 10, 5]


def test_cascading_rings_with_and_without_the_previous_ring():
    g = Group(1, 1, "g", (Ring((11, 12), "broadcast", wait_s=10), Ring((13,), "broadcast", wait_s=10, keep_previous=True),
                          Ring((14,), "broadcast", wait_s=5)))
    assert [s.members for s in plan(g, {}).steps] == [(11, 12), (11, 12, 13), (14,)]


def test_nobody_logged_in_overflows_at_once():
    p = plan(group(), {m: AgentState(logged_in=False) for m in MEMBERS})
    assert p.overflow and not p.steps


def test_too_many_waiting_overflows():
    g = group()._replace(max_waiting=3)
    assert plan(g, {}, waiting=3).overflow and not plan(g, {}, waiting=2).overflow


def test_busy_members_skipped_or_rung_per_ring():
    busy = {11: AgentState(busy=True)}
    assert 11 not in first_offer(plan(group(), busy))
    assert 11 in first_offer(plan(group(busy_members="ring"), busy))


def test_skills_best_level_first_then_fallback():
    skills = {11: {"de": 1}, 12: {"de": 3, "en": 2}, 13: {"de": 2}}
    g = Group(1, 1, "g", (Ring(MEMBERS, "top_down", wait_s=40),), skills={"de": 1})
    assert [s.members[0] for s in plan(g, {}, skills).steps] == [12, 13, 11]
    g2 = g._replace(skills={"fr": 1})
    assert [s.members[0] for s in plan(g2, {}, skills).steps] == [11, 12, 13, 14]  # nobody speaks French: everyone
    assert plan(g2._replace(skills_fallback=False), {}, skills).overflow


def test_delayed_member_joins_the_broadcast_later():
    g = group(wait_s=20, delays={14: 5})
    assert [(s.members, s.seconds) for s in plan(g, {}).steps] == [((11, 12, 13), 5), ((11, 12, 13, 14), 15)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=4, max_size=4), st.integers(min_value=0, max_value=3))
def test_circular_visits_every_available_member_before_repeating(logged_in, start):
    states = {m: AgentState(logged_in=li) for m, li in zip(MEMBERS, logged_in)}
    avail = [m for m in MEMBERS if states[m].logged_in]
    pointer = {0: MEMBERS[start]}
    seen = []
    for _ in range(len(avail)):
        p = plan(group("circular", wait_s=10, member_s=10), states, pointers=pointer)
        if not p.steps:
            break
        seen.append(p.steps[0].members[0])
        pointer = {0: next_pointer(p, 0)}
    assert sorted(seen) == sorted(avail)  # each once, none twice


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=4, max_size=4))
def test_longest_idle_picks_the_longest_idle_member(ends):
    states = {m: AgentState(last_end=e) for m, e in zip(MEMBERS, ends)}
    first = plan(group("longest_idle", wait_s=10, member_s=10), states).steps[0].members[0]
    assert states[first].last_end == min(ends)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["ok", "out", "wrap", "dnd", "offered"]), min_size=4, max_size=4), st.sampled_from(["broadcast", "top_down", "circular", "longest_idle"]))
def test_logged_out_wrap_up_dnd_and_offered_members_are_never_offered(kinds, strategy):
    make = {"ok": AgentState(), "out": AgentState(logged_in=False), "wrap": AgentState(wrapup=True),
            "dnd": AgentState(status="dnd"), "offered": AgentState(offered=True)}
    states = {m: make[k] for m, k in zip(MEMBERS, kinds)}
    p = plan(group(strategy, wait_s=60, member_s=10), states)
    offered = {m for s in p.steps for m in s.members}
    assert offered == {m for m, k in zip(MEMBERS, kinds) if k == "ok"}
    assert p.overflow == (not offered)


def test_no_double_offer_n_calls_to_n_idle_agents():
    """Each call claims its first member (as the shell does, atomically across workers): every agent once."""
    states = {m: AgentState() for m in MEMBERS}
    got = []
    for _ in MEMBERS:
        p = plan(group("longest_idle", wait_s=10, member_s=10), states)
        m = p.steps[0].members[0]
        got.append(m)
        states[m] = states[m]._replace(offered=True)
    assert sorted(got) == sorted(MEMBERS)
    assert plan(group("longest_idle"), states).overflow  # a fifth call finds nobody free


def test_available_reasons():
    assert available(AgentState(registered=False), Ring(MEMBERS)) == (False, "no registered device")


_state = st.builds(AgentState, logged_in=st.booleans(), status=st.sampled_from(["online", "away", "dnd", "unreachable"]), busy=st.booleans(),
                   wrapup=st.booleans(), offered=st.booleans(), registered=st.booleans())


@given(st.lists(_state, min_size=4, max_size=4), st.sampled_from(["skip", "ring"]))
@settings(max_examples=300)
def test_a_broadcast_offers_exactly_the_members_available_says_are_available(states, busy_members):
    by_member = dict(zip(MEMBERS, states))
    p = plan(group(busy_members=busy_members), by_member)
    ring = group(busy_members=busy_members).rings[0]
    expected = tuple(m for m in MEMBERS if available(by_member[m], ring)[0])
    assert first_offer(p) == expected
    assert p.overflow == (not expected)


def test_dnd_members_skipped_or_rung_through_per_ring():
    dnd = {11: AgentState(status="dnd")}
    assert 11 not in first_offer(plan(group(), dnd))
    assert 11 in first_offer(plan(group(dnd_members="ring"), dnd))
    assert 11 not in first_offer(plan(group(dnd_members="ring"), {11: AgentState(status="dnd", logged_in=False)}))
