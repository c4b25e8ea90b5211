"""What the operator remembers of one RunnerImage between reconciles, never written to status.

`ObjectMemory` lives in kopf's per-object memo. It holds what every reconcile of the object
shares (the status it last wrote, Ready as it last reported it, the generation the polls were
made for, the poll jitter) and one part per step that needs one: each step defines its own
memory class beside it (`inputs.SourcePolls`, `verifying.Verified`, ...) and reads it with
`memory.part(cls)`, so no step sees another's fields.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from controller.observe import status as status_

Part = TypeVar("Part")

STALE_BODY_SECONDS = 60.0
"""How long after a status write a body whose status lacks it is taken for one read before it
landed. Past that, the body is trusted: the write was overwritten — kopf retries its patches
while the API server is away, and an older reconcile's patch can land after a newer one's — and
reconciling from memory would never write the status again (the object stuck as the older patch
left it; `tests/e2e/test_kills.py`, the API server stopped)."""


@dataclasses.dataclass(frozen=True)
class Hold:
    """No reconcile of `generation` (with the same reconcile-request annotation) before
    `until` (monotonic): a service answered with Retry-After. Every cause (timers, a build
    that ended, kopf's retries of another handler) would otherwise call it again at once."""

    generation: int
    request: str | None
    until: float
    message: str
    """The failure that asked for it, repeated by the reconciles that wait."""


@dataclasses.dataclass
class ObjectMemory:
    """Per-object state kept in the operator's memory (kopf's memo), never in status."""

    checked_generation: int | None = None
    """The generation the last polls were made for (a new one polls everything at once)."""
    reported: tuple[str, str] | None = None
    """Ready's (status, reason) as the last reconcile left it (Events are not told twice)."""
    stale_versions: frozenset[str] = frozenset()
    """The resourceVersions older than the last reconcile's status write (the one it read, and
    the one its early progress write made)."""
    written: Mapping[str, Any] | None = None
    """The status as the last reconcile left it (what it read, with its patch applied)."""
    last_patch: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The last status patch a reconcile wrote (empty until one wrote something)."""
    patched_at: float | None = None
    """When that patch was handed to kopf (monotonic)."""
    jitter: float = dataclasses.field(default_factory=lambda: random.uniform(0.0, 0.1))  # noqa: S311
    """Each object polls up to 10% later than its interval, so objects created together do not
    poll their git servers and registries in lockstep."""
    held: Hold | None = None
    """A service's Retry-After that the next reconcile must wait out (see `Hold`)."""
    _parts: dict[type, object] = dataclasses.field(default_factory=dict, repr=False)

    def hold(self, *, generation: int, request: str | None, seconds: float, message: str) -> None:
        """Run no reconcile of `generation` for `seconds` (a service asked for them)."""
        self.held = Hold(generation, request, time.monotonic() + seconds, message)

    def held_for(self, *, generation: int, request: str | None) -> float | None:
        """Seconds left of the hold, or None when a reconcile may run: none held, it passed, or
        the spec changed or a reconcile was asked for since (the user's word wins)."""
        held = self.held
        if held is None or held.generation != generation or held.request != request:
            return None
        left = held.until - time.monotonic()
        return left if left > 0 else None

    def part(self, kind: type[Part]) -> Part:
        """The memory of one step (made empty the first time it is asked for)."""
        found = self._parts.get(kind)
        if found is None:
            found = self._parts[kind] = kind()
        return cast(Part, found)

    def status_for(self, read: Mapping[str, Any], version: str) -> Mapping[str, Any]:
        """The status to reconcile from: the one the last reconcile wrote when the object was
        read before that write landed, else the one read.

        kopf may hand a reconcile (a timer, a queued event) a body read before the previous
        reconcile's status patch landed, and a step acting on that stale status would repeat
        what was just done (an Event, a catalog sync). Such a body is known by its
        resourceVersion (the one the last reconcile read, or its early progress write made), or,
        when it was read at a version in between (an annotation patched meanwhile, e.g. a build
        that ended), by its status lacking the last patch: only the operator writes status —
        for `STALE_BODY_SECONDS` after that patch; later such a body is the truth (the patch
        was overwritten by an older one that landed after it)."""
        if self.written is None:
            return read
        if version and version in self.stale_versions:
            return self.written
        if (
            self.last_patch
            and self.patched_at is not None
            and time.monotonic() - self.patched_at < STALE_BODY_SECONDS
            and status_.apply_merge_patch(read, self.last_patch) != read
        ):
            return self.written
        return read

    def remember(
        self, versions: set[str], status: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> None:
        self.stale_versions = frozenset(v for v in versions if v)
        self.written = status_.apply_merge_patch(status, patch) if patch else status
        if patch:
            self.last_patch = patch
            self.patched_at = time.monotonic()

    def due(self, last: float | None, interval: float | None, *, generation: int) -> bool:
        """Whether a poll last made at `last` (monotonic) is due again: never made, made for
        another generation, or `interval` (jittered) ago; None: only a change polls."""
        if last is None or self.checked_generation != generation:
            return True
        if interval is None:
            return False
        return time.monotonic() - last >= interval * (1.0 + self.jitter)
