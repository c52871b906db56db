"""The call's state between routes: any state round-trips exactly through its document; an older document loads."""
import json

from hypothesis import given, settings, strategies as st

from kemi.policy.callstate import (CallRecord, CallState, FeatureUse, Forwarding, FraudMark, GroupOffer, QueuePlace, TrunkLeg,
                                   action_from_doc, action_to_doc)
from kemi.policy.decision import GroupStep, Reject, RouteToGroup, RouteToTrunk, RouteToUser, TrunkHop

text = st.text(max_size=12)
ids = st.integers(min_value=0, max_value=10**9)
seconds = st.floats(min_value=0, max_value=2e9, allow_nan=False)
aors = st.lists(text, max_size=3).map(tuple)
hops = st.lists(st.builds(TrunkHop, text, text), min_size=1, max_size=3).map(tuple)
steps = st.lists(st.builds(GroupStep, st.lists(st.tuples(ids, aors), max_size=3).map(tuple), st.integers(0, 600),
                           st.integers(-1, 5)), max_size=3).map(tuple)
reject = st.builds(Reject, st.integers(300, 699), text, text, st.lists(text, max_size=2).map(tuple))
trunk = st.builds(RouteToTrunk, ids, text, hops, st.none() | text, text, st.booleans(), st.booleans(), text,
                  st.none() | st.tuples(text, text, st.lists(text, max_size=2).map(tuple)), st.integers(0, 600),
                  st.lists(ids, max_size=2).map(tuple), st.none() | st.tuples(ids, ids), st.none() | st.tuples(ids, text, seconds))
group = st.builds(RouteToGroup, ids, ids, steps, st.integers(0, 300), st.integers(0, 600), st.integers(0, 10),
                  st.none() | st.tuples(text, text))
plain_user = st.builds(RouteToUser, ids, ids, aors, reject, st.none(), st.none(), st.integers(0, 120), st.lists(ids, max_size=2).map(tuple))
leaf = reject | trunk | group | plain_user
user = st.builds(RouteToUser, ids, ids, aors, leaf, st.none() | leaf, st.none() | leaf, st.integers(0, 120),
                 st.lists(ids, max_size=2).map(tuple))
action = user | trunk | group | reject
states = st.builds(
    CallState,
    record=st.builds(CallRecord, text, text, seconds, st.none() | ids, text, st.none() | ids, text, st.none() | ids),
    trace=st.lists(text, max_size=4).map(tuple),
    forwarding=st.none() | st.builds(Forwarding, st.none() | action, st.none() | action, st.none() | action),
    trunk=st.none() | st.builds(TrunkLeg, text, hops, st.none() | text),
    group=st.none() | st.builds(GroupOffer, ids, steps, st.lists(st.tuples(ids, aors), max_size=3).map(tuple), st.integers(0, 300)),
    claimed=st.lists(ids, max_size=3).map(tuple),
    contested=st.integers(0, 10),
    queue=st.none() | st.builds(QueuePlace, ids, st.integers(0, 10), seconds, seconds, st.integers(0, 5), st.booleans(), text),
    overflows=st.integers(0, 5),
    fraud=st.none() | st.builds(FraudMark, ids, text, seconds),
    emergency=st.booleans(),
    feature=st.none() | st.builds(FeatureUse, ids, text, text),
)


@settings(max_examples=300, deadline=None)
@given(states)
def test_any_call_state_round_trips_exactly_through_its_json_document(state):
    back = CallState.from_json(state.to_json())
    assert back == state
    assert type(back.record) is CallRecord
    if state.forwarding is not None:
        assert [type(a) for a in back.forwarding] == [type(a) for a in state.forwarding]


@settings(max_examples=200, deadline=None)
@given(action)
def test_any_routing_action_round_trips_with_every_field(a):
    assert action_from_doc(json.loads(json.dumps(action_to_doc(a)))) == a


def test_the_fields_the_old_converter_dropped_are_kept():
    g = RouteToGroup(1, 7, (), 5, 60, 3, ("Support", "sip:700@acme.example"))
    t = RouteToTrunk(1, "+4930123", (TrunkHop("a", "sip:+4930123@a"),), "+4930999", "acme.example", track=(4,), callback=(4, 600),
                     emergency=True)
    assert action_from_doc(action_to_doc(g)).present == ("Support", "sip:700@acme.example")
    back = action_from_doc(action_to_doc(t))
    assert (back.track, back.callback, back.emergency) == ((4,), (4, 600), True)


def test_a_version_1_call_context_still_loads():
    """The untyped context of the release before: a call in progress across an upgrade keeps its place and fallbacks."""
    v1 = {"id": "cdr-1", "tenant_id": 1, "caller": "100", "caller_user_id": 1, "callee": "700", "callee_user_id": None,
          "call_id": "c1", "start_ts": 100.5, "trace": ["dialled 700"],
          "fallback": {"busy": {"t": "user", "tenant_id": 1, "user_id": 2, "aors": ["sip:bob@acme.example"]}, "no_answer": None,
                       "unreachable": {"t": "trunk", "tenant_id": 1, "target": "+4930", "hops": [["a", "sip:+4930@a"]],
                                       "caller_number": None, "caller_domain": "acme.example", "privacy": False, "fraud": [1, "national", 0.1]}},
          "hops": [["b", "sip:+4930@b"]], "trunk": "a", "auth_tried": "a",
          "group": {"id": 7, "steps": [[[[10, ["sip:agent0@acme.example"]]], 10, -1]], "current": [[11, ["sip:agent1@acme.example"]]]},
          "claimed": [11], "contested": 1, "wrap": 5, "overflows": 1,
          "queue": {"g": 7, "p": 3, "since": 100.5, "until": 160.5, "holds": 1, "held": True, "key": "g7:1:2"},
          "fraud": [1, "national", 0.1], "emergency": False}
    s = CallState.from_doc(v1)
    assert s.record == CallRecord("cdr-1", "c1", 100.5, 1, "100", 1, "700", None)
    assert s.forwarding.busy == RouteToUser(1, 2, ("sip:bob@acme.example",))
    assert s.forwarding.unreachable.hops == (TrunkHop("a", "sip:+4930@a"),) and s.forwarding.unreachable.fraud == (1, "national", 0.1)
    assert s.trunk == TrunkLeg("a", (TrunkHop("b", "sip:+4930@b"),), "a")
    assert s.group == GroupOffer(7, (GroupStep(((10, ("sip:agent0@acme.example",)),), 10, -1),), ((11, ("sip:agent1@acme.example",)),), 5)
    assert s.queue == QueuePlace(7, 3, 100.5, 160.5, 1, True, "g7:1:2")
    assert (s.claimed, s.contested, s.overflows, s.fraud) == ((11,), 1, 1, FraudMark(1, "national", 0.1))
    assert CallState.from_json(s.to_json()) == s  # and it is written as the current version from then on


def test_a_document_of_another_kind_is_refused():
    import pytest
    with pytest.raises(ValueError):
        CallState.from_doc({"v": 2, "t": "nonsense"})
    with pytest.raises(ValueError):
        CallState.from_doc({"v": 2, "t": "record", "id": "x", "call_id": "y", "start_ts": 1.0})


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                               ["t", "f", "v", "id", "call_id", "start_ts", "trace", "queue", "g", "p", "fallback", "hops", "trunk",
                                "group", "steps", "current"]) | st.text(max_size=4), inner, max_size=5), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(json_values | st.fixed_dictionaries({"t": st.sampled_from(["call", "record", "user", "queue"]), "f": json_values},
                                           optional={"v": st.just(2)}))
def test_any_json_is_read_as_a_call_state_or_refused_with_a_value_error(doc):
    try:
        state = CallState.from_json(json.dumps(doc))
    except ValueError:
        return
    assert isinstance(state, CallState)
