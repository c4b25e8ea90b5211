"""Service principal credentials from a Secret: validation naming the key, secrecy, the wrapper."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core import credentials as core_credentials
from azure.core import exceptions as azure_exceptions
from azure.identity import aio as identity

from controller import errors
from controller.azure import credentials
from controller.azure import errors as azure_errors
from controller.azure.credentials import ClientSecret, CredentialsInvalid
from controller.azure.settings import AzureSettings

FIELD = "spec.registryAccess.acr.credentialsSecretRef"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "3f1e2d3c-0000-4000-8000-00000000c11e"
SECRET = "Qx8~sEcReT.v4lue_9Z"


def data(**overrides: bytes | None) -> dict[str, bytes]:
    values: dict[str, bytes | None] = {
        "tenantId": TENANT.encode(),
        "clientId": CLIENT.encode(),
        "clientSecret": SECRET.encode() + b"\n",
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def test_reads_the_three_keys() -> None:
    secret = credentials.client_secret_from_secret(data(), field=FIELD)
    assert secret == ClientSecret(TENANT, CLIENT, SECRET)
    assert secret.identity == (TENANT, CLIENT)
    assert CLIENT in secret.describe()


def test_repr_and_str_hide_the_secret() -> None:
    secret = credentials.client_secret_from_secret(data(), field=FIELD)
    assert SECRET not in repr(secret)
    assert SECRET not in str(secret)
    assert SECRET not in f"{secret}"
    assert CLIENT in repr(secret)


@pytest.mark.parametrize("key", ["tenantId", "clientId", "clientSecret"])
def test_a_missing_key_is_named(key: str) -> None:
    with pytest.raises(CredentialsInvalid) as caught:
        credentials.client_secret_from_secret(data(**{key: None}), field=FIELD)
    error = caught.value
    assert isinstance(error, errors.StalledError)
    assert error.reason == "AzureCredentialsInvalid"
    assert error.message == f"{FIELD}: Secret key {key} is missing"
    assert error.key == key


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("clientSecret", b"  \n", "is empty"),
        ("clientSecret", b"\xff\xfe", "is not UTF-8 text"),
        ("clientSecret", b"two words", "must not contain spaces"),
        ("tenantId", b"contoso/evil", "is not a tenant id"),
        ("clientId", b"my-app", "is not an application (client) id"),
    ],
)
def test_unusable_values_are_named_never_shown(key: str, value: bytes, problem: str) -> None:
    with pytest.raises(CredentialsInvalid) as caught:
        credentials.client_secret_from_secret(data(**{key: value}), field=FIELD)
    assert caught.value.message.startswith(f"{FIELD}: Secret key {key} {problem}")
    assert value.decode(errors="replace").strip() not in caught.value.message or not value.strip()


def test_a_domain_tenant_is_accepted() -> None:
    secret = credentials.client_secret_from_secret(
        data(tenantId=b"contoso.onmicrosoft.com"), field=FIELD
    )
    assert secret.tenant_id == "contoso.onmicrosoft.com"


async def test_builds_a_client_secret_credential_with_the_authority() -> None:
    config = AzureSettings(authority_host="https://login.microsoftonline.us")
    secret = ClientSecret(TENANT, CLIENT, SECRET)
    credential = credentials.credential(config, secret)
    try:
        inner = credential._inner
        assert isinstance(inner, identity.ClientSecretCredential)
        assert credential.secrets == (SECRET,)
        assert SECRET not in repr(credential)
    finally:
        await credential.close()


async def test_builds_the_default_credential_without_a_secret() -> None:
    credential = credentials.credential(AzureSettings(), None)
    try:
        assert isinstance(credential._inner, identity.DefaultAzureCredential)
        assert "own Azure identity" in credential.description
    finally:
        await credential.close()


class _Refusing:
    """An inner credential that fails as azure-identity does."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> core_credentials.AccessToken:
        raise azure_exceptions.ClientAuthenticationError(message=self.message)

    async def get_token_info(
        self, *scopes: str, options: core_credentials.TokenRequestOptions | None = None
    ) -> core_credentials.AccessTokenInfo:
        raise azure_exceptions.ClientAuthenticationError(message=self.message)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> _Refusing:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def test_wrapper_turns_identity_errors_into_scrubbed_rejections() -> None:
    inner = _Refusing(f"ClientSecretCredential.get_token failed: AADSTS7000215 {SECRET}")
    wrapped = credentials.GuardedCredential(inner, description="client x", secrets=(SECRET,))
    for call in (wrapped.get_token, wrapped.get_token_info):
        with pytest.raises(azure_errors.CredentialRejected) as caught:
            await call("https://management.azure.com/.default")
        assert SECRET not in str(caught.value)
        assert "AADSTS7000215" in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
    async with wrapped:
        pass
    assert inner.closed
