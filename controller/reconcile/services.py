"""What the reconcile steps use to reach the world, built once at start-up and handed to them.

`Services` bundles the Kubernetes client, the build backends, the registry access and the work
folder; `ObjectMemory` is the in-memory, per-RunnerImage state that must not be written to the
API server (when the source and the base image were last polled); `BuildSlots` bounds how many
builds run at once across the whole operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import pathlib
import random
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from controller import errors
from controller import kube as kube_
from controller.api import spec as model
from controller.azure import cache as azure_cache
from controller.azure import clients as azure_clients
from controller.azure import credentials as azure_credentials
from controller.build import backend, inprocess, retries
from controller.catalog import repository
from controller.observe import status as status_
from controller.reconcile import owners as owners_
from controller.registry import client as registry_client
from controller.sources import credentials as git_credentials


@dataclasses.dataclass
class ObjectMemory:
    """Per-object state kept in the operator's memory (kopf's memo), never in status."""

    source_checked: float | None = None
    base_checked: float | None = None
    checked_generation: int | None = None
    handled_request: str | None = None
    verified: tuple[str, str, bool] | None = None
    """The (reference, digest, anonymous pull checked) last verified."""
    conformance: str = ""
    """What the last conformance check of the verified image found worth saying (warnings)."""
    reported: tuple[str, str] | None = None
    """Ready's (status, reason) as the last reconcile left it (Events are not told twice)."""
    stale_versions: frozenset[str] = frozenset()
    """The resourceVersions older than the last reconcile's status write (the one it read, and
    the one its early progress write made)."""
    written: Mapping[str, Any] | None = None
    """The status as the last reconcile left it (what it read, with its patch applied)."""
    warnings: list[dict[str, Any]] | None = None
    """The Dockerfile warnings last reported (their Event is posted once)."""
    access_checked_at: float | None = None
    """The registry access check (its monotonic time) this object last took into account."""
    catalog_request: str | None = None
    catalog_checked: str | None = None
    """The catalog branch head the catalog step last read its files at."""
    catalog_polled: float | None = None
    """When the catalog step last looked at the branch head (monotonic)."""
    """The reconcile-request annotation value the catalog step last acted on."""
    jitter: float = dataclasses.field(default_factory=lambda: random.uniform(0.0, 0.1))  # noqa: S311
    """Each object polls up to 10% later than its interval, so objects created together do not
    poll their git servers and registries in lockstep."""

    def status_for(self, read: Mapping[str, Any], version: str) -> Mapping[str, Any]:
        """The status to reconcile from: the one the last reconcile wrote when the object was
        read at the same resourceVersion as that reconcile read it. kopf may hand a reconcile (a
        timer, a queued event) a body read before the previous reconcile's status patch landed,
        and a step acting on that stale status would repeat what was just done (an Event, a
        catalog sync)."""
        if self.written is None or not version or version not in self.stale_versions:
            return read
        return self.written

    def remember(
        self, versions: set[str], status: Mapping[str, Any], patch: Mapping[str, Any]
    ) -> None:
        self.stale_versions = frozenset(v for v in versions if v)
        self.written = status_.apply_merge_patch(status, patch) if patch else status

    def due(self, last: float | None, interval: float | None, *, generation: int) -> bool:
        if last is None or self.checked_generation != generation:
            return True
        if interval is None:
            return False
        return time.monotonic() - last >= interval * (1.0 + self.jitter)


_HOLDING: contextvars.ContextVar[bool] = contextvars.ContextVar("holding_slot", default=False)


@dataclasses.dataclass
class ReconcileSlots:
    """Bounds the reconciles in flight (`ADE_MAX_CONCURRENT_RECONCILES`).

    A reconcile that waits on work shared with others (its catalog change waiting for the
    batch's commit and push) lends its slot meanwhile, so the limit bounds work being done, not
    waiting: with a limit of 8, a hundred RunnerImages still share a handful of commits.
    """

    limit: int
    _semaphore: asyncio.Semaphore = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._semaphore = asyncio.Semaphore(self.limit)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        async with self._semaphore:
            token = _HOLDING.set(True)
            try:
                yield
            finally:
                _HOLDING.reset(token)

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        """Give the slot this task holds to others while waiting; take one back after."""
        if not _HOLDING.get():
            yield
            return
        self._semaphore.release()
        token = _HOLDING.set(False)
        try:
            yield
        finally:
            _HOLDING.reset(token)
            await self._semaphore.acquire()


@dataclasses.dataclass
class BuildSlots:
    """Bounds the builds in flight across the operator; a build over the limit waits queued."""

    limit: int
    active: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)

    def try_acquire(self, key: tuple[str, str, str]) -> bool:
        if key in self.active:
            return True
        if len(self.active) >= self.limit:
            return False
        self.active.add(key)
        return True

    def hold(self, key: tuple[str, str, str]) -> None:
        """Count a build found running (e.g. adopted after a restart) against the limit."""
        self.active.add(key)

    def release(self, key: tuple[str, str, str]) -> None:
        self.active.discard(key)

    def release_others(self, key: tuple[str, str, str]) -> None:
        """Free the slots the same RunnerImage held for other (superseded) build keys."""
        self.active = {held for held in self.active if held[:2] != key[:2] or held == key}

    def forget(self, *, namespace: str, name: str) -> None:
        self.active = {held for held in self.active if held[:2] != (namespace, name)}


@dataclasses.dataclass
class Services:
    kube: kube_.Kube
    backends: Mapping[model.BuildBackend, backend.Backend]
    slots: BuildSlots
    workdir: pathlib.Path
    insecure_registries: frozenset[str] = frozenset()
    tasks: inprocess.Tasks | None = None
    """The builds running inside the operator (daemon and Docker backends)."""
    catalog: repository.CatalogWriter | None = None
    """The operator-wide catalog writer (one lock and one batch per repository)."""
    registry_transport: Any = None
    """An httpx transport for the registry client (tests only); None: the network."""
    azure: azure_clients.AzureClients | None = None
    """Azure Resource Manager clients (registry access, catalog sync), per subscription."""
    access_cache: azure_cache.AccessCache | None = None
    """Registry access checks shared across RunnerImages for `ADE_AZURE_CHECK_INTERVAL`."""
    build_retries: retries.Policy = dataclasses.field(default_factory=retries.Policy)
    """Automatic retries of builds that failed on the way to the registry."""
    reconcile_slots: ReconcileSlots = dataclasses.field(
        default_factory=lambda: ReconcileSlots(limit=8)
    )
    owners: owners_.Owners = dataclasses.field(default_factory=owners_.Owners)
    """Which RunnerImage pushes which image repository (kopf's index, set by the handlers)."""

    def registry(self, docker_config: Mapping[str, Any] | None) -> registry_client.RegistryClient:
        try:
            credentials = registry_client.credentials_from_docker_config(docker_config)
        except ValueError as error:
            raise errors.StalledError(
                "SecretInvalid", f"spec.image.pushSecretRef: {error}"
            ) from None
        return registry_client.RegistryClient(
            credentials=credentials,
            insecure_hosts=self.insecure_registries,
            transport=self.registry_transport,
        )

    async def resolve(
        self,
        reference: str,
        *,
        docker_config: Mapping[str, Any] | None,
        auth_reason: str,
        not_found: errors.ReconcileError | None,
    ) -> str | None:
        """The digest `reference` resolves to; None when it does not exist and `not_found` is
        None. Registry failures become reconcile errors: auth -> Stalled(`auth_reason`),
        unreachable or throttled -> Transient (honouring Retry-After)."""
        registry = self.registry(docker_config)
        try:
            return (await registry.resolve(ref=reference)).digest
        except registry_client.ManifestNotFound:
            if not_found is None:
                return None
            raise not_found from None
        except registry_client.RegistryError as error:
            raise registry_failure(error, auth_reason=auth_reason) from None
        finally:
            await registry.aclose()


def registry_failure(
    error: registry_client.RegistryError, *, auth_reason: str
) -> errors.ReconcileError:
    """A registry failure as a reconcile error: auth -> Stalled(`auth_reason`), a platform the
    image lacks -> Stalled, unreachable or throttled -> Transient (honouring Retry-After)."""
    if isinstance(error, registry_client.RegistryAuthError):
        return errors.StalledError(auth_reason, str(error))
    if isinstance(error, registry_client.PlatformNotFound):
        return errors.StalledError("PlatformNotFound", str(error))
    if isinstance(error, registry_client.RegistryUnavailable):
        return errors.TransientError(
            "RegistryUnavailable", str(error), retry_after=error.retry_after
        )
    return errors.TransientError("RegistryError", str(error))


def forget(services: Services, *, namespace: str, name: str) -> None:
    """Drop what the operator keeps of a deleted RunnerImage: fetched sources, build slots and
    in-process builds (Job builds are deleted with it by the garbage collector)."""
    shutil.rmtree(services.workdir / "sources" / namespace / name, ignore_errors=True)
    services.slots.forget(namespace=namespace, name=name)
    if services.tasks is not None:
        services.tasks.forget(namespace=namespace, name=name)


class SecretMissing(errors.StalledError):
    def __init__(self, field: str, namespace: str, name: str) -> None:
        super().__init__(
            "SecretNotFound", f"{field}: Secret {name!r} not found in namespace {namespace!r}"
        )


async def docker_config(
    services: Services, *, namespace: str, spec: model.RunnerImageSpec
) -> dict[str, Any] | None:
    """The push Secret's `.dockerconfigjson`, parsed (None when the spec names no Secret)."""
    ref = spec.image.push_secret_ref
    if ref is None:
        return None
    field = "spec.image.pushSecretRef"
    secret = await read_secret(services, namespace=namespace, name=ref.name, field=field)
    raw = secret.data.get(".dockerconfigjson") or secret.data.get("config.json")
    if raw is None:
        raise errors.StalledError(
            "SecretInvalid",
            f"{field}: Secret {ref.name!r} has no .dockerconfigjson key "
            "(create it with kubectl create secret docker-registry)",
        )
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise errors.StalledError(
            "SecretInvalid", f"{field}: Secret {ref.name!r} holds no valid .dockerconfigjson"
        ) from None
    if not isinstance(parsed, dict):
        raise errors.StalledError(
            "SecretInvalid", f"{field}: Secret {ref.name!r} holds no valid .dockerconfigjson"
        )
    return parsed


async def azure_client_secret(
    services: Services, *, namespace: str, ref: model.SecretRef | None, field: str
) -> azure_credentials.ClientSecret | None:
    """The Azure client secret a spec names at `field`; None: the operator's own identity."""
    if ref is None:
        return None
    secret = await read_secret(services, namespace=namespace, name=ref.name, field=field)
    return azure_credentials.client_secret_from_secret(secret.data, field=field)


async def git_source_credentials(
    services: Services, *, namespace: str, spec: model.RunnerImageSpec
) -> git_credentials.Credentials | None:
    git = spec.source.git
    if git is None or git.secret_ref is None:
        return None
    secret = await read_secret(
        services, namespace=namespace, name=git.secret_ref.name, field="spec.source.git.secretRef"
    )
    return git_credentials.credentials_from_secret(secret.data, secret=secret.name)


async def read_secret(services: Services, *, namespace: str, name: str, field: str) -> kube_.Secret:
    try:
        secret = await services.kube.read_secret(namespace=namespace, name=name)
    except kube_.KubeError as error:
        if error.status == 403:
            raise errors.StalledError(
                "SecretForbidden", f"{field}: the operator may not read Secret {name!r}"
            ) from None
        raise errors.TransientError("KubernetesUnavailable", str(error)) from None
    if secret is None:
        raise SecretMissing(field, namespace, name)
    return secret
