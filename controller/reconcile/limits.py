"""How much work runs at once: reconciles in flight and builds in flight, operator-wide; and
what goes first in a burst (a new object's first word before the reconciles)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

_HOLDING: contextvars.ContextVar[bool] = contextvars.ContextVar("holding_slot", default=False)


ARRIVAL_PATIENCE = 1.0
"""The longest a reconcile waits for new objects' first words (`Arrivals`), and how long an
object counts as arriving when its reconcile never comes (its first word lost, say)."""


@dataclasses.dataclass
class Arrivals:
    """New objects whose first word is on its way: the `Reconciling` that kopf's first cycle of
    an object writes, its only write, before the finalizer (`handlers.first_cycle_status`),
    until the object's first reconcile begins.

    A reconcile takes its slot only once none is on its way (`ReconcileSlots.held`), for at most
    `patience` seconds. The first word is one small write and no work; a reconcile is many
    requests and most of the operator's CPU. In a burst of creates, the reconciles of the first
    objects otherwise ran beside the first cycles of the others and each new object said
    Reconciling only after them (50 at once: first status 6-8x a create). Objects its spec alone
    decides (suspended, invalid) say nothing early and are not counted: a thousand suspended at
    once settle as before.
    """

    patience: float = ARRIVAL_PATIENCE
    clock: Callable[[], float] = time.monotonic
    _since: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict, repr=False)
    _none: asyncio.Event = dataclasses.field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self._none.set()

    def expect(self, namespace: str, name: str) -> None:
        """The object's first word is on its way (kopf writes it after this cycle)."""
        self._since.setdefault((namespace, name), self.clock())
        self._none.clear()

    def arrived(self, namespace: str, name: str) -> None:
        """The object's reconcile begins (or it is gone): its first word is behind it."""
        self._since.pop((namespace, name), None)
        self._drop_stale()

    @property
    def arriving(self) -> int:
        self._drop_stale()
        return len(self._since)

    async def settled(self) -> None:
        """Return when no first word is on its way, or `patience` seconds from now."""
        deadline = self.clock() + self.patience
        while self.arriving:
            left = min(deadline, min(self._since.values()) + self.patience) - self.clock()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._none.wait(), timeout=left)

    def _drop_stale(self) -> None:
        oldest = self.clock() - self.patience
        for key in [key for key, since in self._since.items() if since <= oldest]:
            del self._since[key]
        if not self._since:
            self._none.set()


@dataclasses.dataclass
class ReconcileSlots:
    """Bounds the reconciles in flight (`ADE_MAX_CONCURRENT_RECONCILES`).

    A reconcile that waits on work shared with others (its catalog change waiting for the
    batch's commit and push) lends its slot meanwhile, so the limit bounds work being done, not
    waiting: with a limit of 8, a hundred RunnerImages still share a handful of commits.
    """

    limit: int
    arrivals: Arrivals = dataclasses.field(default_factory=Arrivals)
    """New objects' first words, which go before a reconcile takes its slot."""
    _semaphore: asyncio.Semaphore = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._semaphore = asyncio.Semaphore(self.limit)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self.arrivals.settled()
        async with self._semaphore:
            token = _HOLDING.set(True)
            try:
                yield
            finally:
                _HOLDING.reset(token)

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        """Give the slot this task holds to others while waiting; take one back after."""
        if not _HOLDING.get():
            yield
            return
        self._semaphore.release()
        token = _HOLDING.set(False)
        try:
            yield
        finally:
            _HOLDING.reset(token)
            await self._semaphore.acquire()


@dataclasses.dataclass
class BuildSlots:
    """Bounds the builds in flight across the operator; a build over the limit waits queued."""

    limit: int
    active: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)

    def try_acquire(self, key: tuple[str, str, str]) -> bool:
        if key in self.active:
            return True
        if len(self.active) >= self.limit:
            return False
        self.active.add(key)
        return True

    def hold(self, key: tuple[str, str, str]) -> None:
        """Count a build found running (e.g. adopted after a restart) against the limit."""
        self.active.add(key)

    def release(self, key: tuple[str, str, str]) -> None:
        self.active.discard(key)

    def release_others(self, key: tuple[str, str, str]) -> None:
        """Free the slots the same RunnerImage held for other (superseded) build keys."""
        self.active = {held for held in self.active if held[:2] != key[:2] or held == key}

    def forget(self, *, namespace: str, name: str) -> None:
        self.active = {held for held in self.active if held[:2] != (namespace, name)}
