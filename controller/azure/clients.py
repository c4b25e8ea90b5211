"""One set of Azure management clients per (subscription, identity), made once and closed at exit.

`AzureClients` is the factory the operator keeps for its lifetime: `get()` returns the `Clients`
(Container Registry, Authorization, DevCenter; async SDK clients sharing one credential) for a
subscription and an identity, creating them on first use. A Secret whose client secret changed
replaces the cached entry; the old one is closed with the factory (`aclose()`), not while a call
may still use it.

Every client talks to `settings.resource_manager` with the settings' token scope and CA bundle.
Retries are azure-core's (429, 408, 5xx, connection errors; Retry-After honoured), bounded by
`retry_total`, and a Retry-After longer than `max_retry_after` is not slept in-process: the 429
surfaces and its Retry-After travels to the caller in the `TransientError`. azure-core's HTTP
logging is replaced by a no-op: the operator logs one line per operation itself (`access`), so
no header or URL of a token request can reach the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from azure.core.pipeline import PipelineResponse
from azure.core.pipeline import policies as core_policies

from controller import backoff
from controller.azure import credentials, settings

if TYPE_CHECKING:  # the SDK's management clients are loaded with the first clients made
    from azure.mgmt.authorization.v2022_04_01.aio import AuthorizationManagementClient
    from azure.mgmt.containerregistry.aio import ContainerRegistryManagementClient
    from azure.mgmt.devcenter.aio import DevCenterMgmtClient

logger = logging.getLogger(__name__)

USER_AGENT = "ade-runner-operator"


class BoundedRetryPolicy(core_policies.AsyncRetryPolicy):  # type: ignore[type-arg]
    """azure-core's retry policy that will not sleep a Retry-After longer than `max_retry_after`."""

    def __init__(self, *, max_retry_after: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_retry_after = max_retry_after

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        if not super().is_retry(settings, response):
            return False
        after = self.get_retry_after(response)
        return after is None or after <= self.max_retry_after

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        """azure-core's numbers through `controller.backoff`: no wait before the first retry, then
        twice `retry_backoff_factor` (1 s), doubling, at most `retry_backoff_max`."""
        retries = len(settings["history"]) - 1
        if retries < 1:
            return 0.0
        return backoff.delay(retries, base=2 * settings["backoff"], cap=settings["max_backoff"])


@dataclasses.dataclass(frozen=True, eq=False)
class Clients:
    """The SDK clients for one subscription, acting as one identity."""

    subscription_id: str
    settings: settings.AzureSettings
    credential: credentials.GuardedCredential
    registries: ContainerRegistryManagementClient
    authorization: AuthorizationManagementClient
    devcenter: DevCenterMgmtClient

    @property
    def identity(self) -> str:
        """Who the calls are made as, in words (never a secret)."""
        return self.credential.description

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.credential.secrets

    async def aclose(self) -> None:
        for client in (self.registries, self.authorization, self.devcenter):
            await client.close()
        await self.credential.close()


def client_options(config: settings.AzureSettings) -> dict[str, Any]:
    """Keyword arguments shared by the three SDK clients (a fresh retry policy each)."""
    return {
        "base_url": config.resource_manager,
        "credential_scopes": [config.scope],
        "connection_verify": config.verify,
        "connection_timeout": config.connection_timeout,
        "read_timeout": config.read_timeout,
        "polling_interval": config.polling_interval,
        "retry_policy": BoundedRetryPolicy(
            max_retry_after=config.max_retry_after,
            retry_total=config.retry_total,
            retry_backoff_factor=0.5,
            retry_backoff_max=int(config.max_retry_after),
            timeout=int(config.timeout),
        ),
        "http_logging_policy": core_policies.SansIOHTTPPolicy(),
        "logging_enable": False,
        "user_agent": USER_AGENT,
    }


def make_clients(
    config: settings.AzureSettings,
    *,
    subscription_id: str,
    client_secret: credentials.ClientSecret | None,
) -> Clients:
    """New clients (no I/O until the first call)."""
    # The management SDKs (about 9 MiB) load with the first clients, not with the operator.
    from azure.mgmt.authorization.v2022_04_01.aio import (  # noqa: PLC0415
        AuthorizationManagementClient,
    )
    from azure.mgmt.containerregistry.aio import ContainerRegistryManagementClient  # noqa: PLC0415
    from azure.mgmt.devcenter.aio import DevCenterMgmtClient  # noqa: PLC0415

    credential = credentials.credential(config, client_secret)
    return Clients(
        subscription_id=subscription_id,
        settings=config,
        credential=credential,
        registries=ContainerRegistryManagementClient(
            credential, subscription_id, **client_options(config)
        ),
        authorization=AuthorizationManagementClient(
            credential, subscription_id, **client_options(config)
        ),
        devcenter=DevCenterMgmtClient(credential, subscription_id, **client_options(config)),
    )


_Key = tuple[str, tuple[str, str] | None]


class AzureClients:
    """Cached `Clients` per (subscription, identity); `aclose()` closes them all."""

    def __init__(self, config: settings.AzureSettings) -> None:
        self.settings = config
        self._cached: dict[_Key, tuple[credentials.ClientSecret | None, Clients]] = {}
        self._retired: list[Clients] = []
        self._lock = asyncio.Lock()
        self._closed = False

    def __len__(self) -> int:
        return len(self._cached)

    async def get(
        self, *, subscription_id: str, client_secret: credentials.ClientSecret | None = None
    ) -> Clients:
        """The clients for `subscription_id` as `client_secret` (None: the operator's identity)."""
        key: _Key = (
            subscription_id.lower(),
            client_secret.identity if client_secret is not None else None,
        )
        async with self._lock:
            if self._closed:
                raise RuntimeError("AzureClients is closed")
            cached = self._cached.get(key)
            if cached is not None and cached[0] == client_secret:
                return cached[1]
            if cached is not None:
                logger.info("Azure credentials of %s changed: new clients", cached[1].identity)
                self._retired.append(cached[1])
            clients = make_clients(
                self.settings,
                subscription_id=subscription_id,
                client_secret=client_secret,
            )
            self._cached[key] = (client_secret, clients)
            return clients

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            everything = [clients for _, clients in self._cached.values()] + self._retired
            self._cached.clear()
            self._retired.clear()
        for clients in everything:
            try:
                await clients.aclose()
            except Exception:
                logger.warning(
                    "closing Azure clients of %s failed", clients.identity, exc_info=True
                )

    async def __aenter__(self) -> AzureClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
