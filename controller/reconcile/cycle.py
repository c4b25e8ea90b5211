"""One reconcile of one RunnerImage as the operator runs it, for every cause alike.

Under the object's lock and one reconcile slot: the status to start from (`ObjectMemory`), the
early `Reconciling=True` write of a new generation (kstatus, see `runner.progress`; none for an
object its spec alone decides, `runner.decided_by_spec`), the runner
with the default steps, its status write (`status_writes`: under the lock, so the writes of one
object land in order), what the operator remembers of it, and the reconcile's metrics. The
handlers only hand the returned report to kopf (the Events, a retry).

A service that failed with Retry-After (`Report.hold`) is owed that time by every cause of a
reconcile, not only by the handler that failed (kopf's retries are per handler: a timer or a
build that ended would call it again at once): until it passes, a reconcile of the same
generation returns the failure again without calling anything. A new generation or a
reconcile asked for (the annotation) is the user's word and runs at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from typing import Any

from controller import kube
from controller.api import identity
from controller.observe import logs, metrics
from controller.observe import status as status_
from controller.reconcile import memory as memory_
from controller.reconcile import pipeline, runner, services, status_writes, writing

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ObjectState:
    """What the operator keeps per RunnerImage between reconciles (in kopf's memo)."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    """One reconcile of an object at a time, whatever caused it."""
    memory: memory_.ObjectMemory = dataclasses.field(default_factory=memory_.ObjectMemory)


async def run(
    services_: services.Services, state: ObjectState, read: runner.ObjectView, *, version: str
) -> runner.Report:
    """Reconcile the object `read` (at resourceVersion `version`) once; the report says what to
    write and post."""
    # Its first word (if it had one to say) is behind it: other reconciles may take their slots.
    services_.reconcile_slots.arrivals.arrived(read.namespace, read.name)
    with logs.bind(namespace=read.namespace, name=read.name):  # on every line of this reconcile
        # The object's lock first, then a slot: a reconcile that lends its slot while its catalog
        # change waits (see ReconcileSlots) takes one back holding only its own lock, so no slot
        # holder ever waits on a lock held by a task waiting for a slot.
        async with state.lock:
            started = time.monotonic()
            memory = state.memory
            request = read.annotations.get(identity.RECONCILE_REQUEST_ANNOTATION)
            held = memory.held_for(generation=read.generation, request=request)
            if held is not None and memory.held is not None:
                # A service asked for time (Retry-After): whatever woke this reconcile, it
                # calls nothing, writes nothing, and comes back when the time has passed.
                return runner.Report(
                    result=runner.Result.FAILED,
                    status_patch={},
                    events=[],
                    message=memory.held.message,
                    requeue_after=held,
                    retry=True,
                    ready=memory.reported,
                )
            obj = dataclasses.replace(read, status=memory.status_for(read.status, version))
            # Said before waiting for a slot: a burst of new objects each shows Reconciling at
            # once, not after the reconciles queued ahead of it (one small write, no work). An
            # object its spec alone decides (suspended, invalid) runs no step and its report
            # follows: nothing to say early. It still takes a slot: a burst of them all at once
            # was a peak of memory that stayed resident. The write runs beside the steps (its
            # round trip is not theirs to wait out); the reconcile's own write waits for it, so
            # the two land in order.
            early = (
                None
                if runner.decided_by_spec(obj)
                else asyncio.ensure_future(
                    _say_progressing(services_, obj, datetime.datetime.now(datetime.UTC))
                )
            )
            try:
                async with services_.reconcile_slots.held():
                    now = datetime.datetime.now(datetime.UTC)
                    report = await runner.reconcile(
                        obj,
                        pipeline.default_steps(services_, memory),
                        now=now,
                        reported=memory.reported,
                        deadline=services_.reconcile_timeout,
                    )
            except BaseException:
                if early is not None:
                    early.cancel()
                raise
            progressed = "" if early is None else await early
            if report.status_patch:
                try:
                    await status_writes.write(
                        services_.kube,
                        namespace=obj.namespace,
                        name=obj.name,
                        patch=report.status_patch,
                    )
                except kube.KubeError as error:
                    # Not written: nothing is remembered of this reconcile, and kopf retries it.
                    logger.error("the status could not be written: %s", error)
                    _report_metrics(obj, report, seconds=time.monotonic() - started)
                    return dataclasses.replace(
                        report,
                        status_patch={},
                        events=[],
                        retry=True,
                        message=f"the status could not be written: {error}",
                    )
            memory.reported = report.ready
            writing.expect(
                services_.catalog,
                who=f"{obj.namespace}/{obj.name}",
                spec=obj.spec,
                conditions_=report.status_patch.get("conditions")
                or obj.status.get("conditions")
                or [],
            )
            memory.held = None
            if report.hold is not None:
                memory.hold(
                    generation=obj.generation,
                    request=request,
                    seconds=report.hold,
                    message=report.message,
                )
            memory.remember({version, progressed}, obj.status, report.status_patch)
            _report_metrics(obj, report, seconds=time.monotonic() - started)
            return report


def _report_metrics(obj: runner.ObjectView, report: runner.Report, *, seconds: float) -> None:
    metrics.report_reconcile(
        result=report.result.value, seconds=seconds, wrote_status=bool(report.status_patch)
    )
    metrics.report_ready(
        namespace=obj.namespace, name=obj.name, ready=report.result is runner.Result.READY
    )
    metrics.report_last_successful_build(
        namespace=obj.namespace,
        name=obj.name,
        timestamp=status_.built_at(obj.status, report.status_patch),
    )


async def _say_progressing(
    services_: services.Services, obj: runner.ObjectView, now: datetime.datetime
) -> str:
    """Write `Reconciling=True` for a new generation at once (kstatus, see `runner.progress`);
    the resourceVersion that write made ("" when there was nothing to write)."""
    early = runner.progress(obj, now=now)
    if early is None:
        return ""
    try:  # one attempt: the reconcile's own write waits out an API server away
        written = await status_writes.write(
            services_.kube, namespace=obj.namespace, name=obj.name, patch=early, waits=()
        )
        return written or ""
    except kube.KubeError as error:  # the reconcile's own patch still lands
        logger.warning("could not say the reconcile started: %s", error)
        return ""


def first_word(read: runner.ObjectView, *, now: datetime.datetime) -> dict[str, Any] | None:
    """The `Reconciling=True` status patch of a RunnerImage as the watch first shows it, before
    kopf has taken it (no finalizer yet); None when there is nothing to say early.

    kopf adds its finalizer to a new object and reconciles it only a cycle later, after that
    patch's round trip through the API server. Said in the first cycle, as kopf's only write of
    that cycle (`handlers.first_cycle_status`; the finalizer is added on its echo), a new object
    shows Reconciling after one write, and the reconcile then reads it from the body: `run`
    says nothing twice. The caller counts it as arriving (`limits.Arrivals`) so that the reconciles
    of a burst wait for it.
    """
    early = runner.progress(read, now=now)
    if early is None or runner.decided_by_spec(read):
        return None
    return early


def forget(
    services_: services.Services,
    *,
    namespace: str,
    name: str,
    state: ObjectState | None = None,
) -> None:
    """Drop what the operator keeps of a deleted RunnerImage (its metrics too, and a catalog
    change still queued for it)."""
    metrics.forget(namespace=namespace, name=name)
    services_.reconcile_slots.arrivals.arrived(namespace, name)
    services_.forget(namespace=namespace, name=name)
    if state is not None:
        writing.withdraw(state.memory)
