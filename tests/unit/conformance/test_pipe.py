"""The loop-to-thread byte pipe (controller.conformance.pipe): order, backpressure, abort."""

from __future__ import annotations

import asyncio
import threading

import pytest

from controller.conformance import pipe


async def test_bytes_arrive_in_order_with_full_reads() -> None:
    bridge = pipe.Pipe(limit=2)
    chunks = [bytes([i]) * (i + 1) for i in range(50)]

    def read() -> list[bytes]:
        reader = bridge.reader(buffer_size=16)
        pieces = []
        while piece := reader.read(7):
            pieces.append(piece)
        bridge.close_reader()
        return pieces

    reading = asyncio.create_task(asyncio.to_thread(read))
    for chunk in chunks:
        assert await bridge.put(chunk)
    bridge.end()
    pieces = await reading
    assert b"".join(pieces) == b"".join(chunks)
    assert all(len(piece) == 7 for piece in pieces[:-1])  # full reads until the end


async def test_put_waits_while_the_reader_is_behind() -> None:
    bridge = pipe.Pipe(limit=2)
    go = threading.Event()

    def read() -> bytes:
        go.wait(5)
        data = bridge.reader().read()
        bridge.close_reader()
        return data

    reading = asyncio.create_task(asyncio.to_thread(read))
    assert await bridge.put(b"a")
    assert await bridge.put(b"b")
    third = asyncio.create_task(bridge.put(b"c"))
    await asyncio.sleep(0.05)
    assert not third.done(), "a third chunk must wait for the reader"
    go.set()
    assert await asyncio.wait_for(third, 5)
    bridge.end()
    assert await reading == b"abc"


async def test_abort_makes_the_reader_raise() -> None:
    bridge = pipe.Pipe()

    def read() -> bytes:
        try:
            return bridge.reader().read()
        finally:
            bridge.close_reader()

    reading = asyncio.create_task(asyncio.to_thread(read))
    await bridge.put(b"partial")
    bridge.abort()
    with pytest.raises(pipe.Aborted):
        await reading


async def test_after_the_reader_is_gone_chunks_are_dropped() -> None:
    bridge = pipe.Pipe(limit=1)

    def read() -> bytes:
        data = bridge.reader(buffer_size=4).read(4)
        bridge.close_reader()
        return data

    reading = asyncio.create_task(asyncio.to_thread(read))
    assert await bridge.put(b"abcd")
    assert await reading == b"abcd"
    for _ in range(100):  # the producer drains without blocking or buffering
        assert not await bridge.put(b"x" * 1000)


async def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        pipe.Pipe(limit=0)
