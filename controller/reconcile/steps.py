"""The contract between the reconcile runner and its steps: context, outcomes, Step protocol.

A step reads the world, compares it with what status recorded, acts only when they differ, and
says how it went with an `Outcome`. It raises `errors.StalledError` for problems the user must fix
and `errors.TransientError` for problems that pass; the runner turns both into conditions.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from controller.api import spec as model
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
    shared: dict[str, object] = dataclasses.field(default_factory=dict)
    """What one step found for the steps after it (e.g. the resolved inputs), by step name."""
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    uid: str = ""
    events: list[events_.Event] = dataclasses.field(default_factory=list)
    """Events a step calls for beyond the summary's transitions (a repaired drift, new Dockerfile
    warnings): only for something that happened in this reconcile, never on every pass."""


class Step(Protocol):
    """One ordered reconcile step. `condition` is the step condition it owns."""

    @property
    def condition(self) -> str: ...

    async def __call__(self, ctx: Context) -> Outcome: ...


@dataclasses.dataclass(frozen=True)
class NotYetAvailable:
    """An explicit seam for a step this version of the operator does not perform.

    It stops the pipeline honestly (Ready=False, reason NotImplemented, naming the step) rather
    than pretending the work was done. `applies` says whether the spec asks for the step at all.
    """

    condition: str
    what: str
    applies: Callable[[model.RunnerImageSpec], bool] = lambda _spec: True

    async def __call__(self, ctx: Context) -> Outcome:
        if not self.applies(ctx.spec):
            return Outcome.skipped(f"{self.what}: not requested by the spec")
        return Outcome.blocked(
            "NotImplemented", f"{self.what} is not available in this version of the operator"
        )
