"""What every build backend offers the reconcile: start a build for a key, report its state.

A backend is idempotent per build key: starting a build that already runs (or ran) adopts it.
The reconcile never waits on a build; it asks for the state on each pass.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import pathlib
import re
from collections.abc import Mapping
from typing import Any, Protocol

from controller.api import spec as model
from controller.build import buildctl, job


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
class BuildPlan:
    """Everything a backend needs to run one build."""

    owner: job.Owner
    key: str
    reason: str
    request: buildctl.BuildRequest
    context_dir: pathlib.Path
    """The build context on the operator's file system (Dockerfile and scripts/)."""
    context_files: tuple[job.ContextFile, ...]
    docker_config: Mapping[str, Any] | None
    """The push credentials as a parsed `.dockerconfigjson` (None: anonymous push)."""
    push_secret: str | None
    """The name of the push Secret (the Job backend mounts it)."""
    timeout_seconds: int
    resources: model.ResourceRequirements
    """The build container's resources (the Job backend's; the others ignore them)."""
    attempt: int = 1
    """1 for the first build of a key; every retry of a failed key counts up."""
    retries: int = 0
    """How many automatic retries after transient failures this attempt is (0: none)."""
    placement: job.PodPlacement = job.DEFAULT_PLACEMENT
    """Where the build pod runs (the Job backend's; the others ignore it). Not in the key."""

    @property
    def name(self) -> str:
        return job.job_name(self.owner.name, self.key, self.attempt)


class Backend(Protocol):
    async def start(self, plan: BuildPlan) -> None: ...

    async def state(self, plan: BuildPlan) -> BuildState: ...

    async def prune(self, owner: job.Owner, *, keep: set[str]) -> None:
        """Remove the finished builds of `owner` whose names are not in `keep`."""


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
