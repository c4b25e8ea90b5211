"""One level-based reconcile of a RunnerImage: validate, run the ordered steps, summarize.

Safe to run at any time and any number of times (create, update, resume, timer): it reads the
object, lets each step compare the world with status, and returns the smallest status patch and
the Events due. It never talks to kopf; the handlers apply what it returns.

With a `deadline` (seconds, `ADE_RECONCILE_TIMEOUT`) the steps must be done within it: a step
still running then is cancelled (a git command's process group killed, an HTTP request closed)
and reported as a transient failure on its condition, reason `ReconcileTimeout`, naming the step,
so no dependency that stops answering can hold a reconcile (and its slot) for ever. Each client
has its own, shorter time-outs that name the service; this is the net under them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from controller import errors
from controller.api import conditions as types
from controller.api import identity
from controller.api import spec as model
from controller.api import status as api_status
from controller.observe import activity, conditions, events, status
from controller.reconcile import steps as steps_
from controller.reconcile import validate

Reason = types.Reason
logger = logging.getLogger(__name__)


class Result(enum.Enum):
    READY = "ready"
    WAITING = "waiting"
    BLOCKED = "blocked"
    STALLED = "stalled"
    SUSPENDED = "suspended"
    FAILED = "failed"
    """A transient failure: retried with backoff."""


@dataclasses.dataclass(frozen=True)
class ObjectView:
    """The parts of a RunnerImage a reconcile reads."""

    name: str
    namespace: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    annotations: Mapping[str, str]
    uid: str = ""

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectView:
        meta = body.get("metadata", {})
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            generation=int(meta.get("generation", 0)),
            spec=body.get("spec") or {},
            status=body.get("status") or {},
            annotations=meta.get("annotations") or {},
            uid=str(meta.get("uid", "")),
        )


@dataclasses.dataclass(frozen=True)
class Report:
    """What a reconcile decided: apply `status_patch`, post `events`, come back later if asked."""

    result: Result
    status_patch: dict[str, Any]
    events: list[events.Event]
    message: str
    requeue_after: float | None = None
    """Look again after this many seconds (work in flight)."""
    retry: bool = False
    """A transient failure: retry with backoff (at `requeue_after` when the error said so)."""
    ready: tuple[str, str] | None = None
    """Ready's (status, reason) as this reconcile leaves it."""
    hold: float | None = None
    """A failing service asked for this many seconds without requests (its Retry-After): no
    reconcile of this generation may run before they pass, whatever wakes it."""


@dataclasses.dataclass
class _Summary:
    result: Result
    desired: dict[str, conditions.Condition | None]
    message: str
    requeue_after: float | None = None
    retry: bool = False
    hold: float | None = None


def _ready_key(found: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    ready = conditions.find(found, types.READY)
    return None if ready is None else (str(ready.get("status")), str(ready.get("reason")))


def progress(obj: ObjectView, *, now: datetime.datetime) -> dict[str, Any] | None:
    """The status patch that says "working on this generation" before any step runs, or None
    when status already speaks of the current generation.

    kstatus reads an object without `observedGeneration` as Current, and one whose
    `observedGeneration` is behind as InProgress only until something writes it: without this
    patch a new RunnerImage would look done to Flux and `kubectl wait` until its first reconcile
    ends (a git poll, a registry check). So a new generation first gets `observedGeneration`,
    `Reconciling=True` and no `Stalled` (an old stall is about an old spec); the reconcile's own
    patch, computed from the status as it was read, then replaces the conditions.
    """
    if obj.status.get("observedGeneration") == obj.generation:
        return None
    stamp = api_status.timestamp(now)
    message = f"reconciling generation {obj.generation}"
    desired: dict[str, conditions.Condition | None] = {
        types.RECONCILING: conditions.Condition.true(
            types.RECONCILING, Reason.PROGRESSING, message
        ),
        types.STALLED: None,
    }
    merged = conditions.merge(
        obj.status.get("conditions") or [], desired, generation=obj.generation, now=stamp
    )
    new_status = {"observedGeneration": obj.generation, "conditions": merged}
    return status.merge_patch(obj.status, new_status)


def decided_by_spec(obj: ObjectView) -> bool:
    """Whether the spec alone decides the reconcile of `obj`: it is invalid (Stalled) or
    suspended. No step runs then and nothing outside is read, so the report is ready at once:
    there is no wait to announce early."""
    try:
        spec = model.parse(obj.spec)
        validate.check(spec)
    except errors.StalledError:
        return True
    return spec.suspend


async def reconcile(
    obj: ObjectView,
    steps: Sequence[steps_.Step],
    *,
    now: datetime.datetime,
    reported: tuple[str, str] | None = None,
    deadline: float | None = None,
) -> Report:
    """Reconcile `obj` once with `steps`; return the status patch and Events it calls for.
    `reported`: the Ready (status, reason) last reported for `obj` (see `events.transitions`);
    `deadline`: seconds the steps may take in all (None: no limit)."""
    updates: dict[str, Any] = {}
    step_events: list[events.Event] = []
    summary = await _run(obj, steps, now, updates, step_events, deadline=deadline)
    stamp = api_status.timestamp(now)
    old_conditions = obj.status.get("conditions") or []
    new_conditions = conditions.merge(
        old_conditions, summary.desired, generation=obj.generation, now=stamp
    )
    new_status: dict[str, Any] = {
        **updates,
        "observedGeneration": obj.generation,
        "conditions": new_conditions,
    }
    requested = obj.annotations.get(identity.RECONCILE_REQUEST_ANNOTATION)
    if requested:
        new_status["lastHandledReconcileAt"] = requested
    return Report(
        result=summary.result,
        status_patch=status.merge_patch(obj.status, new_status),
        events=[
            *step_events,
            *events.transitions(old_conditions, new_conditions, reported=reported),
        ],
        ready=_ready_key(new_conditions),
        message=summary.message,
        requeue_after=summary.requeue_after,
        retry=summary.retry,
        hold=summary.hold,
    )


async def _run(
    obj: ObjectView,
    steps: Sequence[steps_.Step],
    now: datetime.datetime,
    updates: dict[str, Any],
    step_events: list[events.Event],
    *,
    deadline: float | None,
) -> _Summary:
    try:
        spec = model.parse(obj.spec)
        validate.check(spec)
    except errors.StalledError as error:
        return _stalled(error, {})
    if spec.suspend:
        message = "reconciliation is suspended (spec.suspend is true)"
        return _Summary(
            Result.SUSPENDED,
            {
                types.READY: conditions.Condition.false(types.READY, Reason.SUSPENDED, message),
                types.RECONCILING: None,
                types.STALLED: None,
            },
            message,
        )
    ctx = steps_.Context(
        name=obj.name,
        namespace=obj.namespace,
        generation=obj.generation,
        spec=spec,
        status=obj.status,
        now=now,
        updates=updates,
        annotations=obj.annotations,
        uid=obj.uid,
        events=step_events,
    )
    return await _run_steps(ctx, steps, deadline)


class _DeadlinePassed(Exception):
    """The reconcile's deadline passed while a step ran (the step was cancelled)."""

    def __init__(self, pending: tuple[str, ...]) -> None:
        super().__init__(pending)
        self.pending = pending
        """What the step was waiting on when it was cancelled (`observe.activity`)."""


async def _within(step: steps_.Step, ctx: steps_.Context, ends: float | None) -> steps_.Outcome:
    """`step(ctx)`, cancelled at loop time `ends`: `_DeadlinePassed` then (a `TimeoutError` the
    step raised itself stays what it is)."""
    if ends is None:
        return await step(ctx)
    scope = asyncio.timeout_at(ends)
    with activity.tracking() as tracker:
        try:
            async with scope:
                return await step(ctx)
        except TimeoutError:
            if scope.expired():
                raise _DeadlinePassed(tracker.pending()) from None
            raise


async def _run_steps(
    ctx: steps_.Context, steps: Sequence[steps_.Step], deadline: float | None = None
) -> _Summary:
    desired: dict[str, conditions.Condition | None] = {}
    done: list[str] = []
    ends = None if deadline is None else asyncio.get_running_loop().time() + deadline
    for step in steps:
        started = time.monotonic()
        try:
            outcome = await _within(step, ctx, ends)
        except _DeadlinePassed as passed:
            assert deadline is not None
            waited = (
                f"still waiting on {', '.join(passed.pending)}"
                if passed.pending
                else "a dependency answers too slowly or not at all"
            )
            message = errors.redact(
                f"{step.condition}: not done within the reconcile's deadline of {deadline:g}s"
                f" ({waited}); retried"
            )
            desired[step.condition] = conditions.Condition.false(
                step.condition, Reason.RECONCILE_TIMEOUT, message
            )
            return _failed(Reason.RECONCILE_TIMEOUT, message, desired, None)
        except errors.StalledError as error:
            desired[step.condition] = conditions.Condition.false(
                step.condition, error.reason, errors.redact(error.message)
            )
            return _stalled(error, desired)
        except errors.TransientError as error:
            desired[step.condition] = conditions.Condition.false(
                step.condition, error.reason, errors.redact(error.message)
            )
            summary = _failed(
                error.reason, errors.redact(error.message), desired, error.retry_after
            )
            summary.hold = error.retry_after if error.paced else None
            return summary
        except Exception as error:  # a bug or an unexpected failure: retry, report
            message = errors.redact(f"{type(error).__name__}: {error}")
            desired[step.condition] = conditions.Condition.false(
                step.condition, Reason.RECONCILE_ERROR, message
            )
            return _failed(Reason.RECONCILE_ERROR, message, desired, None)
        finally:
            _timed(step.condition, started)
        if outcome.kind is steps_.Kind.SKIPPED:
            desired[step.condition] = None
            continue
        if outcome.kind is steps_.Kind.DONE:
            desired[step.condition] = conditions.Condition.true(
                step.condition, outcome.reason, outcome.message
            )
            if step.condition != types.IMAGES_RETAINED:  # housekeeping is not Ready's news
                done.append(outcome.message)
            continue
        # Work in flight: not known yet. Blocked: known not to hold until something changes.
        state = (
            conditions.Condition.unknown
            if outcome.kind is steps_.Kind.WAITING
            else conditions.Condition.false
        )
        desired[step.condition] = state(step.condition, outcome.reason, outcome.message)
        return _stopped(outcome, desired)
    message = done[-1] if done else "nothing to do"  # the furthest step's news; each has its own
    desired.update(
        {
            types.READY: conditions.Condition.true(types.READY, Reason.SUCCEEDED, message),
            types.RECONCILING: None,
            types.STALLED: None,
        }
    )
    return _Summary(Result.READY, desired, message)


def _timed(condition: str, started: float) -> None:
    """Where a reconcile's time goes, one debug line per step (`ADE_LOG_LEVEL=DEBUG`)."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("step %s took %.0f ms", condition, (time.monotonic() - started) * 1000)


def _stalled(
    error: errors.StalledError, desired: dict[str, conditions.Condition | None]
) -> _Summary:
    message = errors.redact(error.message)
    desired.update(
        {
            types.READY: conditions.Condition.false(types.READY, error.reason, message),
            types.RECONCILING: None,
            types.STALLED: conditions.Condition.true(types.STALLED, error.reason, message),
        }
    )
    return _Summary(Result.STALLED, desired, message)


def _failed(
    reason: str,
    message: str,
    desired: dict[str, conditions.Condition | None],
    retry_after: float | None,
) -> _Summary:
    desired.update(
        {
            types.READY: conditions.Condition.false(types.READY, reason, message),
            types.RECONCILING: None,
            types.STALLED: None,
        }
    )
    return _Summary(Result.FAILED, desired, message, requeue_after=retry_after, retry=True)


def _stopped(outcome: steps_.Outcome, desired: dict[str, conditions.Condition | None]) -> _Summary:
    waiting = outcome.kind is steps_.Kind.WAITING
    desired.update(
        {
            types.READY: conditions.Condition.false(types.READY, outcome.reason, outcome.message),
            types.RECONCILING: conditions.Condition.true(
                types.RECONCILING, outcome.reason, outcome.message
            )
            if waiting
            else None,
            types.STALLED: None,
        }
    )
    return _Summary(
        Result.WAITING if waiting else Result.BLOCKED,
        desired,
        outcome.message,
        requeue_after=outcome.requeue_after,
    )
