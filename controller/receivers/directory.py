"""What the receiver reads from the API server, cached briefly: WebhookReceivers by path, with
their Secrets' credentials, and the RunnerImages of a namespace.

A receiver is found by the path its Secret's token gives now (`paths.webhook_path`), not by its
`status.webhookPath`: a rotated token's new URL works within `RECEIVERS_TTL`, the old one stops.

The server runs on every replica, the standby ones too (kopf's watches and indexes pause there),
so it lists rather than watches: each list is kept `ttl` seconds and shared by the requests that
wait for it, so a burst of events costs one list per namespace per `ttl`. A path not found lists
the receivers again, at most once per `miss_interval` (a flood of made-up paths costs no more).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from controller import kube as kube_
from controller.api import identity
from controller.receivers import authentication, events, matching, paths

RECEIVERS_TTL = 10.0
RUNNER_IMAGES_TTL = 1.0
MISS_INTERVAL = 1.0
RETRY_AFTER = 5

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Receiver:
    namespace: str
    name: str
    kind: str
    credentials: authentication.Credentials
    path: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class _Cached(Generic[T]):
    """One value loaded at most once per `ttl` seconds; concurrent readers share one load."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._value: tuple[float, T] | None = None
        self._loading: asyncio.Future[T] | None = None

    def age(self) -> float:
        return float("inf") if self._value is None else self._clock() - self._value[0]

    async def get(self, load: Callable[[], Awaitable[T]], *, fresh: bool = False) -> T:
        if self._value is not None and not fresh and self.age() < self._ttl:
            return self._value[1]
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load(load))
        return await asyncio.shield(self._loading)

    async def _load(self, load: Callable[[], Awaitable[T]]) -> T:
        started = self._clock()
        try:
            value = await load()
            self._value = (started, value)
            return value
        finally:
            self._loading = None


class Directory:
    def __init__(
        self,
        kube: kube_.Kube,
        namespaces: tuple[str, ...],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._namespaces = namespaces
        self._clock = clock
        self._receivers: _Cached[dict[str, Receiver]] = _Cached(RECEIVERS_TTL, clock)
        self._runner_images: dict[str, _Cached[list[matching.Candidate]]] = {}

    async def receiver(self, path: str) -> Receiver | None:
        """The WebhookReceiver whose `status.webhookPath` is `path`, if any."""
        found = (await self._receivers.get(self._list_receivers)).get(path)
        if found is None and self._receivers.age() >= MISS_INTERVAL:
            found = (await self._receivers.get(self._list_receivers, fresh=True)).get(path)
        return found

    async def candidates(self, namespace: str) -> list[matching.Candidate]:
        """The RunnerImages of `namespace`, as the matching reads them."""
        cached = self._runner_images.setdefault(namespace, _Cached(RUNNER_IMAGES_TTL, self._clock))
        return await cached.get(lambda: self._list_runner_images(namespace))

    async def _list_receivers(self) -> dict[str, Receiver]:
        bodies = []
        for namespace in self._namespaces or (None,):
            bodies += await _unavailable_on_error(
                self._kube.list_custom(
                    group=identity.GROUP,
                    version=identity.VERSION,
                    plural=identity.RECEIVER_PLURAL,
                    namespace=namespace,
                )
            )
        found = await asyncio.gather(*(self._receiver(body) for body in bodies))
        return {receiver.path: receiver for receiver in found if receiver is not None}

    async def _receiver(self, body: dict[str, Any]) -> Receiver | None:
        """The receiver `body` declares, None if it cannot verify events (its status says why)."""
        metadata = body.get("metadata") or {}
        spec = body.get("spec") or {}
        kind = spec.get("type")
        secret_name = (spec.get("secretRef") or {}).get("name")
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        if kind not in events.TYPES or not isinstance(secret_name, str):
            return None
        secret = await _unavailable_on_error(
            self._kube.read_secret(namespace=namespace, name=secret_name)
        )
        try:
            data = None if secret is None else secret.data
            credentials = paths.credentials(data, secret_name=secret_name)
        except paths.SecretProblem:
            return None
        path = paths.webhook_path(credentials.token, name=name, namespace=namespace)
        return Receiver(namespace, name, str(kind), credentials, path)

    async def _list_runner_images(self, namespace: str) -> list[matching.Candidate]:
        bodies = await _unavailable_on_error(
            self._kube.list_custom(
                group=identity.GROUP,
                version=identity.VERSION,
                plural=identity.PLURAL,
                namespace=namespace,
            )
        )
        return [matching.Candidate.of(body) for body in bodies]


async def _unavailable_on_error(call: Awaitable[T]) -> T:
    try:
        return await call
    except kube_.KubeError as error:
        raise events.Refused(
            503, events.UNAVAILABLE, f"the API server could not be read ({error.status})"
        ) from None
