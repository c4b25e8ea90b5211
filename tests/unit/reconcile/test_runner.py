"""One level-based reconcile (controller.reconcile.runner.reconcile) driven by fake steps."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from controller import errors
from controller.api import conditions as types
from controller.api import identity
from controller.api import spec as model
from controller.observe import activity, conditions
from controller.observe.events import Event
from controller.reconcile import memory, pipeline, runner, services, steps

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
STAMP = "2024-05-01T12:00:00Z"
LATER = NOW + datetime.timedelta(minutes=10)
ANNOTATION = identity.RECONCILE_REQUEST_ANNOTATION


@dataclasses.dataclass
class FakeStep:
    """A step that returns `outcome` or raises `error`, recording each context it saw."""

    condition: str
    outcome: steps.Outcome | None = None
    error: BaseException | None = None
    updates: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seen: list[steps.Context] = dataclasses.field(default_factory=list)

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        self.seen.append(ctx)
        ctx.updates.update(self.updates)
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome

    @property
    def calls(self) -> int:
        return len(self.seen)


def done(condition: str, message: str = "", **updates: Any) -> FakeStep:
    return FakeStep(
        condition, steps.Outcome.done("Succeeded", message or f"{condition} ok"), updates=updates
    )


def raw_spec(**extra: Any) -> dict[str, Any]:
    return {
        "source": {"git": {"url": "https://github.com/org/runner.git"}},
        "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
        **extra,
    }


def view(
    spec: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
    *,
    generation: int = 4,
    annotations: Mapping[str, str] | None = None,
) -> runner.ObjectView:
    return runner.ObjectView(
        name="runner",
        namespace="team-a",
        generation=generation,
        spec=raw_spec() if spec is None else spec,
        status=status or {},
        annotations=annotations or {},
    )


def apply(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a JSON merge patch (RFC 7386), as the API server would."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = apply(result[key], value)
        else:
            result[key] = value
    return result


def by_type(report: runner.Report) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in report.status_patch.get("conditions", [])}


def old_condition(type_: str, status: str = types.TRUE, reason: str = "Old") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "observedGeneration": 1,
        "lastTransitionTime": "2020-01-01T00:00:00Z",
        "reason": reason,
        "message": "from before",
    }


# --- the happy path ------------------------------------------------------------------------------


async def test_all_steps_done_is_ready() -> None:
    pipeline_ = [done(types.INPUTS_RESOLVED, "resolved"), done(types.BUILT, "built")]
    status = {
        "conditions": [
            old_condition(types.RECONCILING),
            old_condition(types.STALLED, reason="InvalidSpec"),
            old_condition(types.READY, types.FALSE, "InvalidSpec"),
        ]
    }
    report = await runner.reconcile(view(status=status), pipeline_, now=NOW)

    assert report.result is runner.Result.READY
    assert report.retry is False
    assert report.requeue_after is None
    assert report.message == "built"
    assert report.status_patch["observedGeneration"] == 4
    found = by_type(report)
    assert list(found) == [types.READY, types.INPUTS_RESOLVED, types.BUILT]
    assert found[types.READY] == {
        "type": types.READY,
        "status": types.TRUE,
        "observedGeneration": 4,
        "lastTransitionTime": STAMP,
        "reason": "Succeeded",
        "message": "built",
    }
    assert found[types.BUILT]["status"] == types.TRUE
    assert found[types.BUILT]["message"] == "built"
    assert report.events == [Event("Normal", "Succeeded", "built")]
    assert [step.calls for step in pipeline_] == [1, 1]


async def test_steps_see_the_object() -> None:
    step = done(types.BUILT)
    status = {"sourceRevision": "abc"}
    await runner.reconcile(view(status=status), [step], now=NOW)
    ctx = step.seen[0]
    assert (ctx.name, ctx.namespace, ctx.generation) == ("runner", "team-a", 4)
    assert isinstance(ctx.spec, model.RunnerImageSpec)
    assert ctx.spec.image.registry == "contoso.azurecr.io"
    assert ctx.status == status
    assert ctx.now == NOW


async def test_steps_run_in_order() -> None:
    order: list[str] = []

    @dataclasses.dataclass
    class Recording:
        condition: str

        async def __call__(self, ctx: steps.Context) -> steps.Outcome:
            order.append(self.condition)
            return steps.Outcome.done("Succeeded", self.condition)

    names = [types.INPUTS_RESOLVED, types.REGISTRY_ACCESS, types.BUILT, types.VERIFIED]
    await runner.reconcile(view(), [Recording(name) for name in names], now=NOW)
    assert order == names


async def test_no_steps_is_ready_with_nothing_to_do() -> None:
    report = await runner.reconcile(view(), [], now=NOW)
    assert report.result is runner.Result.READY
    assert by_type(report)[types.READY]["message"] == "nothing to do"


async def test_step_updates_are_merged_into_status() -> None:
    step = done(types.BUILT, sourceRevision="abc123", buildKey=None, baseImageDigest=None)
    report = await runner.reconcile(view(status={"buildKey": "old"}), [step], now=NOW)
    assert report.status_patch["sourceRevision"] == "abc123"
    assert report.status_patch["buildKey"] is None
    assert "baseImageDigest" not in report.status_patch


async def test_new_generation_is_observed() -> None:
    first = await runner.reconcile(view(generation=1), [done(types.BUILT)], now=NOW)
    status = apply({}, first.status_patch)
    second = await runner.reconcile(
        view(status=status, generation=2), [done(types.BUILT)], now=LATER
    )
    assert second.status_patch["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in second.status_patch["conditions"])
    assert all(c["lastTransitionTime"] == STAMP for c in second.status_patch["conditions"])
    assert second.events == []


# --- invalid and suspended specs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (raw_spec(historyLimit={"succeeded": True}), "spec.historyLimit.succeeded"),
        ({"source": {"git": {"url": "https://x.example/r"}}}, "spec.image"),
        (raw_spec(dockerfile="../Dockerfile"), "spec.dockerfile"),
        (
            raw_spec(catalog={"git": {"url": "https://x.example/c"}, "manifests": ["a", "../x"]}),
            "spec.catalog.manifests[1]",
        ),
    ],
)
async def test_invalid_spec_stalls_without_running_steps(spec: dict[str, Any], field: str) -> None:
    step = done(types.BUILT)
    report = await runner.reconcile(view(spec=spec), [step], now=NOW)

    assert step.calls == 0
    assert report.result is runner.Result.STALLED
    assert report.retry is False
    assert report.message.startswith(f"{field}: ")
    found = by_type(report)
    assert set(found) == {types.READY, types.STALLED}
    for type_, status in ((types.READY, types.FALSE), (types.STALLED, types.TRUE)):
        assert found[type_]["status"] == status
        assert found[type_]["reason"] == "InvalidSpec"
        assert found[type_]["message"].startswith(f"{field}: ")
    assert report.events == [Event("Warning", "InvalidSpec", report.message)]


async def test_invalid_spec_lists_every_problem() -> None:
    spec = raw_spec(dockerfile="/Dockerfile", build={"timeout": "1s"})
    report = await runner.reconcile(view(spec=spec), [], now=NOW)
    message = by_type(report)[types.STALLED]["message"]
    assert "spec.dockerfile: " in message
    assert "spec.build.timeout: " in message


async def test_invalid_spec_never_reports_the_password() -> None:
    spec = raw_spec(source={"git": {"url": "https://bob:hunter2@github.com/org/r.git"}})
    report = await runner.reconcile(view(spec=spec), [], now=NOW)
    assert report.result is runner.Result.STALLED
    assert "hunter2" not in repr(report)


async def test_invalid_spec_keeps_step_conditions_and_removes_reconciling() -> None:
    status = {"conditions": [old_condition(types.BUILT), old_condition(types.RECONCILING)]}
    spec = raw_spec(suspend="yes")
    report = await runner.reconcile(view(spec=spec, status=status), [], now=NOW)
    found = by_type(report)
    assert found[types.BUILT] == old_condition(types.BUILT)
    assert types.RECONCILING not in found


async def test_suspended_runs_no_steps() -> None:
    step = done(types.BUILT)
    status = {"conditions": [old_condition(types.RECONCILING), old_condition(types.STALLED)]}
    report = await runner.reconcile(
        view(spec=raw_spec(suspend=True), status=status), [step], now=NOW
    )

    assert step.calls == 0
    assert report.result is runner.Result.SUSPENDED
    assert report.retry is False
    found = by_type(report)
    assert set(found) == {types.READY}
    assert found[types.READY]["status"] == types.FALSE
    assert found[types.READY]["reason"] == "Suspended"
    assert "spec.suspend" in found[types.READY]["message"]
    assert report.events == [Event("Normal", "Suspended", found[types.READY]["message"])]


# --- steps that stop the pipeline ----------------------------------------------------------------


async def test_waiting_step_stops_and_requeues() -> None:
    first = done(types.INPUTS_RESOLVED)
    waiting = FakeStep(
        types.BUILT, steps.Outcome.waiting("Progressing", "build running", requeue_after=30.0)
    )
    last = done(types.VERIFIED)
    report = await runner.reconcile(view(), [first, waiting, last], now=NOW)

    assert [first.calls, waiting.calls, last.calls] == [1, 1, 0]
    assert report.result is runner.Result.WAITING
    assert report.requeue_after == 30.0
    assert report.retry is False
    assert report.message == "build running"
    found = by_type(report)
    assert set(found) == {types.READY, types.RECONCILING, types.INPUTS_RESOLVED, types.BUILT}
    assert found[types.RECONCILING]["status"] == types.TRUE
    assert found[types.RECONCILING]["reason"] == "Progressing"
    assert found[types.READY]["status"] == types.FALSE
    assert found[types.READY]["reason"] == "Progressing"
    assert found[types.BUILT]["status"] == types.UNKNOWN
    assert found[types.INPUTS_RESOLVED]["status"] == types.TRUE
    assert report.events == [Event("Normal", "Progressing", "build running")]


async def test_blocked_step_stops_without_reconciling() -> None:
    blocked = FakeStep(types.BUILT, steps.Outcome.blocked("NotImplemented", "no builds yet"))
    last = done(types.VERIFIED)
    status = {"conditions": [old_condition(types.RECONCILING)]}
    report = await runner.reconcile(view(status=status), [blocked, last], now=NOW)

    assert last.calls == 0
    assert report.result is runner.Result.BLOCKED
    assert report.retry is False
    assert report.requeue_after is None
    found = by_type(report)
    assert set(found) == {types.READY, types.BUILT}
    assert found[types.READY]["reason"] == "NotImplemented"
    assert found[types.BUILT]["status"] == types.FALSE
    assert report.events == [Event("Warning", "NotImplemented", "no builds yet")]


async def test_stalled_error_from_step() -> None:
    first = done(types.INPUTS_RESOLVED)
    failing = FakeStep(types.BUILT, error=errors.StalledError("BaseImageMissing", "no such image"))
    last = done(types.VERIFIED)
    report = await runner.reconcile(view(), [first, failing, last], now=NOW)

    assert last.calls == 0
    assert report.result is runner.Result.STALLED
    assert report.retry is False
    assert report.message == "no such image"
    found = by_type(report)
    assert set(found) == {types.READY, types.STALLED, types.INPUTS_RESOLVED, types.BUILT}
    assert found[types.BUILT]["status"] == types.FALSE
    assert found[types.BUILT]["reason"] == "BaseImageMissing"
    assert found[types.STALLED]["status"] == types.TRUE
    assert found[types.STALLED]["reason"] == "BaseImageMissing"
    assert found[types.READY]["status"] == types.FALSE
    assert found[types.READY]["reason"] == "BaseImageMissing"
    assert report.events == [Event("Warning", "BaseImageMissing", "no such image")]


async def test_stalled_error_from_step_is_redacted_everywhere() -> None:
    error = errors.StalledError("AuthFailed", "denied by https://bot:hunter2@git.example/r.git")
    report = await runner.reconcile(view(), [FakeStep(types.BUILT, error=error)], now=NOW)
    assert "hunter2" not in repr(report.status_patch)


async def test_stalled_error_redacted_in_summary() -> None:
    error = errors.StalledError("AuthFailed", "denied by https://bot:hunter2@git.example/r.git")
    report = await runner.reconcile(view(), [FakeStep(types.BUILT, error=error)], now=NOW)
    found = by_type(report)
    assert "hunter2" not in found[types.READY]["message"]
    assert "hunter2" not in found[types.STALLED]["message"]
    assert "hunter2" not in report.message
    assert all("hunter2" not in event.message for event in report.events)


async def test_transient_error_retries_with_redacted_message() -> None:
    failing = FakeStep(
        types.INPUTS_RESOLVED,
        error=errors.TransientError(
            "SourceUnreachable",
            "git fetch https://bot:hunter2@git.example/r.git: timeout",
            retry_after=42.0,
        ),
    )
    last = done(types.BUILT)
    status = {"conditions": [old_condition(types.STALLED), old_condition(types.RECONCILING)]}
    report = await runner.reconcile(view(status=status), [failing, last], now=NOW)

    assert last.calls == 0
    assert report.result is runner.Result.FAILED
    assert report.retry is True
    assert report.requeue_after == 42.0
    expected = "git fetch https://***@git.example/r.git: timeout"
    assert report.message == expected
    found = by_type(report)
    assert set(found) == {types.READY, types.INPUTS_RESOLVED}
    assert found[types.READY]["status"] == types.FALSE
    assert found[types.READY]["reason"] == "SourceUnreachable"
    assert found[types.READY]["message"] == expected
    assert found[types.INPUTS_RESOLVED]["status"] == types.FALSE
    assert found[types.INPUTS_RESOLVED]["message"] == expected
    assert "hunter2" not in repr(report)
    assert report.events == [Event("Warning", "SourceUnreachable", expected)]


async def test_transient_error_without_retry_after() -> None:
    failing = FakeStep(types.BUILT, error=errors.TransientError("RegistryDown", "503"))
    report = await runner.reconcile(view(), [failing], now=NOW)
    assert report.retry is True
    assert report.requeue_after is None


async def test_unexpected_exception_is_a_reconcile_error() -> None:
    failing = FakeStep(types.BUILT, error=KeyError("https://u:pw123@h.example/x"))
    last = done(types.VERIFIED)
    report = await runner.reconcile(view(), [failing, last], now=NOW)

    assert last.calls == 0
    assert report.result is runner.Result.FAILED
    assert report.retry is True
    assert report.requeue_after is None
    found = by_type(report)
    assert found[types.READY]["status"] == types.FALSE
    assert found[types.READY]["reason"] == "ReconcileError"
    assert found[types.READY]["message"].startswith("KeyError: ")
    assert found[types.BUILT]["reason"] == "ReconcileError"
    assert types.STALLED not in found
    assert "pw123" not in repr(report)


# --- idempotence ---------------------------------------------------------------------------------

Scenario = Callable[[], tuple[Mapping[str, Any], list[steps.Step]]]

SCENARIOS: dict[str, Scenario] = {
    "ready": lambda: (raw_spec(), [done(types.INPUTS_RESOLVED), done(types.BUILT)]),
    "ready-with-updates": lambda: (raw_spec(), [done(types.BUILT, sourceRevision="abc")]),
    "waiting": lambda: (
        raw_spec(),
        [
            done(types.INPUTS_RESOLVED),
            FakeStep(types.BUILT, steps.Outcome.waiting("Progressing", "b", requeue_after=5)),
        ],
    ),
    "blocked": lambda: (raw_spec(), [FakeStep(types.BUILT, steps.Outcome.blocked("X", "y"))]),
    "skipped": lambda: (raw_spec(), [FakeStep(types.BUILT, steps.Outcome.skipped("no"))]),
    "stalled-step": lambda: (
        raw_spec(),
        [FakeStep(types.BUILT, error=errors.StalledError("Bad", "https://a:b@c/d"))],
    ),
    "transient": lambda: (
        raw_spec(),
        [FakeStep(types.BUILT, error=errors.TransientError("Down", "https://a:b@c/d"))],
    ),
    "unexpected": lambda: (raw_spec(), [FakeStep(types.BUILT, error=RuntimeError("boom"))]),
    "invalid-spec": lambda: (raw_spec(dockerfile="../x"), [done(types.BUILT)]),
    "suspended": lambda: (raw_spec(suspend=True), [done(types.BUILT)]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_second_reconcile_writes_nothing(name: str) -> None:
    spec, steps_ = SCENARIOS[name]()
    first = await runner.reconcile(view(spec=spec), steps_, now=NOW)
    assert first.status_patch != {}
    status = apply({}, first.status_patch)

    spec, steps_ = SCENARIOS[name]()
    second = await runner.reconcile(view(spec=spec, status=status), steps_, now=LATER)
    assert second.status_patch == {}
    assert second.events == []
    assert second.result is first.result


async def test_idle_after_a_change_of_state() -> None:
    failing = [FakeStep(types.BUILT, error=errors.TransientError("Down", "503"))]
    first = await runner.reconcile(view(), failing, now=NOW)
    status = apply({}, first.status_patch)

    second = await runner.reconcile(view(status=status), [done(types.BUILT)], now=LATER)
    assert second.status_patch != {}
    assert second.events == [Event("Normal", "Succeeded", "Built ok")]
    later_stamp = "2024-05-01T12:10:00Z"
    assert all(c["lastTransitionTime"] == later_stamp for c in second.status_patch["conditions"])
    status = apply(status, second.status_patch)

    third = await runner.reconcile(view(status=status), [done(types.BUILT)], now=LATER)
    assert third.status_patch == {}
    assert third.events == []


# --- manual trigger ------------------------------------------------------------------------------


async def test_reconcile_request_is_echoed_once() -> None:
    first = await runner.reconcile(view(annotations={ANNOTATION: "t1"}), [], now=NOW)
    assert first.status_patch["lastHandledReconcileAt"] == "t1"
    status = apply({}, first.status_patch)

    second = await runner.reconcile(
        view(status=status, annotations={ANNOTATION: "t1"}), [], now=LATER
    )
    assert second.status_patch == {}
    assert second.events == []

    third = await runner.reconcile(
        view(status=status, annotations={ANNOTATION: "t2"}), [], now=LATER
    )
    assert third.status_patch == {"lastHandledReconcileAt": "t2"}
    assert third.events == []


async def test_no_reconcile_request_no_echo() -> None:
    report = await runner.reconcile(view(annotations={"other": "x"}), [], now=NOW)
    assert "lastHandledReconcileAt" not in report.status_patch


async def test_reconcile_request_echoed_even_when_stalled() -> None:
    spec = raw_spec(dockerfile="/abs")
    report = await runner.reconcile(view(spec=spec, annotations={ANNOTATION: "t9"}), [], now=NOW)
    assert report.status_patch["lastHandledReconcileAt"] == "t9"


# --- skipped steps -------------------------------------------------------------------------------


async def test_skipped_step_removes_its_condition() -> None:
    status = {
        "conditions": [
            old_condition(types.READY),
            old_condition(types.REGISTRY_ACCESS),
            old_condition(types.CATALOG_SYNCED),
        ]
    }
    skipping = FakeStep(types.REGISTRY_ACCESS, steps.Outcome.skipped("not requested"))
    after = done(types.BUILT, "built")
    report = await runner.reconcile(view(status=status), [skipping, after], now=NOW)

    assert after.calls == 1
    assert report.result is runner.Result.READY
    found = by_type(report)
    assert types.REGISTRY_ACCESS not in found
    assert found[types.CATALOG_SYNCED] == old_condition(types.CATALOG_SYNCED)
    assert found[types.READY]["message"] == "built"
    assert found[types.READY]["lastTransitionTime"] == "2020-01-01T00:00:00Z"


# --- the real pipeline and its seams -------------------------------------------------------------


def _default_steps() -> list[steps.Step]:
    # Building the list touches no service; the seams below never use one.
    return pipeline.default_steps(typing.cast(services.Services, object()), memory.ObjectMemory())


def test_default_steps_own_the_step_conditions_in_order() -> None:
    assert [step.condition for step in _default_steps()] == list(types.STEP_CONDITIONS)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (types.REGISTRY_ACCESS, "no registryAccess in the spec"),
        (types.VERIFIED, "no image to verify yet"),
        (types.CATALOG_SYNCED, "no catalog in the spec"),
    ],
)
async def test_a_default_step_not_asked_for_is_skipped_without_a_service(
    condition: str, message: str
) -> None:
    (step,) = [s for s in _default_steps() if s.condition == condition]
    spec = raw_spec()
    spec.pop("catalog", None)
    ctx = steps.Context(
        name="n", namespace="ns", generation=1, spec=model.parse(spec), status={}, now=NOW
    )
    outcome = await step(ctx)
    assert (outcome.kind, outcome.message) == (steps.Kind.SKIPPED, message)


# --- ObjectView ----------------------------------------------------------------------------------


def test_object_view_of_body() -> None:
    body = {
        "metadata": {
            "name": "r",
            "namespace": "ns",
            "generation": 7,
            "annotations": {ANNOTATION: "t"},
        },
        "spec": {"suspend": True},
        "status": {"observedGeneration": 6},
    }
    assert runner.ObjectView.of(body) == runner.ObjectView(
        name="r",
        namespace="ns",
        generation=7,
        spec={"suspend": True},
        status={"observedGeneration": 6},
        annotations={ANNOTATION: "t"},
    )


def test_object_view_of_sparse_body() -> None:
    body: dict[str, Any] = {"metadata": {"annotations": None}, "spec": None, "status": None}
    assert runner.ObjectView.of(body) == runner.ObjectView("", "", 0, {}, {}, {})
    assert runner.ObjectView.of({}) == runner.ObjectView("", "", 0, {}, {}, {})


def _conditions(report: runner.Report) -> Sequence[Mapping[str, Any]]:
    items: Sequence[Mapping[str, Any]] = report.status_patch["conditions"]
    return items


async def test_summary_conditions_come_first() -> None:
    report = await runner.reconcile(view(), [done(types.BUILT), done(types.VERIFIED)], now=NOW)
    assert [c["type"] for c in _conditions(report)] == [types.READY, types.BUILT, types.VERIFIED]
    assert conditions.is_true(_conditions(report), types.READY)


def test_a_new_generation_is_said_to_be_in_progress_before_any_step_runs() -> None:
    stalled = [
        conditions.Condition.false(types.READY, "InvalidSpec", "bad"),
        conditions.Condition.true(types.STALLED, "InvalidSpec", "bad"),
    ]
    old = conditions.merge(
        [], {c.type: c for c in stalled}, generation=1, now="2024-05-01T11:00:00Z"
    )
    obj = runner.ObjectView(
        "ns", "r", 2, raw_spec(), {"observedGeneration": 1, "conditions": old}, {}
    )
    patch = runner.progress(obj, now=NOW)
    assert patch is not None
    assert patch["observedGeneration"] == 2
    found = {c["type"]: c for c in patch["conditions"]}
    assert found[types.RECONCILING]["status"] == "True"
    assert found[types.RECONCILING]["reason"] == "Progressing"
    assert found[types.RECONCILING]["observedGeneration"] == 2
    assert types.STALLED not in found  # an old stall is about an old spec
    assert found[types.READY]["status"] == "False"


def test_nothing_to_say_when_status_already_speaks_of_this_generation() -> None:
    obj = runner.ObjectView("ns", "r", 3, raw_spec(), {"observedGeneration": 3}, {})
    assert runner.progress(obj, now=NOW) is None
    new = runner.ObjectView("ns", "r", 1, raw_spec(), {}, {})
    patch = runner.progress(new, now=NOW)
    assert patch is not None
    assert [c["type"] for c in patch["conditions"]] == [types.RECONCILING]


# -- the reconcile's deadline ---------------------------------------------------------------------


@dataclasses.dataclass
class HangingStep:
    """A step that waits on a dependency that never answers; notes whether it was cancelled."""

    condition: str
    cancelled: bool = False

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        try:
            with activity.waiting_on("the registry r.example:5000 (token)"):
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")


async def test_a_step_past_the_deadline_is_cancelled_and_reported_as_a_timeout() -> None:
    first, hanging, after = done("InputsResolved"), HangingStep("Verified"), done("CatalogSynced")
    report = await runner.reconcile(view(), [first, hanging, after], now=NOW, deadline=0.1)
    assert hanging.cancelled
    assert after.calls == 0
    assert report.result is runner.Result.FAILED
    assert report.retry
    verified = conditions.find(report.status_patch["conditions"], "Verified")
    ready = conditions.find(report.status_patch["conditions"], types.READY)
    assert verified is not None
    assert ready is not None
    assert (verified["status"], verified["reason"]) == ("False", "ReconcileTimeout")
    assert (ready["status"], ready["reason"]) == ("False", "ReconcileTimeout")
    assert ready["message"] == (
        "Verified: not done within the reconcile's deadline of 0.1s"
        " (still waiting on the registry r.example:5000 (token)); retried"
    )
    inputs = conditions.find(report.status_patch["conditions"], "InputsResolved")
    assert inputs is not None
    assert inputs["status"] == "True"


async def test_the_deadline_is_for_all_steps_together() -> None:
    @dataclasses.dataclass
    class Slow:
        condition: str

        async def __call__(self, ctx: steps.Context) -> steps.Outcome:
            await asyncio.sleep(0.08)
            return steps.Outcome.done("Succeeded", f"{self.condition} ok")

    report = await runner.reconcile(
        view(), [Slow("InputsResolved"), Slow("Built"), Slow("Verified")], now=NOW, deadline=0.2
    )
    assert report.result is runner.Result.FAILED
    assert "Verified: not done" in report.message
    assert "a dependency answers too slowly or not at all" in report.message


async def test_a_timeout_a_step_raises_itself_is_no_deadline() -> None:
    step = FakeStep("Verified", error=TimeoutError("the step's own"))
    report = await runner.reconcile(view(), [step], now=NOW, deadline=60)
    assert report.result is runner.Result.FAILED
    assert "ReconcileTimeout" not in str(report.status_patch)
    assert "TimeoutError: the step's own" in report.message


async def test_without_a_deadline_steps_take_their_time() -> None:
    report = await runner.reconcile(view(), [done("InputsResolved")], now=NOW, deadline=None)
    assert report.result is runner.Result.READY
