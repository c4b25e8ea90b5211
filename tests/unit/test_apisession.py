"""The API server session's bound (`controller.apisession`), against a real HTTP server on loopback.

The server holds every request until the test lets it go, so the requests in flight at once are
counted where they arrive, as connections too.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from controller import apisession


class Server:
    """A loopback server that counts requests in flight and the connections they came on."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.watching = 0
        self.peers: set[object] = set()
        self.arrived: list[str] = []
        self.release = asyncio.Event()
        self.changed = asyncio.Condition()

    async def until_in_flight(self, count: int) -> None:
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: self.in_flight >= count), timeout=10
            )

    async def _count(self, step: int) -> None:
        async with self.changed:
            self.in_flight += step
            self.changed.notify_all()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            self.watching += 1
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b'{"type":"ADDED"}\n')
            await self.release.wait()
            return response
        self.peers.add(request.transport and request.transport.get_extra_info("peername"))
        self.arrived.append(f"{request.method} {request.path}")
        await self._count(1)
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
            return web.json_response({"kind": "Status", "body": "x" * 100_000})
        finally:
            await self._count(-1)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield state, f"http://127.0.0.1:{port}"
    state.release.set()
    await runner.cleanup()


def _session(limit: int) -> aiohttp.ClientSession:
    return apisession.session(
        ssl_context=ssl.create_default_context(), headers={"Authorization": "Bearer t"}, limit=limit
    )


async def test_requests_beyond_the_bound_wait_and_reuse_connections(
    server: tuple[Server, str],
) -> None:
    state, url = server
    async with _session(4) as session:

        async def patch(index: int) -> int:
            async with session.patch(f"{url}/apis/x/{index}", json={"i": index}) as response:
                body = await response.json()
                assert len(body["body"]) == 100_000
                return response.status

        requests = [asyncio.create_task(patch(i)) for i in range(40)]
        await state.until_in_flight(4)
        await asyncio.sleep(0.2)  # any request past the bound would arrive meanwhile
        assert state.in_flight == 4
        state.release.set()
        statuses = await asyncio.wait_for(asyncio.gather(*requests), timeout=30)
    assert statuses == [200] * 40
    assert state.most == 4
    assert len(state.peers) <= 4, "a connection per request: the bodies were not read in the slot"


async def test_watches_do_not_take_a_slot(server: tuple[Server, str]) -> None:
    state, url = server
    async with _session(1) as session:
        watches = [await session.get(f"{url}/apis/x", params={"watch": "true"}) for _ in range(3)]
        assert state.watching == 3
        first = [await watch.content.readline() for watch in watches]
        assert first == [b'{"type":"ADDED"}\n'] * 3

        # With every watch open, a request still gets the only slot.
        request = asyncio.create_task(session.get(f"{url}/apis/x/one"))
        await state.until_in_flight(1)
        state.release.set()
        response = await asyncio.wait_for(request, timeout=10)
        assert response.status == 200
        for watch in watches:
            watch.close()


async def test_a_status_write_overtakes_the_requests_queued_before_it(
    server: tuple[Server, str],
) -> None:
    """In a burst, a new object's first word (the only status write through kopf's session)
    does not wait behind the finalizer patches, Events and records queued before it."""
    state, url = server
    async with _session(1) as session:

        async def send(method: str, path: str) -> None:
            async with session.request(method, f"{url}{path}", json={}) as response:
                await response.read()

        holder = asyncio.create_task(send("GET", "/holder"))
        await state.until_in_flight(1)
        queued = [
            asyncio.create_task(send("PATCH", "/apis/x/ns/a")),
            asyncio.create_task(send("POST", "/api/v1/events")),
        ]
        await asyncio.sleep(0.05)
        queued.append(asyncio.create_task(send("PATCH", "/apis/x/ns/b/status")))
        queued.append(asyncio.create_task(send("PATCH", "/apis/x/ns/c")))
        await asyncio.sleep(0.05)
        state.release.set()
        await asyncio.wait_for(asyncio.gather(holder, *queued), timeout=10)
    assert state.arrived == [
        "GET /holder",
        "PATCH /apis/x/ns/b/status",
        "PATCH /apis/x/ns/a",
        "POST /api/v1/events",
        "PATCH /apis/x/ns/c",
    ]


async def test_a_request_cancelled_while_queued_takes_no_slot(server: tuple[Server, str]) -> None:
    state, url = server
    async with _session(1) as session:
        holder = asyncio.create_task(session.get(f"{url}/holder"))
        await state.until_in_flight(1)
        cancelled = asyncio.create_task(session.get(f"{url}/cancelled"))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        state.release.set()
        await asyncio.wait_for(holder, timeout=10)
        after = await asyncio.wait_for(session.get(f"{url}/after"), timeout=10)
        assert after.status == 200
    assert "GET /cancelled" not in state.arrived


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        apisession.RequestBound(0)
