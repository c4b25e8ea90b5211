"""The catalog writer's retry policy after a lost push race (`controller.catalog.retrying`)."""

from __future__ import annotations

import random

import pytest

from controller.catalog import retrying


class Edge(random.Random):
    """A random source that always draws the low or the high end of the range."""

    def __init__(self, *, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


POLICY = retrying.RetryPolicy(attempts=5, base=0.02, cap=0.1, round_base=0.25, round_cap=1.0)


def test_the_first_retry_of_a_round_goes_at_once() -> None:
    """The other writer just moved the branch: fetch again now, before it moves again."""
    for lost in (1, 6, 11, 501):
        assert POLICY.after_lost(lost, rng=Edge(high=True)) == retrying.Next(0.0, None)


@pytest.mark.parametrize(
    ("lost", "low", "high"),
    [(2, 0.01, 0.02), (3, 0.02, 0.04), (4, 0.04, 0.08), (7, 0.01, 0.02), (9, 0.04, 0.08)],
)
def test_within_a_round_the_backoff_doubles_jittered(lost: int, low: float, high: float) -> None:
    assert POLICY.after_lost(lost, rng=Edge(high=False)) == retrying.Next(low, None)
    assert POLICY.after_lost(lost, rng=Edge(high=True)) == retrying.Next(high, None)


def test_within_a_round_the_backoff_is_capped() -> None:
    policy = retrying.RetryPolicy(attempts=25)
    delays = [policy.after_lost(n, rng=Edge(high=True)).delay for n in range(1, 25)]
    assert max(delays) == pytest.approx(0.1)
    assert all(d <= policy.cap for d in delays)


def test_a_round_lost_entirely_is_reported_and_the_next_one_follows() -> None:
    """Every `attempts`-th lost push ends a round: reported, never the end of the batch; the
    pause before the next round doubles, jittered, up to `round_cap`."""
    rounds = [POLICY.after_lost(5 * n, rng=Edge(high=True)) for n in range(1, 8)]
    assert [r.round_lost for r in rounds] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.delay for r in rounds] == [0.25, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    low = [POLICY.after_lost(5 * n, rng=Edge(high=False)).delay for n in (1, 3, 100)]
    assert low == [0.125, 0.5, 0.5]
    assert all(POLICY.after_lost(n).round_lost is None for n in range(1, 5000) if n % 5)


def test_no_wait_is_long_enough_to_sleep_through_a_pause_of_the_other_writer() -> None:
    """However long the contention lasts, the writer is never away from the branch longer than
    `longest_pause`: a pause of the other writer longer than that (and a round trip) lets the
    change land."""
    policy = retrying.RetryPolicy()
    assert policy.longest_pause() == 1.0
    waits = [policy.after_lost(n).delay for n in range(1, 10_000)]
    assert max(waits) <= policy.longest_pause()


def test_a_round_of_one_push() -> None:
    policy = retrying.RetryPolicy(attempts=1, round_base=0.5, round_cap=0.5)
    assert [policy.after_lost(n, rng=Edge(high=True)) for n in (1, 2)] == [
        retrying.Next(0.5, 1),
        retrying.Next(0.5, 2),
    ]


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"base": -1.0}, {"cap": -0.1}, {"round_cap": -1.0}]
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"attempts|backoffs"):
        retrying.RetryPolicy(**kwargs)  # type: ignore[arg-type]
