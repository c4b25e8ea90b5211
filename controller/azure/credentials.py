"""The Azure identity the operator acts as: a service principal from a Secret, or its own.

A Secret referenced by `credentialsSecretRef` holds a service principal:

| key | meaning |
| --- | --- |
| `tenantId` | the Entra ID tenant (a GUID or a domain such as `contoso.onmicrosoft.com`) |
| `clientId` | the application (client) id |
| `clientSecret` | one of its client secrets |

`client_secret_from_secret` reads and checks them (pure; a missing or unusable key is a
`CredentialsInvalid` naming the field and the key). `credential` builds the azure-identity async
credential: `ClientSecretCredential` for a Secret, else `DefaultAzureCredential` restricted to what
a pod has (environment, workload identity, managed identity, and the Azure CLI for a local run).
Both use the configured authority and CA bundle. Building does no I/O; the first token request
does.

The credential is wrapped (`GuardedCredential`) so that its failures become `CredentialRejected`
with a scrubbed message, told apart from Resource Manager's own 401, and never retried.
A `ClientSecret` never shows its secret in `repr` or `str`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from azure.core import credentials as core_credentials
from azure.core import exceptions as azure_exceptions
from azure.core.credentials_async import AsyncTokenCredential

from controller import errors
from controller.azure import errors as azure_errors
from controller.azure import names, settings

KEYS = ("tenantId", "clientId", "clientSecret")

_TENANT = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]*$")
_WHITESPACE = re.compile(r"[\s\x00-\x1f\x7f]")


class CredentialsInvalid(errors.StalledError):
    """The credentials Secret cannot be used: `key` names the key at fault, never its value."""

    def __init__(self, field: str, key: str, problem: str) -> None:
        super().__init__(
            azure_errors.Reason.CREDENTIALS_INVALID, f"{field}: Secret key {key} {problem}"
        )
        self.field = field
        self.key = key


@dataclasses.dataclass(frozen=True, repr=False)
class ClientSecret:
    """A service principal and one of its client secrets."""

    tenant_id: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return f"ClientSecret(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, ***)"

    __str__ = __repr__

    @property
    def identity(self) -> tuple[str, str]:
        """Who this is, without the secret: (tenant, client)."""
        return (self.tenant_id.lower(), self.client_id.lower())

    def describe(self) -> str:
        return f"client {self.client_id} (tenant {self.tenant_id})"


def client_secret_from_secret(data: Mapping[str, bytes], *, field: str) -> ClientSecret:
    """Read `tenantId`, `clientId`, `clientSecret` from a Secret's decoded `data`.

    `field` is the spec path of the Secret reference, for messages
    (`spec.registryAccess.acr.credentialsSecretRef`). Surrounding whitespace (a newline left by
    `--from-file`) is dropped.
    """

    def text(key: str) -> str:
        raw = data.get(key)
        if raw is None:
            raise CredentialsInvalid(field, key, "is missing")
        try:
            value = raw.decode().strip()
        except UnicodeDecodeError:
            raise CredentialsInvalid(field, key, "is not UTF-8 text") from None
        if not value:
            raise CredentialsInvalid(field, key, "is empty")
        if _WHITESPACE.search(value):
            raise CredentialsInvalid(field, key, "must not contain spaces or control characters")
        return value

    tenant_id, client_id, secret = (text(key) for key in KEYS)
    if not _TENANT.match(tenant_id):
        raise CredentialsInvalid(field, "tenantId", "is not a tenant id (a GUID or a domain name)")
    if not names.is_guid(client_id):
        raise CredentialsInvalid(field, "clientId", "is not an application (client) id (a GUID)")
    return ClientSecret(tenant_id=tenant_id, client_id=client_id, client_secret=secret)


def describe(client_secret: ClientSecret | None) -> str:
    """The identity in words, for messages."""
    if client_secret is None:
        return "the operator's own Azure identity (workload or managed identity)"
    return client_secret.describe()


def credential(
    config: settings.AzureSettings, client_secret: ClientSecret | None
) -> GuardedCredential:
    """The async credential for `client_secret`, or the operator's own identity when None."""
    # azure-identity (with MSAL and cryptography, about 12 MiB) is loaded with the first
    # credential: an operator whose RunnerImages never reach Azure never pays for it.
    from azure.identity import aio as identity  # noqa: PLC0415

    common: dict[str, Any] = {
        "authority": config.authority_host,
        "connection_verify": config.verify,
        "connection_timeout": config.connection_timeout,
        "read_timeout": config.read_timeout,
        "retry_total": config.retry_total,
    }
    inner: AsyncTokenCredential
    if client_secret is not None:
        inner = identity.ClientSecretCredential(
            client_secret.tenant_id, client_secret.client_id, client_secret.client_secret, **common
        )
        secrets: tuple[str, ...] = (client_secret.client_secret,)
    else:
        inner = identity.DefaultAzureCredential(
            exclude_shared_token_cache_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_powershell_credential=True,
            exclude_developer_cli_credential=True,
            exclude_interactive_browser_credential=True,
            **common,
        )
        secrets = ()
    return GuardedCredential(inner, description=describe(client_secret), secrets=secrets)


class GuardedCredential:
    """An async token credential whose failures are `CredentialRejected`, scrubbed.

    Azure-identity raises `ClientAuthenticationError`, the same class the SDKs raise for a 401 from
    Resource Manager; wrapping tells the two apart. Connection errors to the authority stay what
    they are (transient).
    """

    def __init__(
        self, inner: AsyncTokenCredential, *, description: str, secrets: tuple[str, ...] = ()
    ) -> None:
        self._inner = inner
        self.description = description
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"GuardedCredential({self.description})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Literals that must never appear in a message."""
        return self._secrets

    def _scrubbed(self, error: azure_exceptions.ClientAuthenticationError) -> str:
        return azure_errors.scrub(str(error.message or type(error).__name__), self._secrets)

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> core_credentials.AccessToken:
        try:
            return await self._inner.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )
        except azure_errors.CredentialRejected:
            raise
        except azure_exceptions.ClientAuthenticationError as error:
            text = self._scrubbed(error)
        raise azure_errors.CredentialRejected(text)  # outside `except`: keeps no trace of the cause

    async def get_token_info(
        self, *scopes: str, options: core_credentials.TokenRequestOptions | None = None
    ) -> core_credentials.AccessTokenInfo:
        get_info = getattr(self._inner, "get_token_info", None)
        try:
            if get_info is None:
                token = await self._inner.get_token(*scopes)
                return core_credentials.AccessTokenInfo(token.token, token.expires_on)
            info: core_credentials.AccessTokenInfo = await get_info(*scopes, options=options)
            return info
        except azure_errors.CredentialRejected:
            raise
        except azure_exceptions.ClientAuthenticationError as error:
            text = self._scrubbed(error)
        raise azure_errors.CredentialRejected(text)

    async def close(self) -> None:
        await self._inner.close()

    async def __aenter__(self) -> GuardedCredential:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc_value, traceback)
