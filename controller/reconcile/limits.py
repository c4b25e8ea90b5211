"""How much work runs at once: reconciles in flight and builds in flight, operator-wide."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
from collections.abc import AsyncIterator

_HOLDING: contextvars.ContextVar[bool] = contextvars.ContextVar("holding_slot", default=False)


@dataclasses.dataclass
class ReconcileSlots:
    """Bounds the reconciles in flight (`ADE_MAX_CONCURRENT_RECONCILES`).

    A reconcile that waits on work shared with others (its catalog change waiting for the
    batch's commit and push) lends its slot meanwhile, so the limit bounds work being done, not
    waiting: with a limit of 8, a hundred RunnerImages still share a handful of commits.
    """

    limit: int
    _semaphore: asyncio.Semaphore = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._semaphore = asyncio.Semaphore(self.limit)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
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
