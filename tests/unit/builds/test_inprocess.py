"""The in-process task registry (controller.builds.inprocess.Tasks), with real asyncio."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
from collections.abc import AsyncIterator

import pytest

from controller.builds import backend, inprocess

OWNER = backend.Owner(name="runner", namespace="team-a", uid="uid-1")
DIGEST = "sha256:" + "cd" * 32
Phase = backend.Phase


def plan(key: str = "a" * 64, owner: backend.Owner = OWNER, attempt: int = 1) -> backend.BuildPlan:
    return backend.BuildPlan(
        owner=owner,
        key=key,
        reason="Initial",
        image="r.example/runner:t",
        dockerfile="Dockerfile",
        platforms=("linux/amd64",),
        context_dir=pathlib.Path("/ctx"),
        push_secret=None,
        timeout_seconds=60,
        attempt=attempt,
    )


class FakeBuild:
    """A build the test drives: it starts, waits for `release`, then succeeds or crashes."""

    def __init__(self, *, crash: BaseException | None = None) -> None:
        self.crash = crash
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = asyncio.Event()
        self.calls: list[str] = []
        self.cancelled = False

    async def __call__(self, plan: backend.BuildPlan) -> backend.BuildState:
        self.calls.append(plan.name)
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.finished.set()
        if self.crash is not None:
            raise self.crash
        return backend.BuildState(Phase.SUCCEEDED, digest=DIGEST, name=plan.name)

    async def finish(self) -> None:
        """Let the build end, and return once its task is done."""
        self.release.set()
        await self.finished.wait()


@pytest.fixture
async def tasks() -> AsyncIterator[inprocess.Tasks]:
    registry = inprocess.Tasks()
    yield registry
    await registry.close()


async def test_unknown_build_is_missing(tasks: inprocess.Tasks) -> None:
    assert tasks.state(plan()) == backend.BuildState(Phase.MISSING, name=plan().name)


async def test_running_then_succeeded(tasks: inprocess.Tasks) -> None:
    fake = FakeBuild()
    tasks.start(plan(), fake)
    await fake.started.wait()
    assert tasks.state(plan()) == backend.BuildState(Phase.RUNNING, name=plan().name)
    assert tasks.running() == 1
    await fake.finish()
    assert tasks.state(plan()) == backend.BuildState(
        Phase.SUCCEEDED, digest=DIGEST, name=plan().name
    )
    assert tasks.running() == 0


async def test_start_is_idempotent_per_build(tasks: inprocess.Tasks) -> None:
    first, second = FakeBuild(), FakeBuild()
    tasks.start(plan(), first)
    tasks.start(plan(), second)
    await first.started.wait()
    tasks.start(plan(), second)
    await first.finish()
    tasks.start(plan(), second)
    assert first.calls == [plan().name]
    assert second.calls == []
    assert tasks.running() == 0
    assert tasks.state(plan()).phase is Phase.SUCCEEDED


async def test_a_failed_build_is_not_restarted_by_start(tasks: inprocess.Tasks) -> None:
    failing = FakeBuild(crash=RuntimeError("boom"))
    tasks.start(plan(), failing)
    await failing.finish()
    again = FakeBuild()
    tasks.start(plan(), again)
    assert again.calls == []
    assert tasks.state(plan()).phase is Phase.FAILED


async def test_a_retry_attempt_is_a_new_build(tasks: inprocess.Tasks) -> None:
    first, retry = FakeBuild(crash=RuntimeError("boom")), FakeBuild()
    tasks.start(plan(), first)
    await first.finish()
    tasks.start(plan(attempt=2), retry)
    await retry.started.wait()
    assert retry.calls == [plan(attempt=2).name]
    assert tasks.state(plan()).phase is Phase.FAILED
    assert tasks.state(plan(attempt=2)).phase is Phase.RUNNING


async def test_different_keys_and_owners_run_apart(tasks: inprocess.Tasks) -> None:
    other_owner = dataclasses.replace(OWNER, namespace="team-b")
    plans = [plan(), plan(key="b" * 64), plan(owner=other_owner)]
    fakes = [FakeBuild() for _ in plans]
    for each, fake in zip(plans, fakes, strict=True):
        tasks.start(each, fake)
    await asyncio.gather(*(fake.started.wait() for fake in fakes))
    assert tasks.running() == 3
    await fakes[1].finish()
    assert [tasks.state(each).phase for each in plans] == [
        Phase.RUNNING,
        Phase.SUCCEEDED,
        Phase.RUNNING,
    ]


@pytest.mark.parametrize(
    ("crash", "message"),
    [
        (RuntimeError("disk full"), "the build crashed: RuntimeError: disk full"),
        (ValueError(), "the build crashed: ValueError: "),
    ],
)
async def test_a_crashing_build_is_failed(
    tasks: inprocess.Tasks, crash: BaseException, message: str
) -> None:
    fake = FakeBuild(crash=crash)
    tasks.start(plan(), fake)
    await fake.finish()
    assert tasks.state(plan()) == backend.BuildState(
        Phase.FAILED, name=plan().name, message=message
    )


async def test_a_build_cancelled_from_inside_is_failed(tasks: inprocess.Tasks) -> None:
    fake = FakeBuild(crash=asyncio.CancelledError())
    tasks.start(plan(), fake)
    await fake.finish()
    assert tasks.state(plan()) == backend.BuildState(
        Phase.FAILED, name=plan().name, message="cancelled"
    )


async def test_prune_keeps_named_and_running_builds(tasks: inprocess.Tasks) -> None:
    kept, dropped, running = plan("a" * 64), plan("b" * 64), plan("c" * 64)
    other = plan("d" * 64, owner=dataclasses.replace(OWNER, name="other"))
    fakes = {each.name: FakeBuild() for each in (kept, dropped, running, other)}
    for each in (kept, dropped, running, other):
        tasks.start(each, fakes[each.name])
    for each in (kept, dropped, other):
        await fakes[each.name].finish()
    await fakes[running.name].started.wait()

    tasks.prune(OWNER, keep={kept.name})

    assert tasks.state(kept).phase is Phase.SUCCEEDED
    assert tasks.state(dropped).phase is Phase.MISSING
    assert tasks.state(running).phase is Phase.RUNNING
    assert tasks.state(other).phase is Phase.SUCCEEDED


async def test_pruned_build_can_start_again(tasks: inprocess.Tasks) -> None:
    first, second = FakeBuild(), FakeBuild()
    tasks.start(plan(), first)
    await first.finish()
    tasks.prune(OWNER, keep=set())
    tasks.start(plan(), second)
    await second.started.wait()
    assert second.calls == [plan().name]


async def test_forget_cancels_the_owners_builds_only(tasks: inprocess.Tasks) -> None:
    mine, theirs = FakeBuild(), FakeBuild()
    other = plan(owner=dataclasses.replace(OWNER, name="other"))
    tasks.start(plan(), mine)
    tasks.start(other, theirs)
    await asyncio.gather(mine.started.wait(), theirs.started.wait())
    tasks.forget(namespace=OWNER.namespace, name=OWNER.name)
    await mine.finished.wait()
    assert mine.cancelled
    assert not theirs.cancelled
    assert tasks.state(plan()).phase is Phase.MISSING
    assert tasks.state(other).phase is Phase.RUNNING


async def test_close_cancels_running_builds() -> None:
    registry = inprocess.Tasks()
    running, done = FakeBuild(), FakeBuild()
    registry.start(plan(), running)
    registry.start(plan("b" * 64), done)
    await done.finish()
    await running.started.wait()

    await registry.close()

    assert running.cancelled
    assert running.finished.is_set()
    assert not done.cancelled
    assert registry.running() == 0
    assert registry.state(plan()).phase is Phase.MISSING
    assert registry.state(plan("b" * 64)).phase is Phase.MISSING


async def test_close_with_nothing_started() -> None:
    registry = inprocess.Tasks()
    await registry.close()
    assert registry.running() == 0


async def test_a_build_that_ends_says_so_once_unless_its_object_was_deleted() -> None:
    ended: list[tuple[str, str, str]] = []
    tasks = inprocess.Tasks(on_finished=lambda *key: ended.append(key))
    succeeding, crashing, deleted = FakeBuild(), FakeBuild(crash=RuntimeError("x")), FakeBuild()
    other = dataclasses.replace(OWNER, name="other")
    tasks.start(plan("a" * 64), succeeding)
    tasks.start(plan("b" * 64), crashing)
    tasks.start(plan("c" * 64, owner=other), deleted)
    await asyncio.gather(succeeding.started.wait(), deleted.started.wait())
    assert ended == []  # nothing said while the builds run
    await succeeding.finish()
    await crashing.finish()
    tasks.forget(namespace=other.namespace, name=other.name)
    await deleted.finished.wait()
    await asyncio.sleep(0)  # the done callbacks run on the next turn of the loop
    assert sorted(ended) == [
        ("team-a", "runner", plan("a" * 64).name),
        ("team-a", "runner", plan("b" * 64).name),
    ]
    await tasks.close()
