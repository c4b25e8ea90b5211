"""The HTTP session kopf talks to the API server through: kopf's own, with its requests bounded.

kopf's built-in session has no connection limit. A burst of RunnerImages made as many
concurrent requests as objects in flight, each on a TLS connection of its own: a handshake on
both sides, and a connection's buffers that stayed resident after it closed. The operator's RSS
after a burst of 1,000 followed how fast they were created, from 250 MiB to 640 MiB
(`tests/benchmarks/test_burst_figures.py`).

The bound is on requests in flight, not on connections: watches are streams that last minutes,
and a connector limit would make them wait behind patches (or never start, with fewer slots
than streams). Every request but a watch holds a slot until its whole body is read, so that
its connection is back in the pool, ready for the next one, when the slot is released.

A status write goes first (`is_status_write`): through kopf's session, that is only the first
word of a new RunnerImage (`handlers.first_cycle_status`; the reconcile writes its status
through `controller.kube`, and kopf keeps its progress in annotations). In a burst of
creates, the finalizer patches, Events and last-handled records of the objects before it
otherwise held the slots it waited for.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Mapping

import aiohttp

REQUESTS_IN_FLIGHT = 16
"""Requests to the API server at once, watches aside. The API server answers a patch in a few
milliseconds: 16 keep a 2-core operator busy, and a burst queues here instead of in handshakes."""


def is_watch(request: aiohttp.ClientRequest) -> bool:
    """Whether `request` is a watch stream (kopf asks with `?watch=true`)."""
    return request.url.query.get("watch", "").lower() in {"true", "1"}


def is_status_write(request: aiohttp.ClientRequest) -> bool:
    """Whether `request` writes a status (a PATCH of a `status` subresource)."""
    return request.method == "PATCH" and request.url.path.endswith("/status")


class PrioritySlots:
    """At most `limit` holders at once; when a slot frees, the urgent waiters come first, each
    kind in the order it came."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._other: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self, *, urgent: bool) -> None:
        if self.taken < self.limit and not self._urgent and not self._other:
            self.taken += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._other
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # given a slot as it was cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        self.taken -= 1
        while self.taken < self.limit:
            waiter = self._next()
            if waiter is None:
                return
            self.taken += 1
            waiter.set_result(None)

    def _next(self) -> asyncio.Future[None] | None:
        for queue in (self._urgent, self._other):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    return waiter
        return None


class RequestBound:
    """An aiohttp client middleware: at most `limit` requests other than watches at once, status
    writes first."""

    def __init__(self, limit: int = REQUESTS_IN_FLIGHT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        self.limit = limit
        self.in_flight = 0
        self._slots = PrioritySlots(limit)

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if is_watch(request):
            return await handler(request)
        await self._slots.acquire(urgent=is_status_write(request))
        self.in_flight += 1
        try:
            response = await handler(request)
            # Read here, in the slot: the body is kept for the caller, and the connection
            # goes back to the pool before the next request takes the slot.
            await response.read()
            return response
        finally:
            self.in_flight -= 1
            self._slots.release()


def session(
    *,
    ssl_context: ssl.SSLContext,
    headers: Mapping[str, str],
    proxy: str | None = None,
    trust_env: bool = False,
    limit: int = REQUESTS_IN_FLIGHT,
) -> aiohttp.ClientSession:
    """A session as kopf makes one (its TLS, headers and proxy), with requests bounded.

    Call it on the running event loop: the session and its connector belong to it.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=ssl_context),
        headers=dict(headers),
        proxy=proxy,
        trust_env=trust_env,
        middlewares=(RequestBound(limit),),
    )
