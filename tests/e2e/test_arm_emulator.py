"""The ARM emulator (`tests.env.arm`) driven by the real Azure SDK clients, unmodified.

azure-identity's `ClientSecretCredential` signs in against the emulator's Entra ID endpoint;
azure-mgmt-containerregistry, azure-mgmt-authorization and azure-mgmt-devcenter talk to its ARM
endpoint over TLS (`connection_verify=ca_file`). What is proved here is what the operator's
tests lean on: tokens, ARM's error codes, long-running operations that change state only when
they end, role assignment conflicts, catalog syncs, and faults with Retry-After honoured.
"""

from __future__ import annotations

import json
import pathlib
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.devcenter import DevCenterMgmtClient

from tests.conftest import (
    ARM_CLIENT_ID,
    ARM_CLIENT_SECRET,
    ARM_OBJECT_ID,
    ARM_READER_CLIENT_ID,
    ARM_READER_SECRET,
)
from tests.env.arm import ACR_PULL, ARM_SCOPE, ArmEmulator, Principal, anonymous_pull_webhook
from tests.env.tokenserver import TokenServer

pytestmark = pytest.mark.e2e

SUB = "3f2a7c1e-5b6d-4e8f-9a0b-1c2d3e4f5a6b"
GROUP = "rg-ade"
ACR = "adeimages"
GROUP_ID = f"/subscriptions/{SUB}/resourceGroups/{GROUP}"
SCOPE = f"{GROUP_ID}/providers/Microsoft.ContainerRegistry/registries/{ACR}"
ROLE_ID = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL}"
IDENTITY = "c0ffee00-1234-4abc-8def-00000000beef"


def credential_for(arm: ArmEmulator, client_id: str, secret: str) -> ClientSecretCredential:
    """The credential as the operator builds it, pointed at the emulator."""
    return ClientSecretCredential(
        arm.tenant_id,
        client_id,
        secret,
        authority=arm.authority,
        connection_verify=str(arm.ca_file),
        disable_instance_discovery=True,
    )


@pytest.fixture
def registry(arm: ArmEmulator) -> str:
    arm.add_registry(SUB, GROUP, ACR, login_server=f"{ACR}.azurecr.io")
    return ACR


@pytest.fixture
def credential(arm: ArmEmulator) -> Iterator[ClientSecretCredential]:
    with credential_for(arm, ARM_CLIENT_ID, ARM_CLIENT_SECRET) as signed_in:
        yield signed_in


@pytest.fixture
def acr(
    arm: ArmEmulator, credential: ClientSecretCredential
) -> Iterator[ContainerRegistryManagementClient]:
    with ContainerRegistryManagementClient(
        credential, SUB, base_url=arm.base_url, connection_verify=str(arm.ca_file)
    ) as client:
        yield client


@pytest.fixture
def rbac(
    arm: ArmEmulator, credential: ClientSecretCredential
) -> Iterator[AuthorizationManagementClient]:
    with AuthorizationManagementClient(
        credential, SUB, base_url=arm.base_url, connection_verify=str(arm.ca_file)
    ) as client:
        yield client


def raw(
    arm: ArmEmulator, method: str, path: str, *, token: str | None, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    """One request without the SDK: status, headers, JSON body."""
    context = ssl.create_default_context(cafile=str(arm.ca_file))
    request = urllib.request.Request(
        arm.base_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            data = response.read()
            return response.status, dict(response.headers), json.loads(data) if data else None
    except urllib.error.HTTPError as error:
        data = error.read()
        return error.code, dict(error.headers), json.loads(data) if data else None


def arm_error(error: HttpResponseError) -> tuple[str | None, str]:
    """ARM's `error.code` and `error.message` as the SDK parsed them from the answer."""
    assert error.error is not None, error
    return error.error.code, error.error.message or ""


# -- Entra ID --------------------------------------------------------------------------------


def test_client_secret_credential_gets_a_token(arm: ArmEmulator) -> None:
    with credential_for(arm, ARM_CLIENT_ID, ARM_CLIENT_SECRET) as credential:
        token = credential.get_token(ARM_SCOPE)
    assert token.token
    assert token.expires_on > time.time() + 3000
    asked = [r for r in arm.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert [(r.status, r.client_id) for r in asked] == [(200, ARM_CLIENT_ID)]
    assert ARM_CLIENT_SECRET not in repr(arm.requests)
    assert arm.issued_tokens() == {token.token}
    assert token.token not in repr(arm.requests)


def test_the_authority_may_be_given_without_scheme(arm: ArmEmulator) -> None:
    with ClientSecretCredential(
        arm.tenant_id,
        ARM_CLIENT_ID,
        ARM_CLIENT_SECRET,
        authority=f"127.0.0.1:{arm.port}",
        connection_verify=str(arm.ca_file),
        disable_instance_discovery=True,
    ) as credential:
        assert credential.get_token(ARM_SCOPE).token


def test_wrong_secret_is_refused(arm: ArmEmulator) -> None:
    with (
        credential_for(arm, ARM_CLIENT_ID, "not-the-secret") as credential,
        pytest.raises(ClientAuthenticationError, match="AADSTS7000215"),
    ):
        credential.get_token(ARM_SCOPE)
    assert [r.status for r in arm.requests if r.method == "POST"] == [401]
    assert "not-the-secret" not in repr(arm.requests)


def test_unknown_app_and_foreign_scope_are_refused(arm: ArmEmulator) -> None:
    with (
        credential_for(arm, str(uuid.uuid4()), "whatever") as credential,
        pytest.raises(ClientAuthenticationError, match="AADSTS700016"),
    ):
        credential.get_token(ARM_SCOPE)
    with (
        credential_for(arm, ARM_CLIENT_ID, ARM_CLIENT_SECRET) as credential,
        pytest.raises(ClientAuthenticationError, match="AADSTS500011"),
    ):
        credential.get_token("https://vault.azure.net/.default")


# -- authentication and api-version ---------------------------------------------------------


def test_arm_needs_a_token_issued_here(arm: ArmEmulator, registry: str) -> None:
    path = SCOPE + "?api-version=2025-11-01"
    status, headers, body = raw(arm, "GET", path, token=None)
    assert status == 401
    assert body["error"]["code"] == "AuthenticationFailed"
    assert headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    assert headers["x-ms-request-id"]
    assert headers["x-ms-correlation-request-id"]
    status, _, body = raw(arm, "GET", path, token="forged")
    assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationToken")


def test_api_version_is_required_and_checked(
    arm: ArmEmulator, registry: str, credential: ClientSecretCredential
) -> None:
    token = credential.get_token(ARM_SCOPE).token
    status, _, body = raw(arm, "GET", SCOPE, token=token)
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")
    status, _, body = raw(arm, "GET", SCOPE + "?api-version=latest", token=token)
    assert (status, body["error"]["code"]) == (400, "InvalidApiVersionParameter")
    with (
        ContainerRegistryManagementClient(
            credential,
            SUB,
            base_url=arm.base_url,
            connection_verify=str(arm.ca_file),
            api_version="2019-05-01",
        ) as old,
        pytest.raises(HttpResponseError) as caught,
    ):
        old.registries.get(GROUP, registry)
    assert caught.value.status_code == 400
    assert arm_error(caught.value)[0] == "NoRegisteredProviderFound"


def test_expired_token_is_refused(
    arm: ArmEmulator, registry: str, credential: ClientSecretCredential
) -> None:
    token = credential.get_token(ARM_SCOPE).token
    arm.expire_tokens()
    status, _, body = raw(arm, "GET", SCOPE + "?api-version=2025-11-01", token=token)
    assert (status, body["error"]["code"]) == (401, "ExpiredAuthenticationToken")


# -- registries ------------------------------------------------------------------------------


def test_registry_get(acr: ContainerRegistryManagementClient, registry: str) -> None:
    got = acr.registries.get(GROUP, registry)
    assert got.id == SCOPE
    assert got.name == ACR
    assert got.login_server == f"{ACR}.azurecr.io"
    assert got.anonymous_pull_enabled is False
    assert got.public_network_access == "Enabled"
    assert got.provisioning_state == "Succeeded"
    assert got.sku.name == "Standard"


def test_update_is_visible_only_when_the_operation_ends(tmp_path: pathlib.Path) -> None:
    told: list[tuple[float, str, bool]] = []
    with ArmEmulator(
        tmp_path,
        principals={"app": Principal(secret="s")},
        on_anonymous_pull=lambda name, on: told.append((time.monotonic(), name, on)),
        lro_polls=3,
        lro_retry_after=0.2,
    ) as arm:
        arm.add_registry(SUB, GROUP, ACR, login_server=f"{ACR}.azurecr.io")
        with (
            credential_for(arm, "app", "s") as credential,
            ContainerRegistryManagementClient(
                credential, SUB, base_url=arm.base_url, connection_verify=str(arm.ca_file)
            ) as acr,
        ):
            poller = acr.registries.begin_update(
                GROUP, ACR, {"properties": {"anonymousPullEnabled": True}}
            )
            midway = acr.registries.get(GROUP, ACR)
            updated = poller.result()
        polls = [r for r in arm.requests if "/operationStatuses/" in r.path]
    assert (midway.provisioning_state, midway.anonymous_pull_enabled) == ("Updating", False)
    assert (updated.provisioning_state, updated.anonymous_pull_enabled) == ("Succeeded", True)
    assert arm.registry(ACR).anonymous_pull is True
    assert len(polls) == 4  # three InProgress, then Succeeded
    assert [(name, on) for _, name, on in told] == [(ACR, True)]
    assert told[0][0] >= polls[-1].time > polls[-2].time


def test_update_flips_the_token_servers_switch(
    arm: ArmEmulator,
    acr: ContainerRegistryManagementClient,
    registry: str,
    token_server: TokenServer,
) -> None:
    token_server.set_anonymous_pull(False)
    acr.registries.begin_update(
        GROUP, registry, {"properties": {"anonymousPullEnabled": True}}
    ).result()
    assert token_server.anonymous_pull is True
    patch = next(r for r in arm.requests if r.method == "PATCH")
    assert patch.body == {"properties": {"anonymousPullEnabled": True}}
    assert patch.status == 201
    arm.set_registry(registry, anonymous_pull=False)  # drift, by someone else
    assert token_server.anonymous_pull is False
    assert acr.registries.get(GROUP, registry).anonymous_pull_enabled is False


def test_the_switch_can_be_flipped_through_the_admin_endpoint(
    tmp_path: pathlib.Path, token_server: TokenServer
) -> None:
    token_server.set_anonymous_pull(False)
    hook = anonymous_pull_webhook(
        f"{token_server.url}/_admin/anonymous-pull", token_server.admin_token
    )
    try:
        with ArmEmulator(
            tmp_path, principals={"app": Principal(secret="s")}, on_anonymous_pull=hook
        ) as arm:
            arm.add_registry(SUB, GROUP, ACR, login_server=f"{ACR}.azurecr.io")
            arm.set_registry(ACR, anonymous_pull=True)
            assert token_server.anonymous_pull is True
            assert arm.hook_errors == []
    finally:
        token_server.set_anonymous_pull(False)


def test_failed_operation_changes_nothing(
    arm: ArmEmulator,
    acr: ContainerRegistryManagementClient,
    registry: str,
    token_server: TokenServer,
) -> None:
    token_server.set_anonymous_pull(False)
    arm.inject_lro_failure("/registries/", code="InternalServerError", message="disk on fire")
    poller = acr.registries.begin_update(
        GROUP, registry, {"properties": {"anonymousPullEnabled": True}}
    )
    with pytest.raises(HttpResponseError, match="disk on fire"):
        poller.result()
    assert arm.registry(registry).anonymous_pull is False
    assert arm.registry(registry).provisioning_state == "Failed"
    assert token_server.anonymous_pull is False


def test_unknown_registry_group_and_subscription(
    arm: ArmEmulator,
    acr: ContainerRegistryManagementClient,
    credential: ClientSecretCredential,
    registry: str,
) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        acr.registries.get(GROUP, "nosuchacr")
    assert arm_error(caught.value)[0] == "ResourceNotFound"
    assert "Microsoft.ContainerRegistry/registries/nosuchacr" in arm_error(caught.value)[1]
    with pytest.raises(ResourceNotFoundError) as caught:
        acr.registries.get("rg-missing", registry)
    assert arm_error(caught.value)[0] == "ResourceGroupNotFound"
    with (
        ContainerRegistryManagementClient(
            credential, str(uuid.uuid4()), base_url=arm.base_url, connection_verify=str(arm.ca_file)
        ) as elsewhere,
        pytest.raises(ResourceNotFoundError) as caught,
    ):
        elsewhere.registries.get(GROUP, registry)
    assert arm_error(caught.value)[0] == "SubscriptionNotFound"


def test_update_without_write_permission_is_forbidden(arm: ArmEmulator, registry: str) -> None:
    with (
        credential_for(arm, ARM_READER_CLIENT_ID, ARM_READER_SECRET) as credential,
        ContainerRegistryManagementClient(
            credential, SUB, base_url=arm.base_url, connection_verify=str(arm.ca_file)
        ) as acr,
    ):
        assert acr.registries.get(GROUP, registry).name == registry
        with pytest.raises(HttpResponseError) as caught:
            acr.registries.begin_update(
                GROUP, registry, {"properties": {"anonymousPullEnabled": True}}
            )
    assert caught.value.status_code == 403
    assert arm_error(caught.value)[0] == "AuthorizationFailed"
    message = arm_error(caught.value)[1]
    assert f"The client '{ARM_READER_CLIENT_ID}' with object id" in message
    assert "'Microsoft.ContainerRegistry/registries/write'" in message
    assert f"over scope '{SCOPE}'" in message
    assert arm.registry(registry).anonymous_pull is False


def test_throttled_update_is_retried_after_waiting(
    arm: ArmEmulator, acr: ContainerRegistryManagementClient, registry: str
) -> None:
    arm.inject(method="PATCH", path_contains="/registries/", status=429, retry_after=1)
    acr.registries.begin_update(
        GROUP, registry, {"properties": {"anonymousPullEnabled": True}}
    ).result()
    patches = [(r.status, r.code, r.fault) for r in arm.requests if r.method == "PATCH"]
    assert patches == [(429, "TooManyRequests", True), (201, None, False)]
    assert [r.method for r in arm.retries] == ["PATCH"]
    assert arm.retries[0].waited >= 1
    assert arm.retry_after_violations == []
    assert arm.registry(registry).anonymous_pull is True


def test_a_retry_sooner_than_retry_after_is_a_violation(
    arm: ArmEmulator, registry: str, credential: ClientSecretCredential
) -> None:
    token = credential.get_token(ARM_SCOPE).token
    arm.inject(method="GET", path_contains=ACR, status=429, retry_after=5)
    path = SCOPE + "?api-version=2025-11-01"
    status, headers, body = raw(arm, "GET", path, token=token)
    assert (status, headers["Retry-After"], body["error"]["code"]) == (429, "5", "TooManyRequests")
    assert raw(arm, "GET", path, token=token)[0] == 200
    assert [(v.method, v.retry_after) for v in arm.retry_after_violations] == [("GET", 5.0)]


def test_server_errors_on_get_are_retried_by_the_sdk(
    arm: ArmEmulator, acr: ContainerRegistryManagementClient, registry: str
) -> None:
    arm.inject(method="GET", path_contains=f"/registries/{ACR}", status=503)
    assert acr.registries.get(GROUP, registry).name == ACR
    statuses = [r.status for r in arm.requests if r.method == "GET" and r.path == SCOPE]
    assert statuses == [503, 200]  # the first retry comes at once, the next after 1.6 s


def test_an_injected_conflict_reaches_the_caller(
    arm: ArmEmulator, acr: ContainerRegistryManagementClient, registry: str
) -> None:
    arm.inject(method="PATCH", status=409, code="AnotherOperationInProgress", message="busy")
    with pytest.raises(ResourceExistsError) as caught:
        acr.registries.begin_update(GROUP, registry, {"properties": {"anonymousPullEnabled": True}})
    assert arm_error(caught.value)[0] == "AnotherOperationInProgress"


# -- role assignments ------------------------------------------------------------------------


def test_role_assignment_create_conflict_list_get_delete(
    arm: ArmEmulator, rbac: AuthorizationManagementClient, registry: str
) -> None:
    params = RoleAssignmentCreateParameters(
        role_definition_id=ROLE_ID, principal_id=IDENTITY, principal_type="ServicePrincipal"
    )
    first = str(uuid.uuid4())
    created = rbac.role_assignments.create(SCOPE, first, params)
    assert created.name == first
    assert created.role_definition_id == ROLE_ID
    assert created.principal_id == IDENTITY
    assert created.scope == SCOPE
    with pytest.raises(ResourceExistsError) as caught:
        rbac.role_assignments.create(SCOPE, str(uuid.uuid4()), params)
    assert arm_error(caught.value)[0] == "RoleAssignmentExists"

    [recorded] = arm.role_assignments(SCOPE)
    assert (recorded.name, recorded.role, recorded.principal_id) == (first, ACR_PULL, IDENTITY)
    assert recorded.created_by == ARM_OBJECT_ID

    at_scope = list(rbac.role_assignments.list_for_scope(SCOPE, filter="atScope()"))
    assert [a.name for a in at_scope] == [first]
    mine = list(
        rbac.role_assignments.list_for_scope(
            f"/subscriptions/{SUB}", filter=f"principalId eq '{IDENTITY}'"
        )
    )
    assert [a.name for a in mine] == [first]
    above = list(rbac.role_assignments.list_for_scope(f"/subscriptions/{SUB}", filter="atScope()"))
    assert above == []

    assert rbac.role_assignments.get(SCOPE, first).principal_id == IDENTITY
    rbac.role_assignments.delete(SCOPE, first)
    assert arm.role_assignments() == []
    with pytest.raises(ResourceNotFoundError):
        rbac.role_assignments.get(SCOPE, first)


def test_role_definition_lookup(rbac: AuthorizationManagementClient, registry: str) -> None:
    [found] = rbac.role_definitions.list(SCOPE, filter="roleName eq 'AcrPull'")
    assert found.name == ACR_PULL
    assert found.id == ROLE_ID
    assert rbac.role_definitions.get(SCOPE, ACR_PULL).role_name == "AcrPull"


def test_role_assignment_without_permission_is_forbidden(arm: ArmEmulator, registry: str) -> None:
    name = str(uuid.uuid4())
    with (
        credential_for(arm, ARM_READER_CLIENT_ID, ARM_READER_SECRET) as credential,
        AuthorizationManagementClient(
            credential, SUB, base_url=arm.base_url, connection_verify=str(arm.ca_file)
        ) as rbac,
        pytest.raises(HttpResponseError) as caught,
    ):
        rbac.role_assignments.create(
            SCOPE,
            name,
            RoleAssignmentCreateParameters(role_definition_id=ROLE_ID, principal_id=IDENTITY),
        )
    assert caught.value.status_code == 403
    assert arm_error(caught.value)[0] == "AuthorizationFailed"
    assert "'Microsoft.Authorization/roleAssignments/write'" in arm_error(caught.value)[1]
    assert (
        f"{SCOPE}/providers/Microsoft.Authorization/roleAssignments/{name}"
        in (arm_error(caught.value)[1])
    )
    assert arm.role_assignments() == []


# -- DevCenter catalogs ----------------------------------------------------------------------


def test_catalog_syncs_complete_and_are_recorded(
    arm: ArmEmulator, credential: ClientSecretCredential
) -> None:
    arm.add_catalog(SUB, GROUP, "central", dev_center="dc-ade")
    arm.add_catalog(SUB, GROUP, "team", project="proj-ade")
    with DevCenterMgmtClient(
        credential, SUB, base_url=arm.base_url, connection_verify=str(arm.ca_file)
    ) as devcenter:
        assert devcenter.catalogs.get(GROUP, "dc-ade", "central").last_sync_time is None
        devcenter.catalogs.begin_sync(GROUP, "dc-ade", "central").result()
        devcenter.project_catalogs.begin_sync(GROUP, "proj-ade", "team").result()
        synced = devcenter.catalogs.get(GROUP, "dc-ade", "central")
        team = devcenter.project_catalogs.get(GROUP, "proj-ade", "team")
    assert synced.sync_state == "Succeeded"
    assert synced.last_sync_time is not None
    assert team.sync_state == "Succeeded"
    assert [(s.parent_kind, s.parent, s.catalog, s.status) for s in arm.syncs] == [
        ("devcenters", "dc-ade", "central", "Succeeded"),
        ("projects", "proj-ade", "team", "Succeeded"),
    ]
    assert all(s.client_id == ARM_CLIENT_ID for s in arm.syncs)


def test_catalog_sync_failure_and_unknown_catalog(
    arm: ArmEmulator, credential: ClientSecretCredential
) -> None:
    arm.add_catalog(SUB, GROUP, "central", dev_center="dc-ade")
    arm.inject_lro_failure("/catalogs/central", code="CatalogSyncFailed", message="bad yaml")
    with DevCenterMgmtClient(
        credential, SUB, base_url=arm.base_url, connection_verify=str(arm.ca_file)
    ) as devcenter:
        with pytest.raises(HttpResponseError, match="bad yaml"):
            devcenter.catalogs.begin_sync(GROUP, "dc-ade", "central").result()
        with pytest.raises(ResourceNotFoundError) as caught:
            devcenter.catalogs.begin_sync(GROUP, "dc-ade", "nope")
    assert arm_error(caught.value)[0] == "ResourceNotFound"
    assert [s.status for s in arm.syncs] == ["Failed"]
    assert arm.catalog("central", dev_center="dc-ade").sync_state == "Failed"


# -- concurrency -----------------------------------------------------------------------------


def test_a_second_update_while_one_runs_conflicts(
    arm: ArmEmulator, acr: ContainerRegistryManagementClient, registry: str
) -> None:
    poller = acr.registries.begin_update(
        GROUP, registry, {"properties": {"anonymousPullEnabled": True}}
    )
    with pytest.raises(ResourceExistsError) as caught:
        acr.registries.begin_update(
            GROUP, registry, {"properties": {"publicNetworkAccess": "Disabled"}}
        )
    assert arm_error(caught.value)[0] == "AnotherOperationInProgress"
    assert poller.result().anonymous_pull_enabled is True
    results: list[bool] = []

    def read() -> None:
        results.append(acr.registries.get(GROUP, registry).anonymous_pull_enabled is True)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    assert results == [True] * 4
