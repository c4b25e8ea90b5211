"""What the catalog writer knows of a branch head without asking the server: how recently its
clone's tracking ref matched the server, and how recently a push there lost a race.

The writer pushes a commit made on the head its clone last saw without fetching first
("optimistic") when that head was seen recently and nobody else has been pushing: the push is a
compare-and-swap (`--force-with-lease=<branch>:<that head>`), so a head that moved meanwhile
only costs a rejected push, after which the usual fetch-and-replay runs. Under contention (a push
lost within `CONTENDED_SECONDS`) it fetches first, as the cheaper order when the head keeps
moving. Pure bookkeeping on loop time; no I/O.
"""

from __future__ import annotations

import dataclasses

SEEN_SECONDS = 60.0
"""How long a head the clone saw (fetched, or pushed by us) is worth pushing on without a fetch."""
CONTENDED_SECONDS = 60.0
"""How long after a lost push the writer fetches before every push on that branch."""
PREFETCH_AFTER_SECONDS = 0.25
"""A prefetch is skipped when the head was seen less than this long ago."""

Key = tuple[str, str]
"""(url, branch)."""


@dataclasses.dataclass
class Heads:
    """Per (url, branch): when its head was last seen, when a push there last lost a race."""

    seen_for: float = SEEN_SECONDS
    """How long a seen head is pushed on without a fetch (0: never)."""
    seen: dict[Key, float] = dataclasses.field(default_factory=dict)
    lost: dict[Key, float] = dataclasses.field(default_factory=dict)

    def saw(self, key: Key, now: float) -> None:
        """The clone's tracking ref of `key` matched the server at `now` (a fetch or our push)."""
        self.seen[key] = now

    def lost_race(self, key: Key, now: float) -> None:
        """A push to `key` was rejected at `now`: another writer moved the branch."""
        self.lost[key] = now
        self.seen.pop(key, None)

    def forget(self, key: Key) -> None:
        """The clone is gone (discarded): nothing is known of its head."""
        self.seen.pop(key, None)

    def optimistic(self, key: Key, now: float) -> bool:
        """Whether to push on the known head without fetching first."""
        seen = self.seen.get(key)
        if seen is None or now - seen >= self.seen_for:
            return False
        lost = self.lost.get(key)
        return lost is None or now - lost > CONTENDED_SECONDS

    def prefetch_due(self, key: Key, now: float) -> bool:
        """Whether a prefetch of `key` would tell anything new."""
        seen = self.seen.get(key)
        return seen is None or now - seen >= PREFETCH_AFTER_SECONDS
