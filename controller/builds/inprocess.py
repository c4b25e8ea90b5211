"""Builds that run inside the operator process (BuildKit daemon, Docker engine), one task per key.

The registry of tasks is what makes `start` idempotent for these backends. It lives in memory:
after an operator restart a build in flight is unknown (`Missing`) and is started again, which
BuildKit's and Docker's layer caches make cheap. `on_finished(namespace, name, build)` is called
when a build ends (not when its RunnerImage was deleted), so its object is reconciled at once,
unless a reconcile is waiting for that build (`wait`): that one goes on with it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from controller.builds import backend

OnFinished = Callable[[str, str, str], None]


class Tasks:
    def __init__(self, *, on_finished: OnFinished | None = None) -> None:
        self._tasks: dict[tuple[str, str, str], asyncio.Task[backend.BuildState]] = {}
        self._on_finished = on_finished
        self._awaited: set[tuple[str, str, str]] = set()
        """Builds a reconcile is waiting for (`wait`)."""
        self._taken: set[tuple[str, str, str]] = set()
        """Awaited builds that ended: their end woke nobody, the waiter goes on with them."""

    @staticmethod
    def _key(plan: backend.BuildPlan) -> tuple[str, str, str]:
        return (plan.owner.namespace, plan.owner.name, plan.name)

    def start(
        self,
        plan: backend.BuildPlan,
        run: Callable[[backend.BuildPlan], Awaitable[backend.BuildState]],
    ) -> None:
        key = self._key(plan)
        if key in self._tasks:
            return
        task = self._tasks[key] = asyncio.ensure_future(run(plan))
        if self._on_finished is not None:
            task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: tuple[str, str, str], task: asyncio.Task[backend.BuildState]) -> None:
        if self._tasks.get(key) is not task:  # its RunnerImage was deleted
            return
        if key in self._awaited:
            self._taken.add(key)  # the reconcile waiting for it goes on with it
        elif self._on_finished is not None:
            self._on_finished(*key)

    async def wait(self, plan: backend.BuildPlan, *, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the build of `plan` to end; whether the waiter is
        to go on with it. Exactly one side takes an ending build: the waiter (then its end
        calls no `on_finished`), or `on_finished` (the wait timed out first, or was cancelled)."""
        key = self._key(plan)
        task = self._tasks.get(key)
        if task is None or task.done() or key in self._awaited:
            return False  # nothing to wait for, or its end is on_finished's already
        self._awaited.add(key)
        try:
            await asyncio.wait([task], timeout=timeout)
        except asyncio.CancelledError:
            if key in self._taken and self._on_finished is not None:
                self._on_finished(*key)  # nobody goes on with it now: wake as usual
            raise
        finally:
            self._awaited.discard(key)
            taken = key in self._taken
            self._taken.discard(key)
        return taken

    def state(self, plan: backend.BuildPlan) -> backend.BuildState:
        task = self._tasks.get(self._key(plan))
        if task is None:
            return backend.BuildState(backend.Phase.MISSING, name=plan.name)
        if not task.done():
            return backend.BuildState(backend.Phase.RUNNING, name=plan.name)
        if task.cancelled():
            return backend.BuildState(backend.Phase.FAILED, name=plan.name, message="cancelled")
        error = task.exception()
        if error is not None:
            return backend.BuildState(
                backend.Phase.FAILED,
                name=plan.name,
                message=f"the build crashed: {type(error).__name__}: {error}",
            )
        return task.result()

    def running(self) -> int:
        return sum(1 for task in self._tasks.values() if not task.done())

    def prune(self, owner: backend.Owner, *, keep: set[str]) -> None:
        """Drop finished tasks of one RunnerImage whose build names are not kept."""
        for key in [k for k in self._tasks if k[:2] == (owner.namespace, owner.name)]:
            if self._tasks[key].done() and key[2] not in keep:
                del self._tasks[key]

    def forget(self, *, namespace: str, name: str) -> None:
        """Drop finished tasks of one RunnerImage (cancel running ones: it was deleted)."""
        for key in [k for k in self._tasks if k[:2] == (namespace, name)]:
            self._tasks.pop(key).cancel()

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()


class InProcessBackend:
    """A backend whose builds run as tasks of this process; subclasses say how in `_run`."""

    def __init__(self, *, tasks: Tasks) -> None:
        self._tasks = tasks

    async def start(
        self, plan: backend.BuildPlan, *, docker_config: Mapping[str, Any] | None
    ) -> None:
        self._tasks.start(plan, functools.partial(self._run, docker_config=docker_config))

    async def state(self, plan: backend.BuildPlan) -> backend.BuildState:
        return self._tasks.state(plan)

    async def prune(self, owner: backend.Owner, *, keep: set[str]) -> None:
        self._tasks.prune(owner, keep=keep)

    async def wait(self, plan: backend.BuildPlan, *, timeout: float) -> bool:
        return await self._tasks.wait(plan, timeout=timeout)

    async def _run(
        self, plan: backend.BuildPlan, *, docker_config: Mapping[str, Any] | None
    ) -> backend.BuildState:
        """Run the build of `plan`, pushing with `docker_config` (never logged)."""
        raise NotImplementedError
