"""Step 3, registry access: ADE can pull from the registry the image is pushed to.

With `spec.registryAccess` the operator makes the Azure Container Registry allow ADE's pulls
through Azure Resource Manager (`controller.azure.access`):
- `AnonymousPull`: anonymous pull on and public network access Enabled;
- `PrivatePull`: the AcrPull role for every principal in `spec.registryAccess.principalIds`.
The check runs before the build, so a registry the operator cannot manage stalls early with the
missing permission named, and again on later reconciles to repair drift (someone turned
anonymous pull off): a repair is reported as a `RegistryAccessDrifted` Warning Event and
`status.registry.repairedAt` (the first set-up is a Normal `RegistryAccessEnabled` Event).
One check of a registry (for one mode, principal set and identity)
is shared by every RunnerImage that pushes to it for `ADE_AZURE_CHECK_INTERVAL`, so a hundred
RunnerImages on one registry cost one ARM read per interval, not a hundred.
"""

from __future__ import annotations

import dataclasses
import hashlib

from controller import errors
from controller.api import conditions
from controller.api import spec as model
from controller.api import status as status_
from controller.azure import access as azure_access
from controller.azure import clients as azure_clients
from controller.azure import credentials as azure_credentials
from controller.azure import names
from controller.observe import events as events_
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps
from controller.reconcile import services as services_

CREDENTIALS_FIELD = "spec.registryAccess.acr.credentialsSecretRef"
DRIFTED = "RegistryAccessDrifted"
ENABLED = "RegistryAccessEnabled"


@dataclasses.dataclass
class AccessChecks:
    """The access step's memory: the shared access check it last took into account."""

    at: float | None = None
    """That check's monotonic time (a drift it repaired is told once, by one object)."""


@dataclasses.dataclass(frozen=True)
class EnsureRegistryAccess:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.REGISTRY_ACCESS

    @property
    def checks(self) -> AccessChecks:
        return self.memory.part(AccessChecks)

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        access = ctx.spec.registry_access
        if access is None:
            return steps.Outcome.skipped("no registryAccess in the spec")
        azure, cache = self.services.azure, self.services.access_cache
        if azure is None or cache is None:
            raise errors.StalledError(
                "AzureUnavailable", "the operator was started without Azure management clients"
            )
        client_secret = await secrets.azure_client_secret(
            self.services.kube,
            namespace=ctx.namespace,
            ref=access.acr.credentials_secret_ref,
            field=CREDENTIALS_FIELD,
        )
        key = _key(access, client_secret)
        async with cache.lock(key):
            checked = cache.fresh(key)
            if checked is None:
                clients = await azure.get(
                    subscription_id=access.acr.subscription_id, client_secret=client_secret
                )
                result = await _ensure(clients, access, ctx.spec.image.registry)
                checked = cache.store(key, result)
        previous = status_.RegistryStatus.of(ctx.status)
        ensured_before = previous is not None and previous.mode == str(access.mode)
        repaired_at = previous.repaired_at if previous is not None else None
        if self.checks.at != checked.at and checked.result.drifted:
            # A check this RunnerImage has not seen changed the registry: a repair when this
            # RunnerImage had the access ensured before, else the first set-up.
            message = f"{access.acr.name}: {checked.result.summary()}"
            if ensured_before:
                repaired_at = status_.timestamp(ctx.now)
                ctx.events.append(events_.Event("Warning", DRIFTED, message))
            else:
                ctx.events.append(events_.Event("Normal", ENABLED, message))
        self.checks.at = checked.at
        ctx.updates["registry"] = _status(access, checked.result, repaired_at).to_status()
        return steps.Outcome.done("AccessEnsured", _summary(access, checked.result))


async def _ensure(
    clients: azure_clients.Clients, access: model.RegistryAccess, login_server: str
) -> azure_access.AccessResult:
    if access.mode is model.RegistryAccessMode.PRIVATE_PULL:
        if not access.principal_ids:
            raise errors.StalledError(
                "PrincipalsMissing",
                "spec.registryAccess.principalIds: PrivatePull needs the principal id of each "
                "project environment type's managed identity",
            )
        return await azure_access.ensure_acr_pull(
            clients=clients,
            acr=access.acr,
            principal_ids=access.principal_ids,
            login_server=login_server,
        )
    return await azure_access.ensure_anonymous_pull(
        clients=clients, acr=access.acr, login_server=login_server
    )


def _key(
    access: model.RegistryAccess, client_secret: azure_credentials.ClientSecret | None
) -> tuple[str, ...]:
    who = "operator"
    if client_secret is not None:
        material = "\0".join(
            (client_secret.tenant_id, client_secret.client_id, client_secret.client_secret)
        )
        who = hashlib.sha256(material.encode()).hexdigest()
    principals = ",".join(sorted(p.lower() for p in access.principal_ids))
    return (names.registry_id(access.acr).lower(), str(access.mode), principals, who)


def _status(
    access: model.RegistryAccess, result: azure_access.AccessResult, repaired_at: str | None
) -> status_.RegistryStatus:
    ensured = status_.RegistryStatus(
        resource_id=result.registry_id, mode=str(access.mode), repaired_at=repaired_at
    )
    if access.mode is model.RegistryAccessMode.PRIVATE_PULL:
        principals = tuple(sorted({*result.granted, *result.present}))
        return dataclasses.replace(ensured, principals=principals)
    return dataclasses.replace(ensured, anonymous_pull=True, public_network_access="Enabled")


def _summary(access: model.RegistryAccess, result: azure_access.AccessResult) -> str:
    registry = f"{access.acr.name} ({access.mode})"
    return f"{registry}: {result.summary()}"
