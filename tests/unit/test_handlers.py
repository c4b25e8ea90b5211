"""The kopf layer's own decisions: how long a transient failure waits, which objects the
progress timer looks at, which Jobs are watched (the rest is `controller.reconcile.cycle`)."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
from typing import Any, cast

import kopf
import pytest
from kopf._core.intents.handlers import TimerHandler

from controller import assembly, config, handlers, kube
from controller.builds import backend, job
from controller.reconcile import limits, services, wake


@pytest.mark.parametrize(
    ("retry", "delay"),
    [(0, 5.0), (1, 10.0), (2, 20.0), (5, 160.0), (6, 300.0), (50, 300.0)],
)
def test_a_transient_failure_waits_5s_doubling_up_to_five_minutes(retry: int, delay: float) -> None:
    assert handlers.retry_delay(retry) == delay


@pytest.mark.parametrize(
    ("conditions", "looked_at"),
    [
        ([], False),
        ([{"type": "Reconciling", "status": "True"}], True),
        ([{"type": "Reconciling", "status": "False"}], False),
        ([{"type": "Ready", "status": "True"}], False),
        ([{"type": "Ready", "status": "False"}, {"type": "Reconciling", "status": "True"}], True),
    ],
)
def test_the_progress_timer_runs_only_while_work_is_in_flight(
    conditions: list[dict[str, Any]], looked_at: bool
) -> None:
    assert handlers._reconciling({"conditions": conditions}) is looked_at  # type: ignore[arg-type]


class Waker:
    def __init__(self) -> None:
        self.woken: list[tuple[str, str, str]] = []

    def build_finished(self, namespace: str, name: str, build: str) -> None:
        self.woken.append((namespace, name, build))


def test_finished_build_jobs_are_watched_by_label_and_wake_their_runner_image(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    waker = Waker()
    built = services.Services(
        kube=cast(kube.Kube, None),
        backends={},
        slots=limits.BuildSlots(limit=1),
        workdir=tmp_path,
        waker=cast(wake.Waker, waker),
    )
    monkeypatch.setattr(assembly, "services_from_config", lambda _: built)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, config.from_env({}))
    (watch,) = [  # the Jobs' raw-event watch (the other is the RunnerImages' first word)
        h
        for h in registry._watching.get_all_handlers()
        if h.selector is not None and h.selector.any_name == "jobs"
    ]
    assert watch.selector is not None
    assert (watch.selector.group, watch.selector.version, watch.selector.any_name) == (
        "batch",
        "v1",
        "jobs",
    )
    assert watch.labels == {job.LABEL_MANAGED_BY: job.MANAGED_BY}
    settings = kopf.OperatorSettings()
    for startup in registry._activities.get_all_handlers():
        if str(startup.id).endswith("configure"):
            configure: Any = startup.fn
            configure(settings=settings)
    assert list(settings.watching.label_selectors.values()) == [
        f"{job.LABEL_MANAGED_BY}={job.MANAGED_BY}"
    ]
    # An API server away for minutes is waited out, looked at again every 5 s at most.
    backoffs = list(cast(Any, settings.networking.error_backoffs))
    assert sum(backoffs) >= 600
    assert max(backoffs) <= 5

    owner = backend.Owner(name="runner", namespace="team-a", uid="u-1")
    body: Any = {
        "metadata": {
            "name": "runner-build-1",
            "namespace": "team-a",
            "ownerReferences": [job.owner_reference(owner)],
        },
        "status": {"succeeded": 1},
    }
    on_job: Any = watch.fn
    asyncio.run(on_job(type="MODIFIED", body=kopf.Body(body)))
    running: Any = {**body, "status": {"active": 1}}
    asyncio.run(on_job(type="MODIFIED", body=kopf.Body(running)))
    assert waker.woken == [("team-a", "runner", "runner-build-1")]


def _body(spec: dict[str, Any], **annotations: str) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "runners.ade.dev/v1alpha1",
            "kind": "RunnerImage",
            "metadata": {"name": "x", "namespace": "n", "annotations": annotations},
            "spec": spec,
            "status": {"observedGeneration": 1},
        }
    )


def test_kopf_records_the_handled_spec_as_a_small_digest() -> None:
    # The whole spec in an annotation broke any RunnerImage above 256 KiB of annotations (large
    # inline scripts): every patch was refused and retried without end (issue 11).
    storage = handlers.DigestDiffBaseStorage(prefix="kopf.runners.ade.dev")
    big = {"source": {"inline": {"scripts": {"deploy.sh": "x" * 1_000_000}}}}
    essence = storage.build(body=_body(big))
    patch = kopf.Patch()
    storage.store(body=_body(big), patch=patch, essence=essence)
    stored = patch["metadata"]["annotations"]["kopf.runners.ade.dev/last-handled-configuration"]
    assert len(stored) < 100
    assert storage.build(body=_body(big)) == essence  # the same spec: no update seen
    changed = {"source": {"inline": {"scripts": {"deploy.sh": "y" * 1_000_000}}}}
    assert storage.build(body=_body(changed)) != essence  # a change: an update
    # as kopf's own: a new annotation (a manual trigger) is a change, the status is not
    assert storage.build(body=_body(big, **{"runners.ade.dev/reconcile": "1"})) != essence


def test_timers_first_run_one_interval_after_the_object_is_seen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    # Not at once: the create (or resume) handler reconciles a new object then, and a timer
    # beside it would reconcile it twice and move its resourceVersion under kopf's finalizer
    # patch (refused with 422 and made again: a burst's writes nearly doubled).
    built = services.Services(
        kube=cast(kube.Kube, None), backends={}, slots=limits.BuildSlots(limit=1), workdir=tmp_path
    )
    monkeypatch.setattr(assembly, "services_from_config", lambda _: built)
    registry = kopf.OperatorRegistry()
    configured = config.from_env({"ADE_RESYNC_INTERVAL": "10m", "ADE_PROGRESS_INTERVAL": "3s"})
    handlers.register(registry, configured)
    timers = {
        str(timer.id).rsplit(".", 1)[-1]: (timer.interval, timer.initial_delay)
        for timer in registry._spawning.get_all_handlers()
        if isinstance(timer, TimerHandler)
    }
    assert timers == {
        "on_timer": (600.0, 600.0),
        "on_progress": (3.0, 3.0),
        "on_receiver": (600.0, 600.0),
    }


def _runner_image(status: dict[str, Any] | None = None, **spec: Any) -> kopf.Body:
    return kopf.Body(
        cast(
            kopf.RawBody,
            {
                "metadata": {"namespace": "ns", "name": "x", "generation": 1},
                "spec": {
                    "source": {"inline": {"dockerfile": "FROM scratch\n"}},
                    "image": {"registry": "r.example", "repository": "x"},
                    **spec,
                },
                "status": status or {},
            },
        )
    )


def test_a_new_object_says_reconciling_in_kopfs_first_cycle() -> None:
    now = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
    said = handlers.first_cycle_status(_runner_image(), now=now)
    assert said is not None
    assert said["observedGeneration"] == 1
    assert [(c["type"], c["status"]) for c in said["conditions"]] == [("Reconciling", "True")]


def test_the_echo_of_the_first_word_says_nothing() -> None:
    """Its echo (the status, without the finalizer yet) is the cycle that adds the finalizer."""
    now = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
    first = handlers.first_cycle_status(_runner_image(), now=now)
    assert first is not None
    assert handlers.first_cycle_status(_runner_image(first), now=now) is None


def test_no_handler_that_brings_the_finalizer_runs_in_the_cycle_of_the_first_word(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """The first word is the only write of its cycle: the changes, the timers and the deletion
    (any of which makes kopf add its finalizer) wait for its echo, a newer resourceVersion."""
    built = services.Services(
        kube=cast(kube.Kube, None), backends={}, slots=limits.BuildSlots(limit=1), workdir=tmp_path
    )
    monkeypatch.setattr(assembly, "services_from_config", lambda _: built)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, config.from_env({}))
    runner_images = [
        handler
        for handlers_ in (registry._changing, registry._spawning)
        for handler in handlers_.get_all_handlers()
        if handler.selector is not None and handler.selector.any_name == "runnerimages"
    ]
    assert {str(handler.id).rsplit(".", 1)[-1] for handler in runner_images} >= {
        "on_change",
        "on_timer",
        "on_progress",
        "on_delete",
    }
    working = {"observedGeneration": 1, "conditions": [{"type": "Reconciling", "status": "True"}]}
    raw = dict(_runner_image(working))
    body = kopf.Body(
        cast(kopf.RawBody, {**raw, "metadata": {**raw["metadata"], "resourceVersion": "7"}})
    )
    saying = kopf.Memo({handlers._SAYING: "7"})
    echoed = kopf.Memo({handlers._SAYING: "6"})
    for handler in runner_images:
        when: Any = handler.when  # called with the kwargs these filters read
        assert when is not None, handler.id
        assert not when(body=body, memo=saying, status=body.status), handler.id
        assert when(body=body, memo=echoed, status=body.status), handler.id


def test_an_object_its_spec_decides_says_nothing_in_kopfs_first_cycle() -> None:
    now = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
    assert handlers.first_cycle_status(_runner_image(suspend=True), now=now) is None
