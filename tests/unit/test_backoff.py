"""controller.backoff.delay: doubling, the cap, equal jitter and the Retry-After floor."""

from __future__ import annotations

import math
import random

import pytest

from controller import backoff


class Edge(random.Random):
    """A random source that always draws the low (`high=False`) or the high end of the range."""

    def __init__(self, *, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "seconds"),
    [
        # handlers.retry_delay: 5 s doubling, at most 300 s (kopf's retry 0 is attempt 1)
        *[(1, 5.0, 300.0, 5.0), (2, 5.0, 300.0, 10.0), (5, 5.0, 300.0, 80.0)],
        *[(6, 5.0, 300.0, 160.0), (7, 5.0, 300.0, 300.0), (17, 5.0, 300.0, 300.0)],
        # build.retries: the configured delay doubling, no cap
        *[(1, 15.0, math.inf, 15.0), (2, 15.0, math.inf, 30.0), (3, 15.0, math.inf, 60.0)],
        # azure.clients: 1 s doubling, at most max_retry_after
        *[(1, 1.0, 30.0, 1.0), (5, 1.0, 30.0, 16.0), (6, 1.0, 30.0, 30.0)],
        # below 1 counts as 1; far beyond the cap stays at it, without overflowing
        *[(0, 5.0, 300.0, 5.0), (-3, 5.0, 300.0, 5.0), (10_000, 5.0, 300.0, 300.0)],
        (10_000, 1.0, math.inf, 2.0**60),
    ],
)
def test_doubles_from_base_up_to_the_cap(
    attempt: int, base: float, cap: float, seconds: float
) -> None:
    assert backoff.delay(attempt, base=base, cap=cap) == seconds


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "low", "high"),
    [
        # catalog.repository: 20 ms doubling, at most 100 ms
        *[(1, 0.02, 0.1, 0.01, 0.02), (2, 0.02, 0.1, 0.02, 0.04), (4, 0.02, 0.1, 0.05, 0.1)],
        # registry.client: 0.5 s doubling, at most 30 s
        *[(1, 0.5, 30.0, 0.25, 0.5), (3, 0.5, 30.0, 1.0, 2.0), (9, 0.5, 30.0, 15.0, 30.0)],
    ],
)
def test_equal_jitter_keeps_the_upper_half(
    attempt: int, base: float, cap: float, low: float, high: float
) -> None:
    for rng, expected in [(Edge(high=False), low), (Edge(high=True), high)]:
        got = backoff.delay(attempt, base=base, cap=cap, jitter=True, rng=rng)
        assert got == pytest.approx(expected)
    drawn = {backoff.delay(attempt, base=base, cap=cap, jitter=True) for _ in range(50)}
    assert all(low <= d <= high for d in drawn)
    assert len(drawn) > 1, "the default source is random"


@pytest.mark.parametrize(
    ("attempt", "jitter", "at_least", "seconds"),
    [
        (1, False, 7.0, 7.0),  # Retry-After beyond the backoff: waited in full
        (1, True, 7.0, 7.0),
        (3, False, 0.1, 2.0),  # Retry-After shorter than the backoff: the backoff
        (3, True, 0.1, 1.0),  # jittered to its low end, still not below the floor
        (9, False, 60.0, 60.0),  # the floor is above the cap too
        (1, False, None, 0.5),
    ],
)
def test_never_below_at_least(
    attempt: int, jitter: bool, at_least: float | None, seconds: float
) -> None:
    got = backoff.delay(
        attempt, base=0.5, cap=30.0, jitter=jitter, at_least=at_least, rng=Edge(high=False)
    )
    assert got == seconds
