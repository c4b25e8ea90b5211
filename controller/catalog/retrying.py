"""When the catalog writer pushes a batch again after losing a race (pure).

A push that loses the race to another writer of the branch is tried again: fetch the new head,
replay or redo the batch on it, push. The pushes of a batch go in rounds of `attempts`:

- Within a round, the first retry goes at once: the other writer has just moved the branch, so
  right now is when it is least likely to move again before our push. Then a short jittered
  backoff (`base` doubling to `cap`: 20 ms to 100 ms), so two writers that keep colliding fall
  out of step, never long enough to sleep through a gap between the other's pushes.
- A round whose every push lost is given up *per attempt*: its submitters are told
  (`CatalogPushRejected`: what status shows meanwhile), but the batch is never dropped for
  contention: the next round starts after `round_base` doubling to `round_cap` (0.25 s to 1 s),
  jittered, so the change lands as soon as the other writer pauses for longer than one round
  trip plus at most `round_cap`.

`RetryPolicy.after_lost(lost)` gives the wait before the next push and whether a round just
ended; the writer (`repository`) does the I/O.
"""

from __future__ import annotations

import dataclasses
import random

from controller import backoff


@dataclasses.dataclass(frozen=True)
class Next:
    """What to do after a push that lost a race."""

    delay: float
    """Seconds to wait before fetching again."""
    round_lost: int | None
    """The number (1-based) of the round this push ended, all of whose pushes lost; else None."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Rounds of `attempts` pushes; backoffs in seconds (see the module docstring)."""

    attempts: int = 25
    base: float = 0.02
    cap: float = 0.1
    round_base: float = 0.25
    round_cap: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.base, self.cap, self.round_base, self.round_cap) < 0:
            raise ValueError("backoffs must not be negative")

    def after_lost(self, lost: int, *, rng: random.Random | None = None) -> Next:
        """After the `lost`-th push of a batch that lost a race (1-based, counted across
        rounds): how long to wait, and whether that push ended a round."""
        lost = max(lost, 1)
        within = (lost - 1) % self.attempts + 1
        round_number = (lost - 1) // self.attempts + 1
        if within == self.attempts:
            delay = backoff.delay(
                round_number, base=self.round_base, cap=self.round_cap, jitter=True, rng=rng
            )
            return Next(delay, round_number)
        if within == 1:
            return Next(0.0, None)
        return Next(
            backoff.delay(within - 1, base=self.base, cap=self.cap, jitter=True, rng=rng), None
        )

    def longest_pause(self) -> float:
        """The longest the writer waits between two pushes of a batch (then a fetch follows):
        a pause of the other writer longer than this plus one round trip lets the batch land."""
        return max(self.cap, self.round_cap)
