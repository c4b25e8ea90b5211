"""How long to wait before trying again: the operator's one backoff formula (pure).

`delay(attempt, base=..., cap=...)` is `base` doubled per attempt (1 for the first retry: `base`),
at most `cap`. With `jitter`, "equal jitter": half of it fixed, half uniformly random, so callers
that failed together do not retry together. `at_least` (a server's Retry-After) is a floor that
neither the cap nor the jitter lowers.

The callers and their numbers:

| caller | base | cap | jitter | at least |
|---|---|---|---|---|
| `handlers.retry_delay` (a transient reconcile failure) | 5 s | 300 s | no | |
| `build.retries` (a failed build, by itself) | `ADE_BUILD_RETRY_DELAY` (15 s) | none | no | |
| `registry.client` (one HTTP request) | 0.5 s | 30 s | yes | Retry-After |
| `catalog.retrying` (a push that lost a race; the first retry at once) | 20 ms | 100 ms | yes | |
| `catalog.retrying` (a round of lost pushes; the change stays queued) | 250 ms | 1 s | yes | |
| `azure.clients` (one ARM request; no wait before the first retry) | 1 s | 30 s | no | |
"""

from __future__ import annotations

import math
import random

_MAX_DOUBLINGS = 60
"""2**60 times any base is past every cap; it also keeps the float from overflowing."""

_RANDOM = random.SystemRandom()


def delay(
    attempt: int,
    *,
    base: float,
    cap: float = math.inf,
    jitter: bool = False,
    at_least: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry `attempt` (1-based; below 1 counts as 1): `base * 2**(attempt
    - 1)`, at most `cap`; with `jitter` a uniform draw from its upper half (from `rng`, a seeded
    one in tests); never below `at_least`."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt - 1, 0), _MAX_DOUBLINGS))
    seconds = ceiling / 2 + (rng or _RANDOM).uniform(0, ceiling / 2) if jitter else ceiling
    return seconds if at_least is None else max(seconds, at_least)


API_SERVER_WAITS = (1.0, 1.0, 2.0, 3.0) + (5.0,) * 120
"""How requests to the API server wait out one that cannot be reached: every 5 s for about ten
minutes. Both kopf's own requests (watches, its patches, Events; `handlers`) and a reconcile's
status write (`reconcile.status_writes`). kopf's default (1 s up to 21 s, nine attempts, ~54 s)
gives up on a longer outage: the watch and the timers of some RunnerImages died with the error
while the process lived on, and those objects were never reconciled again until a restart
(`tests/e2e/test_kills.py`, the API server away 90 s). The 5 s step also looks again soon after
the API server is back, where the default waited up to 21 s more."""
