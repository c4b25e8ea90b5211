"""Step 4, build: exactly one build per build key, adopted after restarts, recorded with its reason.

The decisions are `build_decisions.decide`'s (pure, with table tests); this step does their I/O:
it reads the build's state from the backend, takes a build slot, looks the planned tag up in the
registry — each only when the decision asks for it — then starts the build, frees or holds the
slot, counts and logs builds, prunes finished ones, and writes `status.builds` and
`status.latestImage`. A build it started in this process (BuildKitDaemon, Docker) is waited for
up to `SHORT_BUILD_SECONDS`: one that ends by then is decided on again at once, and the
reconcile goes on to verify it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from controller import errors, failpoints
from controller.api import conditions
from controller.builds import backend
from controller.observe import logs, metrics
from controller.reconcile import build_decisions as decisions
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps, writing
from controller.reconcile import services as services_

logger = logging.getLogger(__name__)

SHORT_BUILD_SECONDS = 1.0
"""How long a reconcile that started an in-process build waits for it before it says the build
runs and stops (the build's end then wakes the next one: `reconcile.wake`). Builds of a changed
script end within it; a longer build shows as running one second later."""


@dataclasses.dataclass(frozen=True)
class Build:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.BUILT

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        started, outcome = await self._step(ctx)
        if started is None or outcome.kind is not steps.Kind.WAITING:
            return outcome
        # A build just started in this process may well end within moments (one script
        # changed): waited for here, lending the reconcile slot, this reconcile goes on with it,
        # rather than write that it builds, stop, and be woken for the rest.
        writing.expect_while_building(
            self.services.catalog, who=f"{ctx.namespace}/{ctx.name}", spec=ctx.spec
        )
        async with self.services.reconcile_slots.lent():
            ended = await self._backend(ctx).wait(started, timeout=SHORT_BUILD_SECONDS)
        if not ended:
            return outcome
        _, outcome = await self._step(ctx)  # decided on the records the first decision wrote
        return outcome

    async def _step(self, ctx: steps.Context) -> tuple[backend.BuildPlan | None, steps.Outcome]:
        """Decide and act once: (the plan of a build it started, or None; the outcome)."""
        found = ctx.resolved()
        logs.bind_build_key(found.key)
        metrics.report_build_queued(namespace=ctx.namespace, name=ctx.name, queued=False)
        slots = self.services.slots
        slot = (ctx.namespace, ctx.name, found.key)
        facts = decisions.Facts.of(ctx, policy=self.services.build_retries, slot_limit=slots.limit)
        seen = decisions.Seen()
        config: Mapping[str, Any] | None = None
        decision = decisions.decide(facts, seen)
        if isinstance(decision, decisions.Look) and decision.need is decisions.Need.STATE:
            # A build of a superseded key may still run; it no longer counts against the limit.
            slots.release_others(slot)
            seen = dataclasses.replace(seen, state=await self._backend(ctx).state(decision.plan))
            if seen.state is not None and seen.state.phase is backend.Phase.RUNNING:
                failpoints.hit(failpoints.Point.BUILD_RUNNING)
            decision = decisions.decide(facts, seen)
        if isinstance(decision, decisions.Look) and decision.need is decisions.Need.SLOT:
            seen = dataclasses.replace(seen, slot=slots.try_acquire(slot))
            decision = decisions.decide(facts, seen)
        if isinstance(decision, decisions.Look) and decision.need is decisions.Need.TAG:
            try:
                config = await secrets.push_config(self.services.kube, ctx)
                digest = await self.services.registry.resolve(
                    decision.plan.image,
                    docker_config=config,
                    auth_reason="PushFailed",
                    not_found=None,
                )
            except errors.ReconcileError:
                slots.release(slot)  # nothing starts: the slot is free for others meanwhile
                raise
            seen = dataclasses.replace(seen, tag=decisions.Tag(digest))
            decision = decisions.decide(facts, seen)
        assert isinstance(decision, decisions.Decision)
        outcome = await self._act(ctx, decision, slot=slot, docker_config=config)
        return (decision.plan if decision.start else None), outcome

    def _backend(self, ctx: steps.Context) -> backend.Backend:
        return self.services.backends[ctx.spec.build.backend]

    async def _act(
        self,
        ctx: steps.Context,
        decision: decisions.Decision,
        *,
        slot: tuple[str, str, str],
        docker_config: Mapping[str, Any] | None,
    ) -> steps.Outcome:
        """Do what `decision` says, in the order the status and the metrics expect."""
        plan, kind = decision.plan, ctx.spec.build.backend
        if decision.slot is decisions.Slot.HOLD:
            self.services.slots.hold(slot)
        elif decision.slot is decisions.Slot.RELEASE:
            self.services.slots.release(slot)
        if decision.queued:
            metrics.report_build_queued(namespace=ctx.namespace, name=ctx.name, queued=True)
        if plan is not None and decision.finished is not None:
            _report_finished(kind, plan, decision.finished)
        if plan is not None and decision.start:
            await self._backend(ctx).start(plan, docker_config=docker_config)
            metrics.report_build(backend=kind, result="started", reason=plan.reason)
            logger.info("started build %s (%s) on %s", plan.name, plan.reason, kind)
        if plan is not None and decision.adopted:
            metrics.report_build(backend=kind, result="reused", reason=plan.reason)
        if decision.records is not None:
            ctx.updates["builds"] = [record.to_status() for record in decision.records]
        if decision.image is not None:
            ctx.built = decision.image
            ctx.updates["latestImage"] = decision.image.to_status()
        if plan is not None and decision.prune and decision.records is not None:
            kept = {record.name for record in decision.records}
            await self._backend(ctx).prune(plan.owner, keep=kept)
        if isinstance(decision.outcome, decisions.Stall):
            raise errors.StalledError(decision.outcome.reason, decision.outcome.message)
        return decision.outcome


def _report_finished(kind: str, plan: backend.BuildPlan, done: decisions.Finished) -> None:
    """Count and log a build seen finished for the first time."""
    metrics.report_build(backend=kind, result=done.result, reason=plan.reason, seconds=done.seconds)
    if done.message:
        logger.warning("build %s (%s) %s: %s", plan.name, plan.reason, done.result, done.message)
    else:
        logger.info("build %s (%s) %s", plan.name, plan.reason, done.result)
