"""controller.concurrently.beside: what runs beside a block never outlives it."""

from __future__ import annotations

import asyncio
import gc

import pytest

from controller import concurrently


async def test_the_block_gets_the_answer_of_what_ran_beside_it() -> None:
    order: list[str] = []

    async def side() -> int:
        order.append("side started")
        await asyncio.sleep(0)
        order.append("side done")
        return 7

    async with concurrently.beside(side()) as task:
        order.append("block runs")
        await asyncio.sleep(0)
        assert await task == 7
    assert order[:2] == ["block runs", "side started"], "both ran at once"


async def test_a_block_that_raises_cancels_what_still_runs_beside_it() -> None:
    cancelled = asyncio.Event()

    async def side() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    beside: list[asyncio.Task[None]] = []

    async def block() -> None:
        async with concurrently.beside(side()) as task:
            beside.append(task)
            await asyncio.sleep(0)
            raise ValueError("the tag moved")

    with pytest.raises(ValueError, match="the tag moved"):
        await block()
    assert cancelled.is_set()
    assert beside[0].cancelled()


async def test_a_failure_beside_that_nobody_awaited_is_not_reported_as_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def side() -> None:
        raise RuntimeError("the base image is gone")

    async def block() -> None:
        async with concurrently.beside(side()):
            await asyncio.sleep(0)  # the side task fails meanwhile
            raise ValueError("first")

    with pytest.raises(ValueError, match="first"):
        await block()
    gc.collect()
    await asyncio.sleep(0)
    assert "exception was never retrieved" not in caplog.text
