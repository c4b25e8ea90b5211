"""Registry access and catalog sync through Azure Resource Manager: the I/O of the package.

- `ensure_anonymous_pull`: read the registry; when anonymous pull is off or public network access
  is not Enabled, PATCH both on (a long-running operation, awaited) and say what was found, so
  the caller can report `RegistryAccessDrifted`. The Basic SKU cannot serve anonymous pull: a
  `StalledError` says so instead of a PATCH ARM would refuse.
- `ensure_acr_pull`: give each principal the AcrPull role on the registry. Existing assignments
  (at the registry or above) are listed first; a missing one is created under a deterministic
  name, so a retry after a crash is idempotent; ARM's 409 `RoleAssignmentExists` counts as
  success. Nothing is ever deleted, and assignments made by others are never touched.
- `sync_catalog`: sync an ADE catalog (a dev center's or a project's) and await the operation.

Each SDK call goes through `_run`: one deadline for the whole function (`settings.timeout`), the
outcome counted by `observe.metrics.report_azure_request(operation, status)`, a DEBUG log line,
and SDK exceptions turned into the operator's errors by `controller.azure.errors` (their causes
dropped: an SDK exception holds the request). All functions take keyword-only arguments.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core import exceptions as azure_exceptions
from azure.core.pipeline import PipelineResponse

from controller import errors, failpoints
from controller.api import spec
from controller.azure import errors as azure_errors
from controller.azure import names
from controller.azure.clients import Clients
from controller.observe import activity, metrics

if TYPE_CHECKING:  # the management SDKs' models load with the first change made (see clients)
    from azure.mgmt.authorization.v2022_04_01 import models as authorization_models
    from azure.mgmt.containerregistry import models as registry_models

logger = logging.getLogger(__name__)

T = TypeVar("T")

PRINCIPAL_TYPE = "ServicePrincipal"
"""ADE project environment types use managed identities, which are service principals."""

ASSIGNMENT_DESCRIPTION = "AcrPull for Azure Deployment Environments (ade-runner-operator)"


@dataclasses.dataclass(frozen=True)
class AccessResult:
    """What an `ensure_*` call found and changed on one registry."""

    registry_id: str
    drifted: bool
    """Whether the registry did not allow the access and was changed (report an Event)."""
    sku: str = ""
    anonymous_pull_was: bool | None = None
    public_network_access_was: str | None = None
    granted: tuple[str, ...] = ()
    """Principals given AcrPull by this call."""
    present: tuple[str, ...] = ()
    """Principals that already held AcrPull (or whose assignment ARM reported as existing)."""
    login_server: str = ""
    """The registry's login server as ARM reports it (empty when it was not read)."""

    def summary(self) -> str:
        """One sentence for an Event or a log line."""
        if self.granted or self.present:
            if not self.granted:
                return f"AcrPull already held by {len(self.present)} principal(s)"
            return f"AcrPull granted to {', '.join(self.granted)}"
        if not self.drifted:
            return "anonymous pull and public network access are enabled"
        return (
            f"anonymous pull was {_on_off(self.anonymous_pull_was)} and public network access "
            f"was {self.public_network_access_was or 'unset'}; both are on now"
        )


@dataclasses.dataclass(frozen=True)
class SyncResult:
    catalog_id: str
    seconds: float


def _on_off(value: bool | None) -> str:
    return "on" if value else "off"


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _deadline(clients: Clients) -> float:
    return asyncio.get_running_loop().time() + clients.settings.timeout


def _target(
    clients: Clients, operation: str, resource_id: str, kind: azure_errors.Kind = "registry"
) -> azure_errors.Target:
    return azure_errors.Target(
        operation=operation,
        resource_id=resource_id,
        kind=kind,
        identity=clients.identity,
        secrets=clients.secrets,
    )


async def _run(
    clients: Clients,
    target: azure_errors.Target,
    deadline: float,
    call: Callable[[dict[str, Any]], Awaitable[T]],
    *,
    allow: Callable[[azure_exceptions.HttpResponseError], bool] | None = None,
) -> T | None:
    """Run one SDK operation; map its failure; None when `allow` accepted the failure."""
    statuses: list[int] = []

    def hook(response: PipelineResponse[Any, Any]) -> None:
        statuses.append(response.http_response.status_code)

    started = time.monotonic()
    try:
        async with asyncio.timeout_at(deadline):
            with activity.waiting_on(f"Azure Resource Manager ({target.operation})"):
                result = await call({"raw_response_hook": hook})
    except Exception as error:
        status = azure_errors.status_of(error)
        elapsed = time.monotonic() - started
        if isinstance(error, azure_exceptions.HttpResponseError) and allow and allow(error):
            metrics.report_azure_request(target.operation, status)
            logger.debug(
                "azure %s %s -> %s (accepted) in %.2fs",
                target.operation,
                target.resource_id,
                status,
                elapsed,
            )
            return None
        metrics.report_azure_request(target.operation, status)
        if isinstance(error, TimeoutError):
            raise errors.TransientError(
                azure_errors.Reason.UNAVAILABLE,
                f"{target.operation} on {target.resource_id} did not finish within "
                f"{clients.settings.timeout:g}s",
            ) from None
        mapped = azure_errors.to_reconcile_error(error, target)
        logger.debug(
            "azure %s %s -> %s in %.2fs: %s",
            target.operation,
            target.resource_id,
            status,
            elapsed,
            mapped.reason if mapped else type(error).__name__,
        )
        if mapped is None:
            raise
        raise mapped from None
    status = statuses[-1] if statuses else "ok"
    metrics.report_azure_request(target.operation, status)
    logger.debug(
        "azure %s %s -> %s in %.2fs",
        target.operation,
        target.resource_id,
        status,
        time.monotonic() - started,
    )
    return result


def _check_subscription(clients: Clients, subscription_id: str) -> None:
    if clients.subscription_id.lower() != subscription_id.lower():
        raise ValueError(
            f"clients are for subscription {clients.subscription_id}, not {subscription_id}"
        )


async def ensure_anonymous_pull(
    *, clients: Clients, acr: spec.AcrRef, login_server: str | None = None
) -> AccessResult:
    """Make sure the registry allows anonymous pull over its public endpoint. With
    `login_server`, a registry serving another host is refused before anything is changed."""
    _check_subscription(clients, acr.subscription_id)
    deadline = _deadline(clients)
    registry_id = names.registry_id(acr)
    operations = clients.registries.registries
    registry = await _read_registry(clients, acr, deadline)
    anonymous, public = _access_of(registry)
    sku = _text(registry.sku.name if registry.sku else None) or ""
    found_server = _check_login_server(acr, registry, login_server)
    if anonymous is True and (public or "").lower() == "enabled":
        return AccessResult(
            registry_id=registry_id,
            drifted=False,
            sku=sku,
            anonymous_pull_was=anonymous,
            public_network_access_was=public,
            login_server=found_server,
        )
    if sku.lower() in ("basic", "classic"):
        raise errors.StalledError(
            azure_errors.Reason.REGISTRY_SKU_UNSUPPORTED,
            f"registry {registry_id} has the {sku} SKU, which cannot allow anonymous pull: "
            "move it to Standard or Premium, or use registryAccess.mode PrivatePull",
        )
    from azure.mgmt.containerregistry import models as registry_models  # noqa: PLC0415

    update = registry_models.RegistryUpdateParameters(
        properties=registry_models.RegistryPropertiesUpdateParameters(
            anonymous_pull_enabled=True, public_network_access="Enabled"
        )
    )

    async def patch(options: dict[str, Any]) -> registry_models.Registry:
        poller = await operations.begin_update(acr.resource_group, acr.name, update, **options)
        failpoints.hit(failpoints.Point.REGISTRY_PATCH_SENT)
        return await poller.result()

    update_target = _target(clients, "registries.update", registry_id)
    updated = await _run(clients, update_target, deadline, patch)
    assert updated is not None
    now_anonymous, now_public = _access_of(updated)
    if now_anonymous is not True or (now_public or "").lower() != "enabled":
        raise errors.TransientError(
            azure_errors.Reason.REGISTRY_UPDATE_FAILED,
            f"registries.update on {registry_id} succeeded but the registry still shows "
            f"anonymous pull {_on_off(now_anonymous)}, public network access {now_public}",
        )
    logger.info(
        "registry %s: anonymous pull was %s, public network access %s; enabled both",
        registry_id,
        _on_off(anonymous),
        public,
    )
    return AccessResult(
        registry_id=registry_id,
        drifted=True,
        sku=sku,
        anonymous_pull_was=anonymous,
        public_network_access_was=public,
        login_server=found_server,
    )


def _check_login_server(
    acr: spec.AcrRef, registry: registry_models.Registry, login_server: str | None
) -> str:
    """The registry's login server; a `StalledError` when it is not `login_server` (the host
    the image is pushed to), raised before anything is changed."""
    found = _text(registry.login_server) or ""
    if login_server and found and found.lower() != login_server.lower():
        raise errors.StalledError(
            "RegistryMismatch",
            f"spec.registryAccess.acr.name: registry {acr.name} serves {found}, but the "
            f"image is pushed to {login_server} (spec.image.registry); nothing was changed",
        )
    return found


async def _read_registry(
    clients: Clients, acr: spec.AcrRef, deadline: float
) -> registry_models.Registry:
    operations = clients.registries.registries
    registry = await _run(
        clients,
        _target(clients, "registries.get", names.registry_id(acr)),
        deadline,
        lambda options: operations.get(acr.resource_group, acr.name, **options),
    )
    assert registry is not None
    return registry


def _access_of(registry: registry_models.Registry) -> tuple[bool | None, str | None]:
    properties = registry.properties
    if properties is None:
        return None, None
    return properties.anonymous_pull_enabled, _text(properties.public_network_access)


def _principals(principal_ids: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for principal in principal_ids:
        value = principal.strip()
        if not names.is_guid(value):
            raise errors.SpecError(
                "spec.registryAccess.principalIds", f"{value!r} is not an object id (a GUID)"
            )
        seen.setdefault(value.lower(), value)
    return tuple(seen.values())


async def ensure_acr_pull(
    *,
    clients: Clients,
    acr: spec.AcrRef,
    principal_ids: Iterable[str],
    principal_type: str = PRINCIPAL_TYPE,
    login_server: str | None = None,
) -> AccessResult:
    """Make sure every principal holds AcrPull on the registry; create what is missing. The
    registry is read first: it must exist and, with `login_server`, serve that host."""
    from azure.mgmt.authorization.v2022_04_01 import models as authorization_models  # noqa: PLC0415

    _check_subscription(clients, acr.subscription_id)
    wanted = _principals(principal_ids)
    deadline = _deadline(clients)
    found_server = _check_login_server(
        acr, await _read_registry(clients, acr, deadline), login_server
    )
    scope = names.registry_id(acr)
    definition = names.role_definition_id(acr.subscription_id)
    assignments = clients.authorization.role_assignments

    async def listing(options: dict[str, Any]) -> list[authorization_models.RoleAssignment]:
        pages = assignments.list_for_scope(scope, filter="atScope()", **options)
        return [assignment async for assignment in pages]

    existing = await _run(
        clients, _target(clients, "roleAssignments.list", scope), deadline, listing
    )
    holders = {
        (assignment.principal_id or "").lower()
        for assignment in existing or ()
        if names.role_of(assignment.role_definition_id or "") == names.ACR_PULL_ROLE
    }
    granted: list[str] = []
    present = [principal for principal in wanted if principal.lower() in holders]
    for principal in wanted:
        if principal.lower() in holders:
            continue
        name = names.assignment_name(scope, definition, principal)
        parameters = authorization_models.RoleAssignmentCreateParameters(
            role_definition_id=definition,
            principal_id=principal,
            principal_type=principal_type,
            description=ASSIGNMENT_DESCRIPTION,
        )

        def create(
            options: dict[str, Any],
            name: str = name,
            parameters: authorization_models.RoleAssignmentCreateParameters = parameters,
        ) -> Awaitable[authorization_models.RoleAssignment]:
            return assignments.create(scope, name, parameters, **options)

        created = await _run(
            clients,
            _target(clients, "roleAssignments.create", scope),
            deadline,
            create,
            allow=_assignment_exists,
        )
        if created is None:
            present.append(principal)
        else:
            failpoints.hit(failpoints.Point.ROLE_ASSIGNMENT_CREATED)
            granted.append(principal)
            logger.info("registry %s: AcrPull granted to %s (%s)", scope, principal, name)
    return AccessResult(
        registry_id=scope,
        drifted=bool(granted),
        granted=tuple(granted),
        present=tuple(present),
        login_server=found_server,
    )


def _assignment_exists(error: azure_exceptions.HttpResponseError) -> bool:
    code, _ = azure_errors.arm_error(error)
    return error.status_code == 409 and code == azure_errors.ROLE_ASSIGNMENT_EXISTS


async def sync_catalog(*, clients: Clients, target: spec.CatalogSync) -> SyncResult:
    """Sync the dev center's or the project's catalog and wait until ARM says it is done."""
    _check_subscription(clients, target.subscription_id)
    deadline = _deadline(clients)
    catalog_id = names.catalog_id(target)
    devcenter = clients.devcenter

    async def sync(options: dict[str, Any]) -> None:
        if target.dev_center:
            poller = await devcenter.catalogs.begin_sync(
                target.resource_group, target.dev_center, target.catalog, **options
            )
        else:
            poller = await devcenter.project_catalogs.begin_sync(
                target.resource_group, target.project, target.catalog, **options
            )
        failpoints.hit(failpoints.Point.CATALOG_SYNC_STARTED)
        await poller.result()

    started = time.monotonic()
    operation = "catalogs.sync" if target.dev_center else "projectCatalogs.sync"
    await _run(clients, _target(clients, operation, catalog_id, "catalog"), deadline, sync)
    return SyncResult(catalog_id=catalog_id, seconds=time.monotonic() - started)
