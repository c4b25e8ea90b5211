"""What every build backend offers the reconcile: start a build for a key, report its state.

The plan of a build is backend-neutral: what to build (image, Dockerfile, build args, platforms,
target, labels, cache), from which folder on the operator's file system, for whom, and within
which limits. Each backend renders its own request from it (the Job backend ships the context in
a ConfigMap mounted in its pod; the in-process backends read the folder where it is). A backend
is idempotent per build name: starting a build that already runs (or ran) adopts it. The
reconcile never waits on a build; it asks for the state on each pass, and asking never reads
the context. Pure.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import pathlib
import re
from collections.abc import Mapping
from typing import Any, Protocol

from controller.api import spec as model
from controller.builds import buildctl


class Phase(enum.Enum):
    MISSING = "Missing"
    """No build for this key is known (never started, or lost with a restart of the operator)."""
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclasses.dataclass(frozen=True)
class BuildState:
    phase: Phase
    digest: str | None = None
    message: str = ""
    name: str = ""


@dataclasses.dataclass(frozen=True)
class Owner:
    """The RunnerImage that owns the build (and, for the Job backend, its garbage collection)."""

    name: str
    namespace: str
    uid: str


@dataclasses.dataclass(frozen=True)
class PodPlacement:
    """Where the build pod runs and as whom, from `spec.build` (the Job backend's only).

    A service account named here wins over the Job backend's operator-wide one.
    """

    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[model.Toleration, ...] = ()
    service_account: str | None = None

    @classmethod
    def of(cls, build: model.BuildSpec) -> PodPlacement:
        return cls(
            node_selector=dict(build.node_selector),
            tolerations=build.tolerations,
            service_account=build.service_account_name,
        )


DEFAULT_PLACEMENT = PodPlacement()


def build_name(owner_name: str, key: str, attempt: int = 1) -> str:
    """`<name>-build-<key12>[-r<attempt>]`, at most 56 characters (a DNS label, with room for
    the suffix the Job controller adds to its pods). A retried key gets a new name."""
    suffix = f"-build-{key[:12]}" + (f"-r{attempt}" if attempt > 1 else "")
    head = owner_name[: 52 - len(suffix)].rstrip("-.")
    if head != owner_name:
        head = f"{head}-{hashlib.sha256(owner_name.encode()).hexdigest()[:4]}"
    return f"{head}{suffix}"


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """Everything a backend needs to run one build, and nothing of how a backend runs it."""

    owner: Owner
    key: str
    reason: str
    image: str
    """The full reference to push: registry/repository:tag."""
    dockerfile: str
    """The Dockerfile's path in the context."""
    context_dir: pathlib.Path
    """The build context on the operator's file system (Dockerfile and scripts/)."""
    push_secret: str | None
    """The name of the push Secret (the Job backend mounts it)."""
    timeout_seconds: int
    build_args: Mapping[str, str] = dataclasses.field(default_factory=dict)
    platforms: tuple[str, ...] = ()
    target: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cache_ref: str | None = None
    """A registry reference for cache import/export, or None."""
    resources: model.ResourceRequirements = dataclasses.field(
        default_factory=model.ResourceRequirements
    )
    """The build container's resources (the Job backend's; the others ignore them)."""
    attempt: int = 1
    """1 for the first build of a key; every retry of a failed key counts up."""
    retries: int = 0
    """How many automatic retries after transient failures this attempt is (0: none)."""
    placement: PodPlacement = DEFAULT_PLACEMENT
    """Where the build pod runs (the Job backend's; the others ignore it). Not in the key."""
    source_date_epoch: int | None = None
    """The source's time for reproducible digests (BuildKit backends; see `buildctl`)."""
    attestations: model.Attestations = dataclasses.field(
        default_factory=lambda: model.Attestations(provenance=model.ProvenanceMode.DISABLED)
    )
    """What BuildKit attaches to the image (the BuildKit backends'; Docker ignores it)."""

    @property
    def name(self) -> str:
        return build_name(self.owner.name, self.key, self.attempt)

    def request(self, *, context: str, metadata_file: str) -> buildctl.BuildRequest:
        """The `buildctl build` request for a builder that sees the context at `context` and
        writes BuildKit's metadata file to `metadata_file`."""
        return buildctl.BuildRequest(
            context=buildctl.LocalContext(context),
            dockerfile=self.dockerfile,
            image=self.image,
            build_args=self.build_args,
            platforms=self.platforms,
            target=self.target,
            metadata_file=metadata_file,
            cache_ref=self.cache_ref,
            labels=self.labels,
            source_date_epoch=self.source_date_epoch,
            provenance=None
            if self.attestations.provenance is model.ProvenanceMode.DISABLED
            else self.attestations.provenance.value.lower(),
            sbom=self.attestations.sbom,
            sbom_generator=self.attestations.sbom_generator,
        )


class Backend(Protocol):
    async def start(self, plan: BuildPlan, *, docker_config: Mapping[str, Any] | None) -> None:
        """Start the build of `plan` (adopt it when it exists). `docker_config` is the parsed
        push Secret (None: anonymous push), for the backends that push from this process."""

    async def state(self, plan: BuildPlan) -> BuildState:
        """The state of the build of `plan`; reads no context."""

    async def prune(self, owner: Owner, *, keep: set[str]) -> None:
        """Remove the finished builds of `owner` whose names are not in `keep`."""

    async def wait(self, plan: BuildPlan, *, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the build of `plan` to end; whether it ended. A
        backend whose builds do not run in this process answers False at once."""


def digest_from_metadata(text: str) -> str | None:
    """`containerimage.digest` from BuildKit's metadata file (JSON; never scraped as text)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    digest = data.get("containerimage.digest") if isinstance(data, dict) else None
    if isinstance(digest, str) and _DIGEST.fullmatch(digest):
        return digest
    return None


_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
