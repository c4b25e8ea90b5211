"""SDK exceptions -> the operator's errors, on ARM's real bodies; no secret in any message."""

from __future__ import annotations

import email.utils
import time

import pytest
from azure.core import exceptions as azure_exceptions
from azure.core.polling import base_polling

from controller import errors
from controller.azure import errors as azure_errors
from controller.azure.errors import Reason, Target
from tests.unit.azure.fakes import FakeResponse, arm_body, http_error

REGISTRY = (
    "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg"
    "/providers/Microsoft.ContainerRegistry/registries/contoso"
)
CATALOG = (
    "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg"
    "/providers/Microsoft.DevCenter/devcenters/dc/catalogs/cat"
)
OBJECT_ID = "9b2c3d4e-0000-4000-8000-00000000beef"
CLIENT_ID = "3f1e2d3c-0000-4000-8000-00000000c11e"
SECRET = "Qx8~sEcReT.v4lue_9Z"
JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQifQ.c2lnbmF0dXJl"

UPDATE = Target("registries.update", REGISTRY, identity=f"client {CLIENT_ID}", secrets=(SECRET,))
SYNC = Target("catalogs.sync", CATALOG, kind="catalog")


def authorization_failed(action: str, scope: str) -> str:
    """ARM's AuthorizationFailed message, word for word."""
    return (
        f"The client '{CLIENT_ID}' with object id '{OBJECT_ID}' does not have authorization to "
        f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was "
        "recently granted, please refresh your credentials."
    )


def mapped(error: BaseException, target: Target = UPDATE) -> errors.ReconcileError:
    result = azure_errors.to_reconcile_error(error, target)
    assert result is not None
    assert SECRET not in result.message
    assert "eyJ" not in result.message
    return result


def test_403_names_the_missing_action_and_the_principal() -> None:
    action = "Microsoft.ContainerRegistry/registries/write"
    error = mapped(http_error(403, "AuthorizationFailed", authorization_failed(action, REGISTRY)))
    assert isinstance(error, errors.StalledError)
    assert error.reason == Reason.REGISTRY_ACCESS_DENIED == "RegistryAccessDenied"
    assert action in error.message
    assert OBJECT_ID in error.message
    assert REGISTRY in error.message
    assert "Contributor" in error.message


def test_403_on_role_assignments_suggests_an_access_administrator() -> None:
    action = "Microsoft.Authorization/roleAssignments/write"
    target = Target("roleAssignments.create", REGISTRY)
    error = mapped(
        http_error(403, "AuthorizationFailed", authorization_failed(action, REGISTRY)), target
    )
    assert action in error.message
    assert "User Access Administrator" in error.message


def test_403_without_an_action_keeps_arms_words() -> None:
    error = mapped(http_error(403, "LinkedAuthorizationFailed", "Something linked is denied."))
    assert isinstance(error, errors.StalledError)
    assert "Something linked is denied." in error.message
    assert f"client {CLIENT_ID}" in error.message


def test_401_is_an_authentication_failure() -> None:
    error = mapped(
        http_error(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            cls=azure_exceptions.ClientAuthenticationError,
        )
    )
    assert isinstance(error, errors.StalledError)
    assert error.reason == "RegistryAccessDenied"
    assert "authentication to Azure Resource Manager failed" in error.message
    assert "InvalidAuthenticationToken" in error.message


def test_401_quoting_a_token_does_not_show_it() -> None:
    error = mapped(http_error(401, "InvalidAuthenticationToken", f"Bad token {JWT} given."))
    assert "Bad token *** given." in error.message


def test_404_names_the_registry() -> None:
    body = (
        "The Resource 'Microsoft.ContainerRegistry/registries/contoso' under resource group 'rg' "
        "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    )
    error = mapped(
        http_error(404, "ResourceNotFound", body, cls=azure_exceptions.ResourceNotFoundError)
    )
    assert isinstance(error, errors.StalledError)
    assert error.reason == "RegistryNotFound"
    assert REGISTRY in error.message


def test_404_of_a_catalog_is_catalog_not_found() -> None:
    error = mapped(http_error(404, "NotFound", "Catalog not found."), SYNC)
    assert error.reason == "CatalogNotFound"
    assert CATALOG in error.message


def test_403_of_a_sync_is_catalog_sync_denied() -> None:
    action = "Microsoft.DevCenter/devcenters/catalogs/sync/action"
    error = mapped(
        http_error(403, "AuthorizationFailed", authorization_failed(action, CATALOG)), SYNC
    )
    assert error.reason == "CatalogSyncDenied"
    assert action in error.message


def test_429_keeps_retry_after() -> None:
    error = mapped(http_error(429, "TooManyRequests", "Throttled.", headers={"Retry-After": "17"}))
    assert isinstance(error, errors.TransientError)
    assert error.reason == "AzureThrottled"
    assert error.retry_after == 17.0
    assert error.paced  # owed by every cause of a reconcile, not only the handler that failed


def test_retry_after_as_an_http_date() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert azure_errors.retry_after({"retry-after": date}, now=now) == pytest.approx(30, abs=1)
    assert azure_errors.retry_after({"x-ms-retry-after-ms": "1500"}) == 1.5
    assert azure_errors.retry_after({"Retry-After": "soon"}) is None
    assert azure_errors.retry_after({}) is None


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_server_errors_are_transient(status: int) -> None:
    error = mapped(
        http_error(status, "ServiceUnavailable", "Retry later.", headers={"Retry-After": "5"})
    )
    assert isinstance(error, errors.TransientError)
    assert error.reason == "AzureUnavailable"
    assert error.retry_after == 5.0


def test_409_other_than_role_assignment_exists_is_transient() -> None:
    error = mapped(
        http_error(409, "AnotherOperationInProgress", "Another operation is in progress.")
    )
    assert isinstance(error, errors.TransientError)
    assert error.reason == "AzureConflict"


def test_principal_not_found_waits_for_replication() -> None:
    error = mapped(
        http_error(
            400, "PrincipalNotFound", f"Principal {OBJECT_ID} does not exist in the directory."
        )
    )
    assert isinstance(error, errors.TransientError)
    assert error.reason == "PrincipalNotFound"


def test_other_bad_requests_are_stalled() -> None:
    error = mapped(http_error(400, "InvalidPrincipalId", "A valid principal ID must be provided."))
    assert isinstance(error, errors.StalledError)
    assert error.reason == "AzureRequestInvalid"


def lro_failure(target_code: str = "InternalServerError") -> azure_exceptions.HttpResponseError:
    """What azure-core raises when an operation's status ends `Failed`."""
    body = {"status": "Failed", **arm_body(target_code, "The operation failed.")}
    try:
        try:
            raise base_polling.OperationFailed("Operation failed or canceled")
        except base_polling.OperationFailed as cause:
            raise azure_exceptions.HttpResponseError(
                response=FakeResponse(200, body), error=cause
            ) from cause
    except azure_exceptions.HttpResponseError as error:
        return error


def test_failed_long_running_operation_is_transient() -> None:
    error = mapped(lro_failure())
    assert isinstance(error, errors.TransientError)
    assert error.reason == "RegistryUpdateFailed"
    assert "InternalServerError" in error.message
    assert mapped(lro_failure(), SYNC).reason == "CatalogSyncFailed"
    assert azure_errors.status_of(lro_failure()) == "failed"


def test_connection_errors_and_timeouts_are_transient() -> None:
    for error in (
        azure_exceptions.ServiceRequestError("Cannot connect to host 127.0.0.1:1"),
        azure_exceptions.ServiceResponseTimeoutError("Read timed out"),
        TimeoutError(),
    ):
        result = mapped(error)
        assert isinstance(result, errors.TransientError)
        assert result.reason == "AzureUnavailable"
    assert azure_errors.status_of(TimeoutError()) == "timeout"
    assert azure_errors.status_of(azure_exceptions.ServiceRequestError("x")) == "unreachable"


def test_rejected_credentials_are_stalled_and_scrubbed() -> None:
    rejected = azure_errors.CredentialRejected(
        f"ClientSecretCredential.get_token failed: AADSTS7000215: Invalid client secret {SECRET}"
    )
    error = mapped(rejected)
    assert isinstance(error, errors.StalledError)
    assert error.reason == "AzureCredentialsInvalid"
    assert "AADSTS7000215" in error.message
    assert azure_errors.status_of(rejected) == "credentials"


def test_unrelated_exceptions_are_not_mapped() -> None:
    assert azure_errors.to_reconcile_error(KeyError("bug"), UPDATE) is None


def test_scrub() -> None:
    text = (
        f"Authorization: Bearer {JWT[:20]}abc client_secret={SECRET} "
        f'access_token="opaque-token" https://user:pw@host/x'
    )
    scrubbed = azure_errors.scrub(text, [SECRET])
    assert SECRET not in scrubbed
    assert "opaque-token" not in scrubbed
    assert "eyJ" not in scrubbed
    assert "pw@" not in scrubbed
    assert len(azure_errors.scrub("x" * 5000)) == azure_errors.MAX_MESSAGE


def test_denied_action_parse() -> None:
    action = "Microsoft.ContainerRegistry/registries/write"
    assert azure_errors.denied_action(authorization_failed(action, REGISTRY)) == (action, OBJECT_ID)
    assert azure_errors.denied_action("no details") == (None, None)
