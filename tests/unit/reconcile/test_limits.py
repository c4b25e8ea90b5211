"""`ReconcileSlots`: the bound on reconciles in flight, and lending a slot while waiting."""

from __future__ import annotations

import asyncio

from controller.reconcile import limits


def test_a_lent_slot_lets_another_reconcile_run_and_comes_back() -> None:
    slots = limits.ReconcileSlots(limit=1)
    order: list[str] = []

    async def waiting_on_a_batch(batch: asyncio.Event) -> None:
        async with slots.held():
            order.append("a holds")
            async with slots.lent():
                order.append("a lends")
                await batch.wait()
            order.append("a holds again")

    async def another(batch: asyncio.Event) -> None:
        async with slots.held():
            order.append("b runs")
            batch.set()  # b's work is what a's batch was waiting for

    async def main() -> None:
        batch = asyncio.Event()
        first = asyncio.create_task(waiting_on_a_batch(batch))
        await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(first, another(batch)), timeout=5)

    asyncio.run(main())
    assert order == ["a holds", "a lends", "b runs", "a holds again"]


def test_the_limit_holds_and_lending_outside_a_slot_changes_nothing() -> None:
    slots = limits.ReconcileSlots(limit=2)
    running = 0
    most = 0

    async def reconcile() -> None:
        nonlocal running, most
        async with slots.held():
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1

    async def main() -> None:
        async with slots.lent():  # not holding a slot: no slot is given away
            await asyncio.gather(*(reconcile() for _ in range(6)))

    asyncio.run(main())
    assert most == 2
