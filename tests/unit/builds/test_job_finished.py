"""Which watch events of build Jobs wake a RunnerImage's reconcile (controller.builds.job.finished).
Pure."""

from __future__ import annotations

from typing import Any

import pytest

from controller.builds import backend, job

OWNER = backend.Owner(name="runner", namespace="team-a", uid="5f0c7c1e-0000-4000-8000-000000000001")
NAME = "runner-build-0123456789ab"


def build_job(
    status: dict[str, Any], *, owners: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": NAME,
            "namespace": OWNER.namespace,
            "labels": job.labels(OWNER, "0123"),
            "ownerReferences": [job.owner_reference(OWNER)] if owners is None else owners,
        },
        "status": status,
    }


def condition(type_: str, status: str = "True") -> dict[str, Any]:
    return {"type": type_, "status": status}


@pytest.mark.parametrize(
    "status",
    [
        {"succeeded": 1},
        {"succeeded": 1, "conditions": [condition("SuccessCriteriaMet"), condition("Complete")]},
        {"conditions": [condition("FailureTarget")]},  # a deadline, before the pod is gone
        {"failed": 1, "conditions": [condition("Failed")]},
    ],
)
@pytest.mark.parametrize("event", ["ADDED", "MODIFIED"])
def test_a_finished_build_job_wakes_its_runner_image(event: str, status: dict[str, Any]) -> None:
    assert job.finished(event, build_job(status)) == job.FinishedJob(
        namespace="team-a", owner="runner", name=NAME
    )


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"active": 1},
        {"active": 1, "ready": 1, "conditions": [condition("Suspended", "False")]},
        {"conditions": [condition("Complete", "False"), condition("Failed", "False")]},
        # not yet finished as the Job backend reads it: woken now, the reconcile would find the
        # build running, and the event that finishes it would not wake it again
        {"conditions": [condition("SuccessCriteriaMet")]},
        {"failed": 1},  # a pod failed; the Job may still retry it
    ],
)
def test_a_job_still_running_wakes_nothing(status: dict[str, Any]) -> None:
    assert job.finished("MODIFIED", build_job(status)) is None


@pytest.mark.parametrize("event", [None, "DELETED"])
def test_the_initial_listing_and_deletions_wake_nothing(event: str | None) -> None:
    # A restarted operator resumes every RunnerImage anyway; a deleted Job ended long before.
    assert job.finished(event, build_job({"succeeded": 1})) is None


@pytest.mark.parametrize(
    "owners",
    [
        [],
        [{**job.owner_reference(OWNER), "controller": False}],
        [{**job.owner_reference(OWNER), "kind": "CronJob", "apiVersion": "batch/v1"}],
        [{**job.owner_reference(OWNER), "apiVersion": "other.example/v1"}],
    ],
)
def test_a_job_no_runner_image_controls_wakes_nothing(owners: list[dict[str, Any]]) -> None:
    assert job.finished("MODIFIED", build_job({"succeeded": 1}, owners=owners)) is None


def test_the_owner_comes_from_the_owner_reference_not_the_cut_label() -> None:
    long = backend.Owner(name="r" * 70, namespace="team-a", uid=OWNER.uid)
    body = build_job({"succeeded": 1}, owners=[job.owner_reference(long)])
    assert job.finished("MODIFIED", body) == job.FinishedJob(
        namespace="team-a", owner="r" * 70, name=NAME
    )
