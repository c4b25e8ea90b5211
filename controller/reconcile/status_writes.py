"""A reconcile's status write: made under the object's lock, retried while the API server is away.

kopf applies a handler's status patch after the handler returns, outside the object's lock, and
retries it by itself while the API server cannot be reached; the patches of a timer and of the
object's event handler are retried independently of each other. After a long outage they landed
in any order: an older reconcile's patch (`Ready=False` for the outage, `syncedRevision: null`)
after a newer one's (`Ready=True`, the catalog synced), and the status stayed as the older one
left it (`tests/e2e/test_kills.py`, the API server away 90 s). Written here, under the lock, the
next reconcile of an object starts only once the last one's status is in the API server: the
writes land in the order they were made.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from controller import backoff, kube
from controller.api import identity

logger = logging.getLogger(__name__)

TRANSIENT = frozenset({0, 429, 500, 502, 503, 504})
"""The failures worth waiting out: unreachable (0), overloaded, or failing for now."""


class StatusClient(Protocol):
    async def patch_status(
        self, *, group: str, version: str, plural: str, namespace: str, name: str, patch: Any
    ) -> str: ...


async def write(
    client: StatusClient,
    *,
    namespace: str,
    name: str,
    patch: Mapping[str, Any],
    waits: Sequence[float] = backoff.API_SERVER_WAITS,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> str | None:
    """Merge-patch `patch` into the RunnerImage's status; the resourceVersion it made, or None
    when the object is gone (404: nothing left to say). A transient failure is tried again after
    each of `waits`; anything else, or the last failure, raises `kube.KubeError`."""
    for attempt, wait in enumerate((*waits, None), start=1):
        try:
            return await client.patch_status(
                group=identity.GROUP,
                version=identity.VERSION,
                plural=identity.PLURAL,
                namespace=namespace,
                name=name,
                patch=dict(patch),
            )
        except kube.KubeError as error:
            if error.status == 404:
                return None
            if wait is None or error.status not in TRANSIENT:
                raise
            logger.warning(
                "status not written (attempt %d): %s; again in %.0f s", attempt, error, wait
            )
            await sleep(wait)
    raise AssertionError("unreachable: the last attempt raises or returns")
