"""What the reconcile steps use to reach the world: one plain struct, filled by `assembly`.

Nothing here acts; the parts do (`images.Registry`, `limits`, `secrets`, the build backends,
the catalog writer). `forget` drops what the operator keeps of a deleted RunnerImage.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
from collections.abc import Mapping

from controller import kube as kube_
from controller.api import spec as model
from controller.azure import cache as azure_cache
from controller.azure import clients as azure_clients
from controller.builds import backend, inprocess, retries
from controller.catalog import repository
from controller.hosting import hosts as hosts_
from controller.reconcile import images, limits, wake
from controller.reconcile import owners as owners_


@dataclasses.dataclass
class Services:
    kube: kube_.Kube
    backends: Mapping[model.BuildBackend, backend.Backend]
    slots: limits.BuildSlots
    workdir: pathlib.Path
    registry: images.Registry = dataclasses.field(default_factory=images.Registry)
    """The container registries (clients per credentials, digest lookups)."""
    tasks: inprocess.Tasks | None = None
    """The builds running inside the operator (daemon and Docker backends)."""
    waker: wake.Waker | None = None
    """Wakes a RunnerImage's reconcile when its build ends (in-process task or build Job)."""
    catalog: repository.CatalogWriter | None = None
    """The operator-wide catalog writer (one lock and one batch per repository)."""
    azure: azure_clients.AzureClients | None = None
    """Azure Resource Manager clients (registry access, catalog sync), per subscription."""
    access_cache: azure_cache.AccessCache | None = None
    """Registry access checks shared across RunnerImages for `ADE_AZURE_CHECK_INTERVAL`."""
    build_retries: retries.Policy = dataclasses.field(default_factory=retries.Policy)
    """Automatic retries of builds that failed on the way to the registry."""
    reconcile_slots: limits.ReconcileSlots = dataclasses.field(
        default_factory=lambda: limits.ReconcileSlots(limit=8)
    )
    owners: owners_.Owners = dataclasses.field(default_factory=owners_.Owners)
    """Which RunnerImage pushes which image repository (kopf's index, set by the handlers)."""
    hosts: hosts_.Hosts = dataclasses.field(default_factory=hosts_.Hosts)
    """Clients of git hosts' APIs (pull requests)."""
    reconcile_timeout: float | None = None
    """The most one reconcile's steps may take (`ADE_RECONCILE_TIMEOUT`); None: no limit."""

    def forget(self, *, namespace: str, name: str) -> None:
        """Drop what the operator keeps of a deleted RunnerImage: fetched sources, build slots,
        in-process builds, the last build stamped and the catalog change it was expected to make
        (Job builds are deleted with it by the garbage collector)."""
        shutil.rmtree(self.workdir / "sources" / namespace / name, ignore_errors=True)
        self.slots.forget(namespace=namespace, name=name)
        if self.tasks is not None:
            self.tasks.forget(namespace=namespace, name=name)
        if self.waker is not None:
            self.waker.forget(namespace=namespace, name=name)
        if self.catalog is not None:
            self.catalog.unexpect(f"{namespace}/{name}")
