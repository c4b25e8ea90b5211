"""How the Job backend reads a build's state from the Job and its pod, for the outcomes a real
node showed: a Job past its deadline (whose pod is gone), an image the kubelet cannot pull."""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import Mapping
from typing import Any, cast

from controller import kube
from controller.builds import backend, job_backend
from tests.unit.reconcile.test_build_plan import context, plan, spec


class FakeKube:
    """`kube.Kube` as the backend's `state` reads it: one Job, its pods; deletions recorded."""

    def __init__(self, found: Mapping[str, Any] | None, pods: list[Mapping[str, Any]]) -> None:
        self.found = found
        self.pods = pods
        self.deleted: list[str] = []

    async def get_job(self, *, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.found

    async def list_pods(self, *, namespace: str, selector: str) -> list[Mapping[str, Any]]:
        return self.pods

    async def delete_job(self, *, namespace: str, name: str) -> None:
        self.deleted.append(name)


def ago(seconds: float) -> str:
    stamp = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting_pod(reason: str, message: str, *, age: float) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "creationTimestamp": ago(age)},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "buildkit", "state": {"waiting": {"reason": reason, "message": message}}}
            ],
        },
    }


async def state(
    tmp_path: pathlib.Path, found: Mapping[str, Any] | None, pods: list[Mapping[str, Any]]
) -> tuple[backend.BuildState, FakeKube]:
    fake = FakeKube(found, pods)
    jobs = job_backend.JobBackend(kube=cast(kube.Kube, fake), pending_timeout=300)
    return await jobs.state(plan(spec(), context(tmp_path))), fake


async def test_a_job_past_its_deadline_says_so_before_its_pod_is_gone(
    tmp_path: pathlib.Path,
) -> None:
    condition = {
        "type": "FailureTarget",
        "status": "True",
        "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline",
    }
    found = {"metadata": {"creationTimestamp": ago(70)}, "status": {"conditions": [condition]}}
    read, _ = await state(tmp_path, found, [])
    assert read.phase is backend.Phase.FAILED
    assert read.message.startswith("the build ran past its deadline (spec.build.timeout)")
    assert "Job was active longer than specified deadline" in read.message


async def test_a_failed_run_step_reports_buildkits_words_not_the_back_off_limit(
    tmp_path: pathlib.Path,
) -> None:
    condition = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    pod = {
        "metadata": {"creationTimestamp": ago(10)},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "buildkit",
                    "state": {"terminated": {"exitCode": 1, "message": "#6 ERROR: exit code: 1"}},
                }
            ],
        },
    }
    found = {
        "metadata": {"creationTimestamp": ago(10)},
        "status": {"failed": 1, "conditions": [condition]},
    }
    read, _ = await state(tmp_path, found, [pod])
    assert read.message == "#6 ERROR: exit code: 1"


async def test_an_image_pull_failure_is_reported_then_fails_the_build(
    tmp_path: pathlib.Path,
) -> None:
    found = {"metadata": {"creationTimestamp": ago(90)}, "status": {}}
    early = waiting_pod("ErrImagePull", "not found", age=5)
    read, fake = await state(tmp_path, found, [early])
    assert read.phase is backend.Phase.PENDING
    assert read.message == "ErrImagePull: not found"
    assert fake.deleted == []
    late = waiting_pod(
        "ImagePullBackOff", "Back-off pulling image", age=job_backend.PULL_FAILURE_GRACE + 5
    )
    read, fake = await state(tmp_path, found, [late])
    assert read.phase is backend.Phase.FAILED
    assert "cannot be pulled" in read.message
    assert "ImagePullBackOff" in read.message
    assert fake.deleted == [read.name]


async def test_other_waiting_reasons_wait_for_the_pending_timeout(tmp_path: pathlib.Path) -> None:
    found = {"metadata": {"creationTimestamp": ago(90)}, "status": {}}
    pod = waiting_pod("ContainerCreating", "", age=job_backend.PULL_FAILURE_GRACE + 5)
    read, fake = await state(tmp_path, found, [pod])
    assert read.phase is backend.Phase.PENDING
    assert fake.deleted == []
