"""Registry access and catalog sync through the real Azure SDKs, against the ARM emulator.

`controller.azure` talks HTTPS to `tests.env.arm` (ARM and Entra ID on loopback, its own CA):
anonymous pull turned on through a long-running operation (and the emulator's hook flipping the
token server's switch), drift repaired, the Basic SKU refused, AcrPull granted idempotently,
permission and throttling answers mapped, a wrong client secret reported, catalog syncs. Every
test also checks that no client secret or issued token reaches an error message or a log record.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from controller import errors
from controller.api import spec
from controller.azure import access, clients, names
from controller.azure.credentials import ClientSecret
from controller.azure.settings import AzureSettings
from tests import counters
from tests.conftest import (
    ARM_CLIENT_ID,
    ARM_CLIENT_SECRET,
    ARM_OBJECT_ID,
    ARM_READER_CLIENT_ID,
    ARM_READER_SECRET,
    ARM_TENANT_ID,
)
from tests.env import arm as arm_
from tests.env import tokenserver

pytestmark = pytest.mark.e2e

SUB = "4c0ffee0-0000-4000-8000-0000000000a1"
GROUP = "rg-ade"
PRINCIPALS = ("1a1a1a1a-0000-4000-8000-000000000001", "2b2b2b2b-0000-4000-8000-000000000002")

OPERATOR = ClientSecret(ARM_TENANT_ID, ARM_CLIENT_ID, ARM_CLIENT_SECRET)
READER = ClientSecret(ARM_TENANT_ID, ARM_READER_CLIENT_ID, ARM_READER_SECRET)


def settings_for(arm: arm_.ArmEmulator, **bounds: Any) -> AzureSettings:
    return AzureSettings(
        resource_manager=arm.base_url,
        authority_host=arm.authority,
        credential_scope=arm_.ARM_SCOPE,
        ca_bundle=str(arm.ca_file),
        **bounds,
    )


class Calls:
    """The Azure operations `access` reported to the metrics since this was made."""

    def __init__(self) -> None:
        self._moved = counters.Moved()

    @property
    def seen(self) -> dict[tuple[str, str], float]:
        """How many times each (operation, status) was counted."""
        counts = self._moved.counts("ade_runner_azure_requests_total", "operation", "status")
        return {(operation, status): n for (operation, status), n in counts.items()}


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def leaks(arm: arm_.ArmEmulator, caplog: pytest.LogCaptureFixture) -> Iterator[list[BaseException]]:
    """Errors a test raised; after it, no secret or token in them or in any log record."""
    caplog.set_level(logging.DEBUG)
    raised: list[BaseException] = []
    yield raised
    issued = set(arm.identity._tokens)  # the tokens the emulator handed out
    forbidden = {ARM_CLIENT_SECRET, ARM_READER_SECRET, "wrong-s3cret-value", *issued}
    texts = [record.getMessage() for record in caplog.records]
    texts += [str(error) for error in raised]
    texts += [getattr(error, "message", "") for error in raised]
    for text in texts:
        for value in forbidden:
            assert value not in text
        assert "Bearer " not in text


@pytest.fixture
async def factory(arm: arm_.ArmEmulator, calls: Calls) -> AsyncIterator[clients.AzureClients]:
    async with clients.AzureClients(settings_for(arm)) as made:
        yield made


def add_registry(arm: arm_.ArmEmulator, name: str, **kwargs: Any) -> spec.AcrRef:
    arm.add_registry(SUB, GROUP, name, login_server=f"{name}.azurecr.io", **kwargs)
    return spec.AcrRef(subscription_id=SUB, resource_group=GROUP, name=name)


def writes(arm: arm_.ArmEmulator, method: str) -> list[arm_.RequestRecord]:
    return [r for r in arm.requests if r.method == method and not r.path.endswith("/token")]


async def test_anonymous_pull_is_enabled_through_the_operation(
    arm: arm_.ArmEmulator,
    factory: clients.AzureClients,
    calls: Calls,
    token_server: tokenserver.TokenServer,
    leaks: list[BaseException],
) -> None:
    token_server.set_anonymous_pull(False)
    acr = add_registry(arm, "contoso", anonymous_pull=False, public_network_access="Disabled")
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)

    started = time.monotonic()
    result = await access.ensure_anonymous_pull(clients=azure, acr=acr)
    elapsed = time.monotonic() - started

    assert result.drifted
    assert result.anonymous_pull_was is False
    assert result.public_network_access_was == "Disabled"
    assert result.sku == "Standard"
    assert result.registry_id == arm.registry("contoso").id
    assert "both are on now" in result.summary()
    state = arm.registry("contoso")
    assert state.anonymous_pull
    assert state.public_network_access == "Enabled"
    assert token_server.anonymous_pull  # the emulator's hook fired when the operation ended
    (patch,) = writes(arm, "PATCH")
    assert patch.body == {
        "properties": {"anonymousPullEnabled": True, "publicNetworkAccess": "Enabled"}
    }
    assert calls.seen == {("registries.get", "200"): 1, ("registries.update", "200"): 1}
    print(f"\nensure_anonymous_pull with LRO (GET, PATCH 201, 3 polls, GET): {elapsed:.3f}s")

    # Idempotent: a second look sends no PATCH.
    again = await access.ensure_anonymous_pull(clients=azure, acr=acr)
    assert not again.drifted
    assert again.anonymous_pull_was is True
    assert len(writes(arm, "PATCH")) == 1


async def test_drift_is_repaired_and_reported(
    arm: arm_.ArmEmulator,
    factory: clients.AzureClients,
    token_server: tokenserver.TokenServer,
    leaks: list[BaseException],
) -> None:
    acr = add_registry(arm, "drifty", anonymous_pull=True)
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
    assert not (await access.ensure_anonymous_pull(clients=azure, acr=acr)).drifted

    arm.set_registry("drifty", anonymous_pull=False)  # someone turned it off
    assert not token_server.anonymous_pull
    result = await access.ensure_anonymous_pull(clients=azure, acr=acr)
    assert result.drifted
    assert result.anonymous_pull_was is False
    assert result.public_network_access_was == "Enabled"
    assert arm.registry("drifty").anonymous_pull
    assert token_server.anonymous_pull


async def test_basic_sku_is_refused_without_a_patch(
    arm: arm_.ArmEmulator, factory: clients.AzureClients, leaks: list[BaseException]
) -> None:
    acr = add_registry(arm, "cheap")
    arm.set_registry(
        "cheap", sku="Basic"
    )  # the emulator's add_registry only makes Standard/Premium
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
    with pytest.raises(errors.StalledError) as caught:
        await access.ensure_anonymous_pull(clients=azure, acr=acr)
    leaks.append(caught.value)
    assert caught.value.reason == "RegistrySkuUnsupported"
    assert "Basic SKU" in caught.value.message
    assert "Standard or Premium" in caught.value.message
    assert not writes(arm, "PATCH")


async def test_failed_update_operation_is_transient(
    arm: arm_.ArmEmulator, factory: clients.AzureClients, leaks: list[BaseException]
) -> None:
    acr = add_registry(arm, "flaky")
    arm.inject_lro_failure("registries/flaky", code="InternalServerError")
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
    with pytest.raises(errors.TransientError) as caught:
        await access.ensure_anonymous_pull(clients=azure, acr=acr)
    leaks.append(caught.value)
    assert caught.value.reason == "RegistryUpdateFailed"
    assert "InternalServerError" in caught.value.message
    assert (await access.ensure_anonymous_pull(clients=azure, acr=acr)).drifted  # next try works


async def test_acr_pull_is_granted_once_and_never_deleted(
    arm: arm_.ArmEmulator,
    factory: clients.AzureClients,
    calls: Calls,
    leaks: list[BaseException],
) -> None:
    acr = add_registry(arm, "private", public_network_access="Disabled")
    scope = names.registry_id(acr)
    someone_else = arm.add_role_assignment(
        scope, "acdd72a7-3385-48ef-bd42-f606fba81ae7", PRINCIPALS[0]
    )
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)

    result = await access.ensure_acr_pull(clients=azure, acr=acr, principal_ids=PRINCIPALS)
    assert result.granted == PRINCIPALS
    assert result.drifted
    held = {(a.principal_id, a.role, a.name) for a in arm.role_assignments(scope)}
    definition = names.role_definition_id(SUB)
    for principal in PRINCIPALS:
        name = names.assignment_name(scope, definition, principal)
        assert (principal, arm_.ACR_PULL, name) in held
    assert all(
        a.principal_type == "ServicePrincipal"
        for a in arm.role_assignments(scope)
        if a.role == arm_.ACR_PULL
    )
    assert {c: n for c, n in calls.seen.items() if c[0] == "roleAssignments.create"} == {
        ("roleAssignments.create", "201"): 2
    }

    again = await access.ensure_acr_pull(clients=azure, acr=acr, principal_ids=PRINCIPALS)
    assert again.granted == ()
    assert again.present == PRINCIPALS
    assert not again.drifted
    assert len(writes(arm, "PUT")) == 2
    assert not writes(arm, "DELETE")
    assert someone_else in arm.role_assignments(scope)  # never touched


async def test_acr_pull_on_a_registry_serving_another_host_is_refused_before_any_grant(
    arm: arm_.ArmEmulator,
    factory: clients.AzureClients,
    leaks: list[BaseException],
) -> None:
    acr = add_registry(arm, "other")
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
    with pytest.raises(errors.StalledError) as caught:
        await access.ensure_acr_pull(
            clients=azure, acr=acr, principal_ids=PRINCIPALS, login_server="contoso.azurecr.io"
        )
    leaks.append(caught.value)
    assert caught.value.reason == "RegistryMismatch"
    assert "other.azurecr.io" in caught.value.message
    assert "contoso.azurecr.io" in caught.value.message
    assert not writes(arm, "PUT")
    ok = await access.ensure_acr_pull(
        clients=azure, acr=acr, principal_ids=PRINCIPALS, login_server="OTHER.azurecr.io"
    )
    assert ok.login_server == "other.azurecr.io"
    assert ok.granted == PRINCIPALS


async def test_an_assignment_under_another_name_is_success(
    arm: arm_.ArmEmulator,
    factory: clients.AzureClients,
    monkeypatch: pytest.MonkeyPatch,
    leaks: list[BaseException],
) -> None:
    acr = add_registry(arm, "shared")
    scope = names.registry_id(acr)
    theirs = arm.add_role_assignment(scope, arm_.ACR_PULL, PRINCIPALS[0], name=str(uuid.uuid4()))
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)

    # Listed: nothing to create.
    listed = await access.ensure_acr_pull(clients=azure, acr=acr, principal_ids=PRINCIPALS[:1])
    assert listed.present == PRINCIPALS[:1]
    assert not writes(arm, "PUT")

    # Not listed (another writer raced the list): the PUT's 409 RoleAssignmentExists is success.
    def empty(*args: Any, **kwargs: Any) -> _Empty:
        return _Empty()

    monkeypatch.setattr(azure.authorization.role_assignments, "list_for_scope", empty)
    raced = await access.ensure_acr_pull(clients=azure, acr=acr, principal_ids=PRINCIPALS[:1])
    assert raced.present == PRINCIPALS[:1]
    assert raced.granted == ()
    (put,) = writes(arm, "PUT")
    assert put.status == 409
    assert put.code == "RoleAssignmentExists"
    assert arm.role_assignments(scope) == [theirs]


class _Empty:
    """An empty listing, as `list_for_scope` returns one (an async iterable)."""

    def __aiter__(self) -> _Empty:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


async def test_forbidden_names_the_missing_action_and_principal(
    arm: arm_.ArmEmulator, factory: clients.AzureClients, leaks: list[BaseException]
) -> None:
    acr = add_registry(arm, "locked")
    reader = await factory.get(subscription_id=SUB, client_secret=READER)
    with pytest.raises(errors.StalledError) as caught:
        await access.ensure_anonymous_pull(clients=reader, acr=acr)
    leaks.append(caught.value)
    assert caught.value.reason == "RegistryAccessDenied"
    assert "Microsoft.ContainerRegistry/registries/write" in caught.value.message
    assert arm.principals[ARM_READER_CLIENT_ID].object_id in caught.value.message
    assert names.registry_id(acr) in caught.value.message

    with pytest.raises(errors.StalledError) as caught:
        await access.ensure_acr_pull(clients=reader, acr=acr, principal_ids=PRINCIPALS)
    leaks.append(caught.value)
    assert caught.value.reason == "RegistryAccessDenied"
    assert "Microsoft.Authorization/roleAssignments/write" in caught.value.message


async def test_missing_registry_is_named(
    arm: arm_.ArmEmulator, factory: clients.AzureClients, leaks: list[BaseException]
) -> None:
    arm.add_resource_group(SUB, GROUP)
    acr = spec.AcrRef(subscription_id=SUB, resource_group=GROUP, name="nowhere")
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
    with pytest.raises(errors.StalledError) as caught:
        await access.ensure_anonymous_pull(clients=azure, acr=acr)
    leaks.append(caught.value)
    assert caught.value.reason == "RegistryNotFound"
    assert names.registry_id(acr) in caught.value.message


async def test_throttling_waits_for_retry_after(
    arm: arm_.ArmEmulator, factory: clients.AzureClients, calls: Calls, leaks: list[BaseException]
) -> None:
    acr = add_registry(arm, "busy")
    arm.inject(method="GET", path_contains="registries/busy", status=429, retry_after=1, times=2)
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
    result = await access.ensure_anonymous_pull(clients=azure, acr=acr)
    assert result.drifted
    assert len(arm.retries) == 2
    assert arm.retry_after_violations == []
    assert calls.seen[("registries.get", "200")] == 1  # one operation, its retries inside it
    assert ("registries.get", "429") not in calls.seen


async def test_a_long_retry_after_goes_back_to_the_caller(
    arm: arm_.ArmEmulator, calls: Calls, leaks: list[BaseException]
) -> None:
    acr = add_registry(arm, "slow")
    arm.inject(method="GET", path_contains="registries/slow", status=429, retry_after=120)
    async with clients.AzureClients(settings_for(arm, max_retry_after=5)) as factory:
        azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
        started = time.monotonic()
        with pytest.raises(errors.TransientError) as caught:
            await access.ensure_anonymous_pull(clients=azure, acr=acr)
    leaks.append(caught.value)
    assert time.monotonic() - started < 5
    assert caught.value.reason == "AzureThrottled"
    assert caught.value.retry_after == 120
    assert calls.seen == {("registries.get", "429"): 1}


async def test_retries_are_bounded(arm: arm_.ArmEmulator, leaks: list[BaseException]) -> None:
    acr = add_registry(arm, "down")
    arm.inject(method="GET", path_contains="registries/down", status=503, times=10)
    async with clients.AzureClients(settings_for(arm, retry_total=2)) as factory:
        azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
        with pytest.raises(errors.TransientError) as caught:
            await access.ensure_anonymous_pull(clients=azure, acr=acr)
    leaks.append(caught.value)
    assert caught.value.reason == "AzureUnavailable"
    assert len([r for r in arm.requests if r.fault]) == 3  # one try and two retries


async def test_the_whole_call_is_bounded_by_the_timeout(
    arm: arm_.ArmEmulator, leaks: list[BaseException]
) -> None:
    acr = add_registry(arm, "stuck")
    arm.inject(method="GET", path_contains="registries/stuck", status=429, retry_after=2, times=9)
    async with clients.AzureClients(settings_for(arm, timeout=1.0)) as factory:
        azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
        started = time.monotonic()
        with pytest.raises(errors.TransientError) as caught:
            await access.ensure_anonymous_pull(clients=azure, acr=acr)
    leaks.append(caught.value)
    assert time.monotonic() - started < 1.9
    assert caught.value.reason == "AzureUnavailable"
    assert "did not finish within 1s" in caught.value.message


async def test_a_wrong_client_secret_is_reported_without_it(
    arm: arm_.ArmEmulator,
    factory: clients.AzureClients,
    calls: Calls,
    leaks: list[BaseException],
) -> None:
    acr = add_registry(arm, "guarded")
    wrong = ClientSecret(ARM_TENANT_ID, ARM_CLIENT_ID, "wrong-s3cret-value")
    azure = await factory.get(subscription_id=SUB, client_secret=wrong)
    with pytest.raises(errors.StalledError) as caught:
        await access.ensure_anonymous_pull(clients=azure, acr=acr)
    leaks.append(caught.value)
    assert caught.value.reason == "AzureCredentialsInvalid"
    assert "AADSTS7000215" in caught.value.message
    assert ARM_CLIENT_ID in caught.value.message
    assert calls.seen == {("registries.get", "credentials"): 1}
    assert not [r for r in arm.requests if "registries" in r.path]  # never reached ARM


async def test_catalog_sync_on_a_dev_center_and_a_project(
    arm: arm_.ArmEmulator,
    factory: clients.AzureClients,
    calls: Calls,
    leaks: list[BaseException],
) -> None:
    arm.add_catalog(SUB, GROUP, "runners", dev_center="dc-ade")
    arm.add_catalog(SUB, GROUP, "team", project="proj-ade")
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)

    on_dev_center = spec.CatalogSync(SUB, GROUP, "runners", dev_center="dc-ade")
    result = await access.sync_catalog(clients=azure, target=on_dev_center)
    assert result.catalog_id == names.catalog_id(on_dev_center)
    on_project = spec.CatalogSync(SUB, GROUP, "team", project="proj-ade")
    await access.sync_catalog(clients=azure, target=on_project)

    synced = [(s.parent_kind, s.parent, s.catalog, s.status, s.client_id) for s in arm.syncs]
    assert synced == [
        ("devcenters", "dc-ade", "runners", "Succeeded", ARM_CLIENT_ID),
        ("projects", "proj-ade", "team", "Succeeded", ARM_CLIENT_ID),
    ]
    assert {op: n for (op, _), n in calls.seen.items()} == {
        "catalogs.sync": 1,
        "projectCatalogs.sync": 1,
    }


async def test_catalog_sync_failures(
    arm: arm_.ArmEmulator, factory: clients.AzureClients, leaks: list[BaseException]
) -> None:
    arm.add_catalog(SUB, GROUP, "runners", dev_center="dc-ade")
    azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
    missing = spec.CatalogSync(SUB, GROUP, "nope", dev_center="dc-ade")
    with pytest.raises(errors.StalledError) as caught:
        await access.sync_catalog(clients=azure, target=missing)
    leaks.append(caught.value)
    assert caught.value.reason == "CatalogNotFound"
    assert names.catalog_id(missing) in caught.value.message

    arm.inject_lro_failure("catalogs/runners", code="CatalogSyncFailed", message="Bad manifest.")
    with pytest.raises(errors.TransientError) as failed:
        await access.sync_catalog(
            clients=azure, target=spec.CatalogSync(SUB, GROUP, "runners", dev_center="dc-ade")
        )
    leaks.append(failed.value)
    assert failed.value.reason == "CatalogSyncFailed"
    assert "Bad manifest." in failed.value.message

    reader = await factory.get(subscription_id=SUB, client_secret=READER)
    with pytest.raises(errors.StalledError) as denied:
        await access.sync_catalog(
            clients=reader, target=spec.CatalogSync(SUB, GROUP, "runners", dev_center="dc-ade")
        )
    leaks.append(denied.value)
    assert denied.value.reason == "CatalogSyncDenied"
    assert "catalogs/sync/action" in denied.value.message


async def test_principal_of_the_operator_is_known_to_the_emulator(arm: arm_.ArmEmulator) -> None:
    assert arm.principals[ARM_CLIENT_ID].object_id == ARM_OBJECT_ID


@pytest.mark.parametrize("retry_after", [1, 0.25, None])
async def test_catalog_sync_is_polled_when_arm_says(
    arm: arm_.ArmEmulator, leaks: list[BaseException], retry_after: float | None
) -> None:
    """The sync's operation is polled when ARM's answers say (`Retry-After` in whole seconds, a
    fraction as `retry-after-ms`), whatever `polling_interval` is: that is only for an answer
    that says nothing. (azure-core's ARM poller, with the interval left as a fallback.) The
    first poll goes right after the 202 whatever it says: azure-core polls once at once."""
    arm.add_catalog(SUB, GROUP, "paced", dev_center="dc-ade")
    arm.operations.retry_after = retry_after
    fallback = 0.5
    async with clients.AzureClients(settings_for(arm, polling_interval=fallback)) as factory:
        azure = await factory.get(subscription_id=SUB, client_secret=OPERATOR)
        target = spec.CatalogSync(SUB, GROUP, "paced", dev_center="dc-ade")
        await access.sync_catalog(clients=azure, target=target)
    (synced,) = arm.syncs
    assert synced.status == "Succeeded"
    asked = [
        r.time
        for r in arm.requests
        if (r.method == "POST" and r.path.endswith("/sync"))
        or (r.method == "GET" and synced.operation_id in r.path)
    ]
    # the POST, then a poll at once, then one after each InProgress answer's delay
    gaps = [later - earlier for earlier, later in itertools.pairwise(asked)]
    waits = gaps[1 : arm.operations.polls + 1]
    assert gaps[0] < 0.5
    assert len(waits) == arm.operations.polls
    expected = fallback if retry_after is None else retry_after
    assert all(expected - 0.05 <= wait < expected + 0.75 for wait in waits), waits
