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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_reconcile_takes_its_slot_once_the_bursts_first_words_are_said() -> None:
    arrivals = limits.Arrivals(patience=30.0)
    slots = limits.ReconcileSlots(limit=8, arrivals=arrivals)
    arrivals.expect("ns", "a")
    arrivals.expect("ns", "b")
    order: list[str] = []

    async def reconcile() -> None:
        async with slots.held():
            order.append("reconcile")

    waiting = asyncio.create_task(reconcile())
    await asyncio.sleep(0.05)
    assert order == []  # two first words on their way
    arrivals.arrived("ns", "a")
    order.append("a said")
    await asyncio.sleep(0.05)
    assert order == ["a said"]
    arrivals.arrived("ns", "b")
    order.append("b said")
    await asyncio.wait_for(waiting, timeout=5)
    assert order == ["a said", "b said", "reconcile"]


async def test_a_reconcile_waits_for_first_words_at_most_its_patience() -> None:
    arrivals = limits.Arrivals(patience=0.2)
    arrivals.expect("ns", "never-said")  # its first word lost: its reconcile never comes
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(arrivals.settled(), timeout=5)
    waited = asyncio.get_running_loop().time() - started
    assert 0.15 <= waited < 2.0
    assert arrivals.arriving == 0  # and it holds no later reconcile: it is forgotten


def test_an_object_counts_as_arriving_only_for_its_patience() -> None:
    clock = Clock()
    arrivals = limits.Arrivals(patience=1.0, clock=clock)
    arrivals.expect("ns", "a")
    clock.now += 0.5
    arrivals.expect("ns", "b")
    arrivals.expect("ns", "a")  # seen again (another event before the finalizer): not renewed
    assert arrivals.arriving == 2
    clock.now += 0.6
    assert arrivals.arriving == 1
    arrivals.arrived("ns", "b")
    assert arrivals.arriving == 0


async def test_nothing_arriving_costs_a_reconcile_no_wait() -> None:
    arrivals = limits.Arrivals(patience=30.0)
    arrivals.expect("ns", "a")
    arrivals.arrived("ns", "a")
    await asyncio.wait_for(arrivals.settled(), timeout=0.1)
