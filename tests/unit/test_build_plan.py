"""spec.build on its way to the build pod: the build step's plan (controller.reconcile.building)
carries resources and placement, the Job backend renders them, the build key ignores them."""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import Mapping
from typing import Any, cast

from controller import kube
from controller.api import spec as model
from controller.build import backend, identity, job, job_backend
from controller.reconcile import building, steps
from controller.reconcile import memory as memory_
from controller.reconcile import services as services_

NOW = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
INPUTS = identity.Inputs(
    revision="0123456789abcdef0123456789abcdef01234567",
    base_image="mcr.microsoft.com/core",
    base_digest="sha256:" + "a" * 64,
)
PLACED = {
    "resources": {"requests": {"cpu": 1, "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [
        {"key": "dedicated", "value": "builds", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ],
    "serviceAccountName": "runner-builds",
}


def spec(**build: Any) -> model.RunnerImageSpec:
    return model.parse(
        {
            "source": {"git": {"url": "https://github.com/org/runner.git"}},
            "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
            "build": {"backend": "Job", "timeout": "10m", **build},
        }
    )


def plan(parsed: model.RunnerImageSpec, context_dir: pathlib.Path) -> backend.BuildPlan:
    """The plan of a first build (no record yet), as the build step makes it."""
    material = INPUTS.key_material(parsed)
    found = steps.ResolvedInputs(
        inputs=INPUTS,
        key=identity.build_key(parsed, INPUTS),
        material=material,
        context_dir=context_dir,
    )
    ctx = steps.Context(
        name="runner",
        namespace="team-a",
        generation=1,
        spec=parsed,
        status={},
        now=NOW,
        uid="5f0c7c1e-0000-4000-8000-000000000001",
    )
    # A first build's plan needs neither services nor memory.
    step = building.Build(
        services=cast(services_.Services, None), memory=cast(memory_.ObjectMemory, None)
    )
    return step._plan(ctx, found, None, {})


def context(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "Dockerfile").write_text("FROM alpine\n")
    return tmp_path


def test_the_plan_carries_resources_and_placement(tmp_path: pathlib.Path) -> None:
    planned = plan(spec(**PLACED), context(tmp_path))
    assert planned.resources == model.ResourceRequirements(
        requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "4Gi"}
    )
    assert planned.placement == job.PodPlacement(
        node_selector={"kubernetes.io/arch": "amd64"},
        tolerations=(
            model.Toleration(key="dedicated", value="builds", effect=model.TaintEffect.NO_SCHEDULE),
            model.Toleration(
                key="spot",
                operator=model.TolerationOperator.EXISTS,
                effect=model.TaintEffect.NO_EXECUTE,
                toleration_seconds=60,
            ),
        ),
        service_account="runner-builds",
    )


def test_placement_changes_neither_the_key_nor_the_build(tmp_path: pathlib.Path) -> None:
    plain, placed = plan(spec(), context(tmp_path)), plan(spec(**PLACED), tmp_path)
    assert placed.key == plain.key
    assert placed.name == plain.name
    assert placed.request == plain.request
    assert placed.reason == plain.reason == "Initial"
    assert plain.placement == job.DEFAULT_PLACEMENT
    assert plain.resources == model.ResourceRequirements()


class RecordingKube:
    """Stands in for `kube.Kube` in `JobBackend.start`: keeps what it was asked to create."""

    def __init__(self) -> None:
        self.created: list[Mapping[str, Any]] = []

    async def create(self, body: Mapping[str, Any]) -> bool:
        self.created.append(body)
        return True


async def test_the_job_backend_renders_the_plan_into_the_pod(tmp_path: pathlib.Path) -> None:
    recorder = RecordingKube()
    settings = job.JobSettings(service_account="operator-builds")
    jobs = job_backend.JobBackend(kube=cast(kube.Kube, recorder), settings=settings)
    await jobs.start(plan(spec(**PLACED), context(tmp_path)))
    config_map, body = recorder.created
    assert (config_map["kind"], body["kind"]) == ("ConfigMap", "Job")
    pod = body["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "builds", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ]
    assert pod["serviceAccountName"] == "runner-builds"  # the spec wins over the operator's
    (container,) = pod["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "4Gi"},
    }


async def test_without_placement_the_operator_service_account_is_used(
    tmp_path: pathlib.Path,
) -> None:
    recorder = RecordingKube()
    settings = job.JobSettings(service_account="operator-builds")
    jobs = job_backend.JobBackend(kube=cast(kube.Kube, recorder), settings=settings)
    await jobs.start(plan(spec(), context(tmp_path)))
    pod = recorder.created[1]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "operator-builds"
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod
