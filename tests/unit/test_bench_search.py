"""The benchmarks' call-rate search (tests/bench/run.py): what it reports for a node of known capacity."""
from tests.bench.run import call_rate_search


def search(sustains) -> tuple[tuple[int, int | None], list[int]]:
    """Run a search against `sustains(rate, attempt)`; its result and the rates offered in order."""
    gen, offered, attempts = call_rate_search(200, 5000), [], {}
    rate = next(gen)
    try:
        while True:
            offered.append(rate)
            attempts[rate] = attempts.get(rate, 0) + 1
            rate = gen.send(sustains(rate, attempts[rate]))
    except StopIteration as done:
        return done.value, offered


def test_the_best_rate_is_within_four_percent_below_the_capacity():
    for capacity in (250, 700, 900, 1333, 2600):
        (best, failed), _ = search(lambda rate, _n: rate <= capacity)
        assert best <= capacity < failed and (failed - best) / best <= 0.04, (capacity, best, failed)


def test_a_step_that_fails_once_in_a_slow_moment_is_offered_again_and_counts():
    (best, _), offered = search(lambda rate, n: rate <= 900 and not (rate == 450 and n == 1))
    assert offered[:4] == [200, 300, 450, 450] and best >= 866


def test_a_rate_failed_twice_is_not_sustained():
    (best, failed), offered = search(lambda rate, _n: rate < 1000)
    assert offered.count(1012) == 2 and failed <= 1012 and best < 1000
