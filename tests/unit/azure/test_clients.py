"""The client factory: one set per (subscription, identity), replaced when a secret changes; the
SDKs behind it loaded with the first clients, not with the operator."""

from __future__ import annotations

import subprocess
import sys

import pytest
from azure.core.pipeline import policies as core_policies

from controller.azure import clients
from controller.azure.credentials import ClientSecret
from controller.azure.settings import AzureSettings

SUB = "00000000-0000-4000-8000-000000000001"
OTHER_SUB = "00000000-0000-4000-8000-000000000002"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "3f1e2d3c-0000-4000-8000-00000000c11e"


async def test_cached_per_subscription_and_identity() -> None:
    async with clients.AzureClients(AzureSettings()) as factory:
        secret = ClientSecret(TENANT, CLIENT, "one")
        first = await factory.get(subscription_id=SUB, client_secret=secret)
        assert await factory.get(subscription_id=SUB.upper(), client_secret=secret) is first
        assert await factory.get(subscription_id=SUB, client_secret=None) is not first
        assert await factory.get(subscription_id=OTHER_SUB, client_secret=secret) is not first
        assert len(factory) == 3
        assert first.identity == f"client {CLIENT} (tenant {TENANT})"
        assert "own Azure identity" in (await factory.get(subscription_id=SUB)).identity


async def test_a_changed_secret_gets_new_clients() -> None:
    factory = clients.AzureClients(AzureSettings())
    old = await factory.get(subscription_id=SUB, client_secret=ClientSecret(TENANT, CLIENT, "one"))
    new = await factory.get(subscription_id=SUB, client_secret=ClientSecret(TENANT, CLIENT, "two"))
    assert new is not old
    assert len(factory) == 1
    assert new.secrets == ("two",)
    await factory.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await factory.get(subscription_id=SUB)


def test_client_options_point_at_the_configured_cloud() -> None:
    config = AzureSettings(
        resource_manager="https://management.usgovcloudapi.net",
        authority_host="https://login.microsoftonline.us",
        ca_bundle="/etc/ca.pem",
        retry_total=2,
    )
    options = clients.client_options(config)
    assert options["base_url"] == "https://management.usgovcloudapi.net"
    assert options["credential_scopes"] == ["https://management.usgovcloudapi.net/.default"]
    assert options["connection_verify"] == "/etc/ca.pem"
    retry = options["retry_policy"]
    assert isinstance(retry, clients.BoundedRetryPolicy)
    assert retry.total_retries == 2
    assert retry.max_retry_after == config.max_retry_after
    assert type(options["http_logging_policy"]) is core_policies.SansIOHTTPPolicy
    assert clients.client_options(config)["retry_policy"] is not retry  # one per pipeline


@pytest.mark.parametrize("errors_so_far", range(10))
def test_retry_waits_are_azure_cores_through_controller_backoff(errors_so_far: int) -> None:
    """The same waits azure-core's own formula gives: none before the first retry, then 1 s
    doubling, at most `max_retry_after`."""
    retry = clients.client_options(AzureSettings(max_retry_after=30.0))["retry_policy"]
    settings = retry.configure_retries({})
    settings["history"] = [object()] * errors_so_far
    expected = core_policies.AsyncRetryPolicy.get_backoff_time(retry, settings)
    assert retry.get_backoff_time(settings) == expected
    assert expected == (0 if errors_so_far <= 1 else min(30.0, 2.0 ** (errors_so_far - 2)))


_LOADED = (
    "import sys, asyncio\n"
    "import controller.handlers\n"
    "def heavy():\n"
    "    return sorted({m.split('.')[0] + '.' + m.split('.')[1] for m in sys.modules\n"
    "                   if m.startswith(('azure.identity', 'azure.mgmt'))})\n"
    "print(heavy())\n"
    "from controller.azure import clients, settings\n"
    "async def make():\n"
    "    async with clients.AzureClients(settings.AzureSettings()) as factory:\n"
    "        await factory.get(subscription_id='00000000-0000-4000-8000-000000000001')\n"
    "asyncio.run(make())\n"
    "print(heavy())\n"
)


def test_azure_identity_and_the_management_sdks_load_with_the_first_clients() -> None:
    # About 21 MiB of the operator's idle memory: paid only once a RunnerImage reaches Azure.
    found = subprocess.run(
        [sys.executable, "-c", _LOADED], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert found == ["[]", "['azure.identity', 'azure.mgmt']"]
