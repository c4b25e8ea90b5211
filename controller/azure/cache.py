"""Registry access checks remembered for a while and shared by the RunnerImages that need them.

The reconcile asks "may ADE pull from this registry?" on every pass; the answer is read from ARM
at most once per `interval` for a given registry, mode, principal set and identity.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from controller.azure import access

Key = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Checked:
    """One registry check: when it ran (monotonic, also its identity) and what it found."""

    at: float
    result: access.AccessResult


@dataclasses.dataclass
class AccessCache:
    """Registry checks shared across RunnerImages for `interval` seconds.

    Keyed by registry, mode, principals and identity (the credentials' hash, never the secret):
    a RunnerImage with other credentials does its own check. One lock per key, so RunnerImages
    reconciled together wait for one check instead of each patching the registry.
    """

    interval: float
    entries: dict[Key, Checked] = dataclasses.field(default_factory=dict)
    locks: dict[Key, asyncio.Lock] = dataclasses.field(default_factory=dict)

    def fresh(self, key: Key) -> Checked | None:
        found = self.entries.get(key)
        if found is None or time.monotonic() - found.at >= self.interval:
            return None
        return found

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def store(self, key: Key, result: access.AccessResult) -> Checked:
        checked = Checked(at=time.monotonic(), result=result)
        self.entries[key] = checked
        return checked
