"""Edge protection policy: windows, bans, cool-downs, address restrictions (kemi/policy/edge.py)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from kemi.policy import edge
from kemi.policy.edge import EdgeSettings, judge_auth, lock_seconds, networks, plainly_accepted


def test_scanners_are_recognised_by_user_agent():
    assert edge.is_scanner("friendly-scanner") == "friendly-scanner"
    assert edge.is_scanner("sipvicious 0.3.4") == "sipvicious"
    assert edge.is_scanner("Yealink SIP-T46S 66.86.0.15") == ""
    assert edge.is_scanner("") == ""


def test_sliding_window_counts_the_previous_bucket_by_what_is_left_of_it():
    w = edge.window(1000.0 + 2.5, 10)  # a quarter into bucket 100
    assert w.bucket == 100 and w.elapsed == pytest.approx(0.25)
    assert edge.sliding_count(10, 40, w) == pytest.approx(10 + 40 * 0.75)
    assert edge.over(20, 40, 50, w)  # 20 + 30 = 50
    assert not edge.over(19, 40, 50, w)
    assert not edge.over(10**6, 0, 0, w)  # a limit of 0 is off


@given(current=st.integers(0, 500), previous=st.integers(0, 49), limit=st.integers(1, 50), elapsed=st.floats(0, 0.999))
def test_skipping_the_previous_bucket_never_misses_a_ban(current, previous, limit, elapsed):
    """The shell reads the previous bucket only when needs_previous says so; a previous bucket below the
    limit (one at the limit was banned then) can never make the count reach it otherwise."""
    w = edge.Window(7, elapsed)
    if edge.over(current, min(previous, limit - 1), limit, w):
        assert edge.needs_previous(current, limit, w)


def test_the_whole_previous_bucket_counts_when_nothing_may_slip_through():
    w = edge.window(1009.9, 10)  # 99 % into the bucket
    assert edge.over(1, 49, 50, w, weighted=False)
    assert not edge.over(1, 49, 50, w)  # the estimate lets the old bucket fade
    assert edge.needs_previous(0, 50, w, weighted=False)


def test_cool_downs_double_up_to_the_cap():
    s = EdgeSettings(lock_s=60, lock_max_s=3600)
    assert [lock_seconds(n, s) for n in range(8)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert lock_seconds(10**6, s) == 3600


def test_a_four_digit_password_cannot_be_guessed_in_a_year():
    """5 guesses per cool-down, doubling to a day: 10,000 guesses take far longer than a year."""
    s = EdgeSettings()
    guesses, seconds, n = 0, 0, 0
    while guesses < 10_000 and seconds < 365 * 86400:
        guesses += s.auth_failures_account
        seconds += lock_seconds(n, s)
        n += 1
    assert seconds >= 365 * 86400 and guesses < 10_000


def test_locked_account_is_refused_even_with_the_right_password_but_not_for_emergency_calls():
    v = judge_auth(True, locked_until=200.0, allowed=(), src_ip="192.0.2.1", emergency=False, now=100.0)
    assert not v.ok and not v.count_account and "locked" in v.why
    assert judge_auth(True, 200.0, (), "192.0.2.1", emergency=True, now=100.0).ok
    assert judge_auth(True, 99.0, (), "192.0.2.1", emergency=False, now=100.0).ok  # the lock is over
    assert not judge_auth(False, 200.0, (), "192.0.2.1", emergency=True, now=100.0).ok  # emergency still needs the password


def test_account_restricted_to_networks():
    allowed = networks(["192.0.2.0/24", "2001:db8::1"])
    assert judge_auth(True, 0.0, allowed, "192.0.2.77", False, 0.0).ok
    assert judge_auth(True, 0.0, allowed, "2001:db8::1", False, 0.0).ok
    v = judge_auth(True, 0.0, allowed, "198.51.100.1", False, 0.0)
    assert not v.ok and v.count_account and "198.51.100.1" in v.why
    assert not judge_auth(True, 0.0, allowed, "not-an-ip", False, 0.0).ok


def test_wrong_password_counts():
    v = judge_auth(False, 0.0, (), "192.0.2.1", False, 0.0)
    assert not v.ok and v.count_account


def test_settings_from_doc_parse_exempt_networks_and_refuse_bad_ones():
    s = EdgeSettings.from_doc({"exempt": ["10.0.0.0/8", "192.0.2.7"], "ban_s": 60, "unknown": 1})
    assert s.ban_s == 60 and edge.in_networks("10.1.2.3", s.exempt) and edge.in_networks("192.0.2.7", s.exempt)
    assert not edge.in_networks("192.0.2.8", s.exempt)
    with pytest.raises(ValueError):
        EdgeSettings.from_doc({"exempt": ["10.0.0.300/8"]})


def test_names_a_sender_controls_are_bounded_keys_one_per_name():
    from hypothesis import given, strategies as st

    from kemi.policy.auth import failure_counter_keys
    from kemi.policy.edge import KEY_MAX, bounded_key

    assert bounded_key("alice@acme.example") == "alice@acme.example"  # real accounts are kept as they are
    long_a, long_b = "a" * 8000 + "@x", "a" * 8000 + "@y"
    assert len(bounded_key(long_a)) == KEY_MAX and bounded_key(long_a) != bounded_key(long_b)
    assert len(failure_counter_keys("u" * 60000, "x.example", "198.18.0.1")[0]) <= KEY_MAX + 5

    @given(st.text(max_size=400))
    def bounded(text):
        assert len(bounded_key(text)) <= KEY_MAX
        bounded_key(text).encode("utf-8", "backslashreplace")

    bounded()


@pytest.mark.parametrize("checked_ok", [True, False])
@pytest.mark.parametrize("locked_until", [0.0, 99.0, 100.0, 101.0])
@pytest.mark.parametrize("allowed", [(), networks(["192.0.2.0/24"]), networks(["198.51.100.0/24"])])
@pytest.mark.parametrize("emergency", [False, True])
def test_a_plain_acceptance_is_always_what_the_full_judgement_says(checked_ok, locked_until, allowed, emergency):
    """The shortcut the request routes take before judging (kemi/shell/credentials.py, ordinary.py) never accepts what
    judge_auth would refuse, and takes exactly the common case: right, not cooled down, no address rule."""
    plain = plainly_accepted(checked_ok, locked_until, allowed, now=100.0)
    if plain:
        assert judge_auth(checked_ok, locked_until, allowed, "192.0.2.1", emergency, now=100.0).ok
    assert plain == (checked_ok and locked_until <= 100.0 and not allowed)
