"""One reconcile as the handlers run it (controller.reconcile.cycle), with the cluster faked: the
early `Reconciling` write of a new generation (none when the spec alone decides), what is
remembered, one reconcile at a time, the reconcile slots, and a service's Retry-After held
against every cause of a reconcile."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
from typing import Any

import pytest

from controller import errors, kube
from controller.api import identity
from controller.reconcile import cycle, pipeline, runner, steps
from tests.unit.reconcile import fakes

SPEC = {
    # The steps run and stall at registry access (the fakes have no Azure clients): no service
    # but the cluster's status is used.
    "source": {"inline": {"dockerfile": "FROM scratch\n", "scripts": {}}},
    "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
    "registryAccess": {
        "acr": {
            "subscriptionId": "00000000-0000-0000-0000-000000000000",
            "resourceGroup": "rg",
            "name": "contoso",
            "credentialsSecretRef": {"name": "absent"},
        }
    },
}
NOW = datetime.datetime(2026, 12, 6, tzinfo=datetime.UTC)
SUSPENDED = {**SPEC, "suspend": True}
INVALID = {**SPEC, "dockerfile": "../Dockerfile"}


class StatusKube(fakes.FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.patches: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.three_written = asyncio.Event()

    async def patch_status(self, *, namespace: str, name: str, patch: Any, **_: Any) -> str:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        self.patches.append(patch)
        if len(self.patches) == 3:
            self.three_written.set()
        return f"rv-{len(self.patches)}"


def view(
    generation: int, status: dict[str, Any] | None = None, spec: dict[str, Any] = SPEC
) -> runner.ObjectView:
    return runner.ObjectView(
        name="runner",
        namespace="team-a",
        generation=generation,
        spec=spec,
        status=status or {},
        annotations={},
    )


async def test_a_new_generation_says_reconciling_first_then_reports(tmp_path: pathlib.Path) -> None:
    cluster = StatusKube()
    services = fakes.make_services(tmp_path, kube_=cluster)
    state = cycle.ObjectState()
    report = await cycle.run(services, state, view(3), version="rv-0")
    early, written = cluster.patches
    assert written == report.status_patch  # the reconcile's own write, after the early one
    assert early["observedGeneration"] == 3
    assert [c["type"] for c in early["conditions"]] == ["Reconciling"]
    assert report.result is runner.Result.STALLED
    assert state.memory.reported == ("False", "AzureUnavailable")
    # the early write's version and the one read are both older than the reconcile's own write
    assert state.memory.stale_versions == {"rv-0", "rv-1"}


async def test_a_known_generation_writes_nothing_early(tmp_path: pathlib.Path) -> None:
    cluster = StatusKube()
    services = fakes.make_services(tmp_path, kube_=cluster)
    known = view(3, {"observedGeneration": 3})
    report = await cycle.run(services, cycle.ObjectState(), known, version="v")
    assert cluster.patches == [report.status_patch]  # its own write only


async def test_one_reconcile_of_an_object_at_a_time(tmp_path: pathlib.Path) -> None:
    cluster = StatusKube()
    services = fakes.make_services(tmp_path, kube_=cluster)
    state = cycle.ObjectState()
    await asyncio.gather(*(cycle.run(services, state, view(g), version="") for g in (1, 2, 3)))
    assert cluster.most_in_flight == 1
    assert len(cluster.patches) == 6  # each its early write and its own, never two at once


async def test_other_objects_say_reconciling_while_the_slots_are_taken(
    tmp_path: pathlib.Path,
) -> None:
    cluster = StatusKube()
    services = fakes.make_services(tmp_path, kube_=cluster)
    services.reconcile_slots = type(services.reconcile_slots)(limit=1)
    async with services.reconcile_slots.held():  # every slot taken
        runs = [
            asyncio.ensure_future(cycle.run(services, cycle.ObjectState(), view(1), version=""))
            for _ in range(3)
        ]
        await asyncio.wait_for(cluster.three_written.wait(), timeout=5)
        assert not any(run.done() for run in runs)
    await asyncio.gather(*runs)


# -- a service's Retry-After holds every cause of a reconcile ------------------------------------


class ThrottledStep:
    """A step whose service answers 429 with Retry-After (`paced`), counting its calls."""

    condition = "InputsResolved"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        self.calls += 1
        raise errors.TransientError(
            "RegistryUnavailable",
            "r.example asks to retry after 30s",
            retry_after=self.seconds,
            paced=True,
        )


def unsuspended(generation: int, request: str | None = None) -> runner.ObjectView:
    spec = {key: value for key, value in SPEC.items() if key != "suspend"}
    annotations = {identity.RECONCILE_REQUEST_ANNOTATION: request} if request else {}
    return runner.ObjectView(
        name="runner",
        namespace="team-a",
        generation=generation,
        spec=spec,
        status={"observedGeneration": generation},
        annotations=annotations,
    )


async def test_no_reconcile_calls_a_service_before_its_retry_after(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = ThrottledStep(30.0)
    monkeypatch.setattr(pipeline, "default_steps", lambda *_: [step])
    services = fakes.make_services(tmp_path, kube_=StatusKube())
    state = cycle.ObjectState()
    first = await cycle.run(services, state, unsuspended(2), version="")
    assert (first.retry, first.hold, step.calls) == (True, 30.0, 1)
    assert first.status_patch  # the failure is reported once
    # A timer, a build that ended, another handler's retry: the service is not called again.
    again = await cycle.run(services, state, unsuspended(2), version="")
    assert step.calls == 1
    assert again.retry
    assert again.status_patch == {}
    assert again.requeue_after is not None
    assert 29.0 < again.requeue_after <= 30.0
    assert again.message == first.message
    # The user's word wins: a new spec, or a reconcile asked for.
    await cycle.run(services, state, unsuspended(3), version="")
    assert step.calls == 2
    await cycle.run(services, state, unsuspended(3, request="2026-01-01T00:00:00Z"), version="")
    assert step.calls == 3


async def test_the_hold_ends_when_its_time_has_passed(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = ThrottledStep(0.05)
    monkeypatch.setattr(pipeline, "default_steps", lambda *_: [step])
    services = fakes.make_services(tmp_path, kube_=StatusKube())
    state = cycle.ObjectState()
    await cycle.run(services, state, unsuspended(2), version="")
    await asyncio.sleep(0.06)
    await cycle.run(services, state, unsuspended(2), version="")
    assert step.calls == 2


async def test_a_failure_without_retry_after_holds_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Failing(ThrottledStep):
        async def __call__(self, ctx: steps.Context) -> steps.Outcome:
            self.calls += 1
            raise errors.TransientError("RegistryUnavailable", "refused", retry_after=10.0)

    step = Failing(0)
    monkeypatch.setattr(pipeline, "default_steps", lambda *_: [step])
    services = fakes.make_services(tmp_path, kube_=StatusKube())
    state = cycle.ObjectState()
    first = await cycle.run(services, state, unsuspended(2), version="")
    await cycle.run(services, state, unsuspended(2), version="")
    assert first.hold is None
    assert step.calls == 2


@pytest.mark.parametrize(("spec", "result"), [(SUSPENDED, "suspended"), (INVALID, "stalled")])
async def test_what_the_spec_alone_decides_is_reported_without_an_early_write(
    tmp_path: pathlib.Path, spec: dict[str, Any], result: str
) -> None:
    # A burst of suspended (or invalid) objects: one status write each, not two.
    cluster = StatusKube()
    services = fakes.make_services(tmp_path, kube_=cluster)
    state = cycle.ObjectState()
    report = await cycle.run(services, state, view(1, spec=spec), version="rv-0")
    assert cluster.patches == [report.status_patch]
    assert report.result.value == result
    assert report.status_patch["observedGeneration"] == 1
    assert state.memory.stale_versions == {"rv-0"}


def test_the_first_word_of_a_new_object_is_reconciling() -> None:
    early = cycle.first_word(view(1), now=NOW)
    assert early is not None
    assert early["observedGeneration"] == 1
    assert [(c["type"], c["status"]) for c in early["conditions"]] == [("Reconciling", "True")]


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(view(2, {"observedGeneration": 2}), id="its generation already spoken of"),
        pytest.param(view(1, spec=SUSPENDED), id="suspended: its report follows at once"),
        pytest.param(view(1, spec=INVALID), id="invalid: its report follows at once"),
    ],
)
def test_no_first_word_when_there_is_nothing_to_say_early(obj: runner.ObjectView) -> None:
    assert cycle.first_word(obj, now=NOW) is None


async def test_a_reconcile_after_the_first_word_writes_nothing_early(
    tmp_path: pathlib.Path,
) -> None:
    # kopf wrote the first word before the finalizer: the reconcile reads it, says it not again.
    cluster = StatusKube()
    services = fakes.make_services(tmp_path, kube_=cluster)
    said = cycle.first_word(view(1), now=NOW)
    assert said is not None
    report = await cycle.run(services, cycle.ObjectState(), view(1, said), version="rv-1")
    assert cluster.patches == [report.status_patch]
    assert report.result is runner.Result.STALLED  # its own patch, from the status it read
    assert [c["type"] for c in report.status_patch["conditions"]] != ["Reconciling"]


class RefusingKube(StatusKube):
    """Writes the early status, refuses the reconcile's own write with `status`."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    async def patch_status(self, *, namespace: str, name: str, patch: Any, **_: Any) -> str:
        if "Reconciling" not in [c["type"] for c in patch.get("conditions") or []]:
            raise kube.KubeError(self.status, f"HTTP {self.status}")
        return await super().patch_status(namespace=namespace, name=name, patch=patch)


async def test_a_status_not_written_is_not_remembered_and_the_reconcile_is_retried(
    tmp_path: pathlib.Path,
) -> None:
    cluster = RefusingKube(422)
    services = fakes.make_services(tmp_path, kube_=cluster)
    state = cycle.ObjectState()
    report = await cycle.run(services, state, view(3), version="rv-0")
    assert report.retry
    assert "the status could not be written" in report.message
    assert report.status_patch == {}
    assert report.events == []
    assert state.memory.written is None
    assert state.memory.reported is None


async def test_a_status_write_for_an_object_gone_is_nothing_to_retry(
    tmp_path: pathlib.Path,
) -> None:
    cluster = RefusingKube(404)
    services = fakes.make_services(tmp_path, kube_=cluster)
    report = await cycle.run(services, cycle.ObjectState(), view(3), version="rv-0")
    assert not report.retry
    assert report.result is runner.Result.STALLED
