"""The registry as the steps reach it: a client per set of push credentials, a digest lookup.

`Registry` holds what every client of the operator shares (registries reached over plain HTTP,
a test transport, the bearer tokens fetched so far, the immutable content kept); `client` makes
one for the push Secret's credentials (or anonymous) and `resolve` looks up the digest a
reference points at, its failures already reconcile errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from controller import errors
from controller.registry import client as registry_client


@dataclasses.dataclass(frozen=True)
class Registry:
    insecure_hosts: frozenset[str] = frozenset()
    """Registries reached over plain HTTP (a local registry)."""
    transport: Any = None
    """An httpx transport for the registry client (tests only); None: the network."""
    timeout: float = 30.0
    """Seconds for one whole answer of the registry (`ADE_REGISTRY_TIMEOUT`)."""
    tokens: registry_client.TokenStore = dataclasses.field(
        default_factory=registry_client.TokenStore, compare=False, repr=False
    )
    """The registries' challenges and bearer tokens, shared by every client made here (per
    credentials): a lookup sends its token at once instead of a 401 and a token request first."""
    kept: registry_client.Contents = dataclasses.field(
        default_factory=registry_client.Contents, compare=False, repr=False
    )
    """What the clients made here read by digest and were asked to keep (a base image's manifest
    and config, read on every verification), per credentials."""

    def client(self, docker_config: Mapping[str, Any] | None) -> registry_client.RegistryClient:
        """A client with the credentials of `docker_config` (None: anonymous)."""
        try:
            credentials = registry_client.credentials_from_docker_config(docker_config)
        except ValueError as error:
            raise errors.StalledError(
                "SecretInvalid", f"spec.image.pushSecretRef: {error}"
            ) from None
        return registry_client.RegistryClient(
            credentials=credentials,
            insecure_hosts=self.insecure_hosts,
            transport=self.transport,
            timeout=self.timeout,
            shared=self.tokens,
            kept=self.kept,
        )

    async def resolve(
        self,
        reference: str,
        *,
        docker_config: Mapping[str, Any] | None,
        auth_reason: str,
        not_found: errors.ReconcileError | None,
        client: registry_client.RegistryClient | None = None,
    ) -> str | None:
        """The digest `reference` resolves to; None when it does not exist and `not_found` is
        None. Registry failures become reconcile errors: auth -> Stalled(`auth_reason`),
        unreachable or throttled -> Transient (honouring Retry-After). `client`: one the caller
        made with `docker_config`'s credentials and keeps using (its token and connection);
        None: a client for this lookup alone."""
        registry = client or self.client(docker_config)
        try:
            return (await registry.resolve(ref=reference)).digest
        except registry_client.ManifestNotFound:
            if not_found is None:
                return None
            raise not_found from None
        except registry_client.RegistryError as error:
            raise registry_client.as_reconcile_error(error, auth_reason=auth_reason) from None
        finally:
            if client is None:
                await registry.aclose()
