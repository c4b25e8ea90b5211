"""Stand-ins for the world the reconcile steps reach, for testing a step without a cluster."""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from collections.abc import Mapping
from typing import Any, cast

from controller import errors, kube
from controller.api import spec as model
from controller.reconcile import images, limits, services, steps

NOW = datetime.datetime(2026, 12, 5, 10, 0, tzinfo=datetime.UTC)


class FakeKube:
    """Serves the Secrets it is given; None: a Secret that does not exist; an int: that HTTP
    status as a failure."""

    def __init__(self, secrets: Mapping[str, Mapping[str, bytes] | int] | None = None) -> None:
        self.secrets = dict(secrets or {})
        self.read: list[str] = []
        self.statuses: list[Mapping[str, Any]] = []

    async def patch_status(self, *, namespace: str, name: str, patch: Any, **_: Any) -> str:
        self.statuses.append(patch)
        return f"rv-status-{len(self.statuses)}"

    async def read_secret(self, *, namespace: str, name: str) -> kube.Secret | None:
        self.read.append(name)
        found = self.secrets.get(name)
        if isinstance(found, int):
            raise kube.KubeError(found, f"HTTP {found}")
        return None if found is None else kube.Secret(name=name, type="Opaque", data=found)


@dataclasses.dataclass
class FakeRegistry:
    """`images.Registry` with digests looked up in a table (None: not found); records lookups
    with whether they carried credentials."""

    digests: dict[str, str | None] = dataclasses.field(default_factory=dict)
    refuse_anonymous: bool = False
    lookups: list[tuple[str, bool]] = dataclasses.field(default_factory=list)
    clients: list[FakeClient] = dataclasses.field(default_factory=list)

    def client(self, docker_config: Mapping[str, Any] | None) -> FakeClient:
        self.clients.append(FakeClient(credentials=docker_config is not None))
        return self.clients[-1]

    async def resolve(
        self,
        reference: str,
        *,
        docker_config: Mapping[str, Any] | None,
        auth_reason: str,
        not_found: errors.ReconcileError | None,
        client: Any = None,
    ) -> str | None:
        if client is not None:
            assert client.credentials == (docker_config is not None), "the client of its config"
            assert not client.closed, "a client used after it was closed"
        self.lookups.append((reference, docker_config is not None))
        if docker_config is None and self.refuse_anonymous:
            raise errors.StalledError(auth_reason, f"{reference}: 401 Unauthorized")
        found = self.digests.get(reference)
        if found is None and not_found is not None:
            raise not_found
        return found


@dataclasses.dataclass
class FakeClient:
    """What `FakeRegistry.client` hands out: whether it carries credentials, whether closed."""

    credentials: bool
    closed: bool = False

    async def aclose(self) -> None:
        self.closed = True


def make_services(
    workdir: pathlib.Path, *, kube_: FakeKube | None = None, registry: FakeRegistry | None = None
) -> services.Services:
    return services.Services(
        kube=cast(kube.Kube, kube_ or FakeKube()),
        backends={},
        slots=limits.BuildSlots(limit=1),
        workdir=workdir,
        registry=cast(images.Registry, registry or FakeRegistry()),
    )


def context(spec: Mapping[str, Any], *, status: Mapping[str, Any] | None = None) -> steps.Context:
    return steps.Context(
        name="runner",
        namespace="team-a",
        generation=1,
        spec=model.parse(spec),
        status=status or {},
        now=NOW,
    )
