"""Step 4, build: exactly one build per build key, adopted after restarts, recorded with its reason.

Same key as the latest image: nothing to do. Otherwise the backend is asked for the state of the
build of this key: a running one is waited for (Reconciling), a finished one is recorded, and a
missing one is started — unless the last build of this same key failed, which waits for a change
of spec, source or base image, or a manual trigger, instead of retrying in a loop. Only a failure
on the way to the registry is retried by itself, a bounded number of times with a growing delay
(`controller.build.retries`), and is in progress, not stalled, meanwhile. A failed key never
blocks a later one. Builds over the operator-wide limit wait queued.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from controller import durations, errors
from controller.api import conditions
from controller.api import identity as api_identity
from controller.api import status as status_
from controller.build import backend, buildctl, identity, job, retries
from controller.observe import logs, metrics
from controller.reconcile import inputs as inputs_
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps
from controller.reconcile import services as services_

logger = logging.getLogger(__name__)

POLL_SECONDS = 3.0
QUEUED_POLL_SECONDS = 10.0
LABEL_PREFIX = "org.opencontainers.image"


class BuildFailed(errors.StalledError):
    def __init__(self, message: str) -> None:
        super().__init__("BuildFailed", message)


@dataclasses.dataclass(frozen=True)
class Build:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.BUILT

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        found = ctx.resolved()
        logs.bind_build_key(found.key)
        metrics.report_build_queued(namespace=ctx.namespace, name=ctx.name, queued=False)
        latest: Mapping[str, Any] = ctx.status.get("latestImage") or {}
        if latest.get("buildKey") == found.key and latest.get("digest"):
            return steps.Outcome.done("Built", f"{latest['reference']} ({latest['digest']})")
        records = [dict(r) for r in ctx.status.get("builds") or []]
        record = next((r for r in records if r.get("buildKey") == found.key), None)
        plan = self._plan(ctx, found, record, latest)
        slot = (ctx.namespace, ctx.name, found.key)
        # A build of a superseded key may still run; it no longer counts against the limit.
        self.services.slots.release_others(slot)
        state = await self._backend(ctx).state(plan)
        if state.phase in (backend.Phase.PENDING, backend.Phase.RUNNING):
            self.services.slots.hold(slot)
            record = _upsert(records, plan, record, result="Running", now=ctx.now)
            _write_builds(ctx, records)
            detail = f": {state.message}" if state.message else ""
            return steps.Outcome.waiting(
                "Building",
                f"build {plan.name} ({plan.reason}) is {state.phase.value.lower()}{detail}",
                requeue_after=POLL_SECONDS,
            )
        if state.phase is backend.Phase.SUCCEEDED:
            self.services.slots.release(slot)
            assert state.digest is not None
            _report_finished(ctx, plan, record, "succeeded")
            outcome = self._succeeded(
                ctx, found=found, plan=plan, records=records, record=record, digest=state.digest
            )
            await self._prune(ctx, plan)
            return outcome
        if state.phase is backend.Phase.FAILED:
            self.services.slots.release(slot)
            _report_finished(ctx, plan, record, "failed", state.message)
            failed = _upsert(
                records, plan, record, result="Failed", now=ctx.now, message=state.message
            )
            _write_builds(ctx, records)
            await self._prune(ctx, plan)
            return self._failed(ctx, plan, failed)
        # Missing: start one, unless this key already failed and no retry is due.
        failed_before = record is not None and record.get("result") == "Failed"
        if record is not None and failed_before and not self._restarts(ctx, record):
            return self._failed(ctx, plan, record)
        if not self.services.slots.try_acquire(slot):
            metrics.report_build_queued(namespace=ctx.namespace, name=ctx.name, queued=True)
            return steps.Outcome.waiting(
                "BuildQueued",
                f"waiting for a build slot ({self.services.slots.limit} builds run at once)",
                requeue_after=QUEUED_POLL_SECONDS,
            )
        config = await secrets.docker_config(
            self.services.kube, namespace=ctx.namespace, spec=ctx.spec
        )
        adopted = await self._existing_tag(ctx, plan, config)
        if adopted is not None:
            self.services.slots.release(slot)
            metrics.report_build(
                backend=ctx.spec.build.backend, result="reused", reason=plan.reason
            )
            return self._succeeded(
                ctx, found=found, plan=plan, records=records, record=record, digest=adopted
            )
        await self._backend(ctx).start(dataclasses.replace(plan, docker_config=config))
        metrics.report_build(backend=ctx.spec.build.backend, result="started", reason=plan.reason)
        logger.info("started build %s (%s) on %s", plan.name, plan.reason, ctx.spec.build.backend)
        new = _upsert(records, plan, record, result="Running", now=ctx.now, restart=True)
        if plan.retries:
            new["retries"] = plan.retries
        requested = ctx.annotations.get(api_identity.RECONCILE_REQUEST_ANNOTATION)
        if requested:
            new["requestedAt"] = requested
        _write_builds(ctx, records)
        return steps.Outcome.waiting(
            "Building", f"build {plan.name} started ({plan.reason})", requeue_after=POLL_SECONDS
        )

    def _backend(self, ctx: steps.Context) -> backend.Backend:
        return self.services.backends[ctx.spec.build.backend]

    def _retry(self, ctx: steps.Context, record: Mapping[str, Any]) -> bool:
        requested = ctx.annotations.get(api_identity.RECONCILE_REQUEST_ANNOTATION)
        return bool(requested) and requested != record.get("requestedAt")

    def _automatic(self, ctx: steps.Context, record: Mapping[str, Any]) -> retries.Retry | None:
        return retries.automatic(self.services.build_retries, record, ctx.now)

    def _restarts(self, ctx: steps.Context, record: Mapping[str, Any]) -> bool:
        """Whether a failed build of this key starts again now (asked for, or a due retry)."""
        return self._retry(ctx, record) or self._due_now(ctx, record) is not None

    def _due_now(self, ctx: steps.Context, record: Mapping[str, Any]) -> retries.Retry | None:
        """The automatic retry of a failed build that starts now, if one does."""
        automatic = self._automatic(ctx, record)
        return automatic if automatic is not None and automatic.wait <= 0 else None

    def _failed(
        self, ctx: steps.Context, plan: backend.BuildPlan, record: Mapping[str, Any]
    ) -> steps.Outcome:
        """A failed build: in progress while an automatic retry is coming, else stalled."""
        message = str(record.get("message", ""))
        automatic = self._automatic(ctx, record)
        if automatic is None:
            tries = int(record.get("retries", 0) or 0)
            after = f" (after {tries + 1} attempts)" if tries else ""
            raise BuildFailed(f"build {plan.name} failed{after}: {message}")
        return steps.Outcome.waiting(
            "BuildRetrying",
            f"build {plan.name} failed on the way to the registry "
            f"({retries.summary(message)}); retry {automatic.retries} of "
            f"{self.services.build_retries.retries} starts in {automatic.wait:.0f}s",
            requeue_after=max(automatic.wait, 1.0),
        )

    def _plan(
        self,
        ctx: steps.Context,
        found: steps.ResolvedInputs,
        record: Mapping[str, Any] | None,
        latest: Mapping[str, Any],
    ) -> backend.BuildPlan:
        spec = ctx.spec
        previous = record or {}
        again = 0
        if record is None:
            reason, _ = identity.reasons(latest.get("inputs"), found.material)
            attempt = 1
        elif record.get("result") == "Failed" and self._retry(ctx, record):
            reason, attempt = "Manual", int(record.get("attempt", 1)) + 1
        elif (due := self._due_now(ctx, record)) is not None:
            reason, attempt, again = str(record.get("reason")), due.attempt, due.retries
        else:
            reason, attempt = str(record.get("reason")), int(record.get("attempt", 1))
        image = previous.get("image") or (
            f"{spec.image.registry}/{spec.image.repository}:"
            + identity.render_tag(
                spec.image.tag, revision=found.inputs.revision, key=found.key, at=ctx.now
            )
        )
        return backend.BuildPlan(
            attempt=attempt,
            owner=job.Owner(name=ctx.name, namespace=ctx.namespace, uid=ctx.uid),
            key=found.key,
            reason=reason,
            request=buildctl.BuildRequest(
                context=buildctl.LocalContext(job.CONTEXT_MOUNT),
                dockerfile=spec.dockerfile,
                image=image,
                build_args=spec.build_args,
                platforms=spec.platforms,
                target=spec.target,
                metadata_file=job.METADATA_FILE,
                cache_ref=f"{spec.image.registry}/{spec.image.repository}:buildcache",
                labels={
                    f"{LABEL_PREFIX}.revision": found.inputs.revision,
                    f"{api_identity.GROUP}/build-key": found.key,
                },
            ),
            context_dir=found.context_dir,
            context_files=inputs_.context_files(found.context_dir),
            docker_config=None,
            push_secret=spec.image.push_secret_ref.name if spec.image.push_secret_ref else None,
            timeout_seconds=int(durations.parse(spec.build.timeout)),
            resources=spec.build.resources,
            placement=job.PodPlacement.of(spec.build),
            retries=again,
        )

    async def _prune(self, ctx: steps.Context, plan: backend.BuildPlan) -> None:
        kept = {str(r.get("name")) for r in ctx.updates.get("builds") or []}
        await self._backend(ctx).prune(plan.owner, keep=kept)

    async def _existing_tag(
        self, ctx: steps.Context, plan: backend.BuildPlan, config: Mapping[str, Any] | None
    ) -> str | None:
        """The digest already under the planned tag, when it is this key's image; else None.

        A tag that exists and was not produced by this build key is never overwritten.
        """
        digest = await self.services.registry.resolve(
            plan.request.image, docker_config=config, auth_reason="PushFailed", not_found=None
        )
        if digest is None:
            return None
        if "{buildKey}" in ctx.spec.image.tag or "{shortBuildKey}" in ctx.spec.image.tag:
            return digest  # the tag names this very key: the image is already built
        raise errors.StalledError(
            "TagExists",
            f"spec.image.tag: {plan.request.image} already exists ({digest}) and "
            "is not this build's; tags are never overwritten — use a template with "
            "{shortBuildKey} or {timestamp}",
        )

    def _succeeded(
        self,
        ctx: steps.Context,
        *,
        found: steps.ResolvedInputs,
        plan: backend.BuildPlan,
        records: list[dict[str, Any]],
        record: dict[str, Any] | None,
        digest: str,
    ) -> steps.Outcome:
        _upsert(records, plan, record, result="Succeeded", now=ctx.now, digest=digest)
        _write_builds(ctx, records)
        _, changes = identity.reasons(
            (ctx.status.get("latestImage") or {}).get("inputs"), found.material
        )
        ctx.built = status_.LatestImage(
            reference=plan.request.image,
            digest=digest,
            built_at=status_.timestamp(ctx.now),
            reason=plan.reason,
            changes=tuple(changes),
            build_key=found.key,
            inputs=found.material,
        )
        ctx.updates["latestImage"] = ctx.built.to_status()
        return steps.Outcome.done("Built", f"{plan.request.image} ({digest})")


def _report_finished(
    ctx: steps.Context,
    plan: backend.BuildPlan,
    record: Mapping[str, Any] | None,
    result: str,
    message: str | None = None,
) -> None:
    """Count a build seen finished for the first time (its record did not say so yet)."""
    if record is not None and record.get("result") in ("Succeeded", "Failed"):
        return
    seconds = None
    started = (record or {}).get("startedAt")
    if isinstance(started, str):
        with contextlib.suppress(ValueError):
            begun = datetime.datetime.fromisoformat(started.replace("Z", "+00:00"))
            seconds = (ctx.now - begun).total_seconds()
    backend_ = ctx.spec.build.backend
    metrics.report_build(backend=backend_, result=result, reason=plan.reason, seconds=seconds)
    if message:
        logger.warning("build %s (%s) %s: %s", plan.name, plan.reason, result, message)
    else:
        logger.info("build %s (%s) %s", plan.name, plan.reason, result)


def _stamp(ctx: steps.Context) -> str:
    return ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _upsert(
    records: list[dict[str, Any]],
    plan: backend.BuildPlan,
    record: dict[str, Any] | None,
    *,
    result: str,
    now: Any,
    message: str = "",
    digest: str | None = None,
    restart: bool = False,
) -> dict[str, Any]:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if record is None or restart:
        if record is not None:
            records.remove(record)
        record = {
            "name": plan.name,
            "attempt": plan.attempt,
            "buildKey": plan.key,
            "reason": plan.reason,
            "image": plan.request.image,
            "startedAt": stamp,
        }
        records.insert(0, record)
    if record.get("result") != result:
        record["result"] = result
        if result in ("Succeeded", "Failed"):
            record["finishedAt"] = stamp
    if message:
        record["message"] = errors.redact(message)[-2000:]
    if digest:
        record["digest"] = digest
    return record


def _write_builds(ctx: steps.Context, records: list[dict[str, Any]]) -> None:
    limits = ctx.spec.history_limit
    kept: list[dict[str, Any]] = []
    succeeded = failed = 0
    for record in records:
        if record.get("result") == "Succeeded":
            succeeded += 1
            if succeeded > limits.succeeded:
                continue
        elif record.get("result") == "Failed":
            failed += 1
            if failed > limits.failed:
                continue
        kept.append(record)
    ctx.updates["builds"] = kept
