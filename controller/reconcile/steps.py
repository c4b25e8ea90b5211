"""The contract between the reconcile runner and its steps: context, outcomes, Step protocol.

A step reads the world, compares it with what status recorded, acts only when they differ, and
says how it went with an `Outcome`. It raises `errors.StalledError` for problems the user must fix
and `errors.TransientError` for problems that pass; the runner turns both into conditions.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import pathlib
from collections.abc import Mapping
from typing import Any, Protocol

from controller.api import spec as model
from controller.api import status as status_
from controller.builds import identity
from controller.observe import events as events_


class Kind(enum.Enum):
    DONE = "done"
    """The step's part of the world matches the spec; go on."""
    SKIPPED = "skipped"
    """The spec does not ask for this step; its condition is removed; go on."""
    WAITING = "waiting"
    """Work is in flight (a build runs); stop here, report Reconciling, look again later."""
    BLOCKED = "blocked"
    """The step cannot run in this version or configuration; stop here, no retry loop."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    kind: Kind
    reason: str
    message: str
    requeue_after: float | None = None

    @classmethod
    def done(cls, reason: str, message: str) -> Outcome:
        return cls(Kind.DONE, reason, message)

    @classmethod
    def skipped(cls, message: str) -> Outcome:
        return cls(Kind.SKIPPED, "", message)

    @classmethod
    def waiting(cls, reason: str, message: str, *, requeue_after: float) -> Outcome:
        return cls(Kind.WAITING, reason, message, requeue_after)

    @classmethod
    def blocked(cls, reason: str, message: str) -> Outcome:
        return cls(Kind.BLOCKED, reason, message)


@dataclasses.dataclass(frozen=True)
class ResolvedInputs:
    """What the inputs step found, for the build and verify steps."""

    inputs: identity.Inputs
    key: str
    """The build key: the hash of everything the image is made of."""
    material: dict[str, Any]
    """What the key is made of (`identity.Inputs.key_material`), recorded with the image."""
    context_dir: pathlib.Path
    """The build context (Dockerfile and scripts/) on the operator's file system."""
    source_date_epoch: int = 0
    """The source revision's commit time (seconds since 1970; 0 for an inline source)."""


@dataclasses.dataclass
class Context:
    """What one reconcile knows: the object as read, and the status fields steps want to set."""

    name: str
    namespace: str
    generation: int
    spec: model.RunnerImageSpec
    status: Mapping[str, Any]
    now: datetime.datetime
    updates: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Status fields (other than conditions) to merge into status; None removes a field."""
    inputs: ResolvedInputs | None = None
    """What the inputs step found (set by it; the steps after it read it with `resolved`)."""
    built: status_.LatestImage | None = None
    """The image the build step built or adopted in this reconcile (None: nothing new)."""
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    uid: str = ""
    reads: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What the steps read once per reconcile and share (the push Secret: `secrets.push_config`),
    so a reconcile asks the API server once and every step sees the same."""
    events: list[events_.Event] = dataclasses.field(default_factory=list)
    """Events a step calls for beyond the summary's transitions (a repaired drift, new Dockerfile
    warnings): only for something that happened in this reconcile, never on every pass."""

    def resolved(self) -> ResolvedInputs:
        """The inputs the inputs step resolved in this reconcile (it runs first)."""
        if self.inputs is None:
            raise RuntimeError("the inputs step runs before the steps that need its inputs")
        return self.inputs

    def image(self) -> status_.LatestImage | None:
        """The image to verify and write: the one built now, else the one status records."""
        return self.built or status_.LatestImage.of(self.status)


class Step(Protocol):
    """One ordered reconcile step. `condition` is the step condition it owns."""

    @property
    def condition(self) -> str: ...

    async def __call__(self, ctx: Context) -> Outcome: ...
