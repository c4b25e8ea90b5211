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
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

import aiohttp

REQUESTS_IN_FLIGHT = 16
"""Requests to the API server at once, watches aside. The API server answers a patch in a few
milliseconds: 16 keep a 2-core operator busy, and a burst queues here instead of in handshakes."""


def is_watch(request: aiohttp.ClientRequest) -> bool:
    """Whether `request` is a watch stream (kopf asks with `?watch=true`)."""
    return request.url.query.get("watch", "").lower() in {"true", "1"}


class RequestBound:
    """An aiohttp client middleware: at most `limit` requests other than watches at once."""

    def __init__(self, limit: int = REQUESTS_IN_FLIGHT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        self.limit = limit
        self.in_flight = 0
        self._slots = asyncio.Semaphore(limit)

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if is_watch(request):
            return await handler(request)
        async with self._slots:
            self.in_flight += 1
            try:
                response = await handler(request)
                # Read here, in the slot: the body is kept for the caller, and the connection
                # goes back to the pool before the next request takes the slot.
                await response.read()
                return response
            finally:
                self.in_flight -= 1


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
