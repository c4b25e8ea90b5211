"""What a step waits on (controller.observe.activity): noted while in flight, kept when the
deadline cancels it, forgotten when it ends, invisible outside a tracked step."""

from __future__ import annotations

import asyncio

import pytest

from controller.observe import activity


async def test_in_flight_then_forgotten() -> None:
    with activity.tracking() as tracker:
        with activity.waiting_on("the registry r.example (token)"):
            assert tracker.pending() == ("the registry r.example (token)",)
        assert tracker.pending() == ()


async def test_an_error_forgets_a_cancellation_keeps() -> None:
    with activity.tracking() as tracker:
        with pytest.raises(ValueError, match="refused"), activity.waiting_on("failed"):
            raise ValueError("refused")
        assert tracker.pending() == ()

        async def hang() -> None:
            with activity.waiting_on("the git server http://g/x.git (git ls-remote)"):
                await asyncio.Event().wait()

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await hang()
        assert tracker.pending() == ("the git server http://g/x.git (git ls-remote)",)


async def test_tasks_a_step_starts_note_into_its_tracker() -> None:
    async def call(name: str) -> None:
        with activity.waiting_on(name):
            await asyncio.Event().wait()

    with activity.tracking() as tracker:
        tasks = [asyncio.create_task(call(n)) for n in ("a", "b", "a")]
        await asyncio.sleep(0)
        assert tracker.pending() == ("a", "b")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_outside_a_step_nothing_is_noted() -> None:
    with activity.waiting_on("anything"):
        pass
    with activity.tracking() as tracker:
        pass
    assert tracker.pending() == ()
