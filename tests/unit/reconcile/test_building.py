"""The build step's I/O around an in-process build (controller.reconcile.building): a build it
started is waited for up to `SHORT_BUILD_SECONDS`; one that ends by then is taken on by this
reconcile (decided on again at once: built, recorded, nothing woken), a longer one is left to the
wake its end calls."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Mapping
from typing import Any

import pytest

from controller.api import spec as model
from controller.api import status as status_
from controller.builds import backend, identity, inprocess
from controller.observe import metrics
from controller.reconcile import building, memory, steps
from tests.unit.reconcile import fakes

DIGEST = "sha256:" + "d" * 64
SPEC: Mapping[str, Any] = {
    "source": {"inline": {"dockerfile": "FROM scratch\n"}},
    "image": {"registry": "registry.local", "repository": "ade/runner"},
    "build": {"backend": "BuildKitDaemon"},
}


class GatedBackend(inprocess.InProcessBackend):
    """An in-process backend whose builds succeed once `release` is set (at once when it is
    set before they start)."""

    def __init__(self, tasks: inprocess.Tasks) -> None:
        super().__init__(tasks=tasks)
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def _run(
        self, plan: backend.BuildPlan, *, docker_config: Mapping[str, Any] | None
    ) -> backend.BuildState:
        self.started.append(plan.name)
        await self.release.wait()
        return backend.BuildState(backend.Phase.SUCCEEDED, digest=DIGEST, name=plan.name)


class Setup:
    """A Build step on a `GatedBackend`, the wakes its builds' ends call, one context."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.woken: list[tuple[str, str, str]] = []
        self.woke = asyncio.Event()
        self.tasks = inprocess.Tasks(on_finished=self._wake)
        self.backend = GatedBackend(self.tasks)
        services = fakes.make_services(workdir)
        services.backends = {model.BuildBackend.BUILDKIT_DAEMON: self.backend}
        services.tasks = self.tasks
        self.step = building.Build(services, memory.ObjectMemory())
        self.ctx = fakes.context(SPEC)
        inputs = identity.Inputs(revision="", base_image="", base_digest="")
        self.ctx.inputs = steps.ResolvedInputs(
            inputs=inputs,
            key=identity.build_key(self.ctx.spec, inputs),
            material=inputs.key_material(self.ctx.spec),
            context_dir=workdir,
        )

    def _wake(self, namespace: str, name: str, build: str) -> None:
        self.woken.append((namespace, name, build))
        self.woke.set()

    @staticmethod
    def counted(result: str) -> float:
        """How many builds of this backend were counted with `result` (for the reason
        `Initial`) so far."""
        labels = {"backend": "BuildKitDaemon", "result": result, "reason": "Initial"}
        return metrics.REGISTRY.get_sample_value(f"{metrics.PREFIX}_builds_total", labels) or 0.0

    def records(self) -> list[status_.BuildRecord]:
        return list(status_.BuildRecord.all_of(self.ctx.updates))


async def test_a_build_ending_within_the_wait_is_taken_on_by_the_same_reconcile(
    tmp_path: pathlib.Path,
) -> None:
    setup = Setup(tmp_path)
    setup.backend.release.set()  # the build ends as soon as it starts
    before = {result: setup.counted(result) for result in ("started", "succeeded", "reused")}

    outcome = await setup.step(setup.ctx)

    assert outcome.kind is steps.Kind.DONE, outcome
    assert len(setup.backend.started) == 1
    assert setup.ctx.built is not None
    assert setup.ctx.built.digest == DIGEST
    assert setup.ctx.updates["latestImage"]["digest"] == DIGEST
    assert [record.result for record in setup.records()] == [status_.BuildResult.SUCCEEDED]
    assert setup.woken == [], "the reconcile that waited took the build's end: nothing is woken"
    counted = {result: setup.counted(result) - before[result] for result in before}
    assert counted == {"started": 1, "succeeded": 1, "reused": 0}, "its own build, not adopted"


async def test_a_build_outlasting_the_wait_is_said_running_and_wakes_at_its_end(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(building, "SHORT_BUILD_SECONDS", 0.05)
    setup = Setup(tmp_path)

    outcome = await setup.step(setup.ctx)

    assert outcome.kind is steps.Kind.WAITING, outcome
    assert setup.ctx.built is None
    assert [record.result for record in setup.records()] == [status_.BuildResult.RUNNING]
    assert setup.woken == []
    setup.backend.release.set()
    await asyncio.wait_for(setup.woke.wait(), timeout=5)
    assert setup.woken == [("team-a", "runner", setup.records()[0].name)]
