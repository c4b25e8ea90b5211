"""spec.build on its way to the build pod: the build step's plan (controller.reconcile.
build_decisions) carries resources and placement, the Job backend renders them (reading the
context when it creates the Job, never when it polls), the build key ignores them."""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from collections.abc import Mapping
from typing import Any, cast

from controller import kube
from controller.api import spec as model
from controller.builds import backend, buildctl, identity, job, job_backend
from controller.reconcile import build_decisions, steps

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
        source_date_epoch=1733400000,
    )
    facts = build_decisions.Facts(
        spec=parsed,
        found=found,
        owner=backend.Owner(
            name="runner", namespace="team-a", uid="5f0c7c1e-0000-4000-8000-000000000001"
        ),
        latest=None,
        records=(),
        now=NOW,
    )
    return build_decisions.make_plan(facts, None)


def context(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "Dockerfile").write_text("FROM alpine\n")
    return tmp_path


def test_the_plan_carries_resources_and_placement(tmp_path: pathlib.Path) -> None:
    planned = plan(spec(**PLACED), context(tmp_path))
    assert planned.resources == model.ResourceRequirements(
        requests={"cpu": "1", "memory": "2Gi"}, limits={"memory": "4Gi"}
    )
    assert planned.placement == backend.PodPlacement(
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
    assert job.request(placed) == job.request(plain)
    assert placed.reason == plain.reason == "Initial"
    assert plain.placement == backend.DEFAULT_PLACEMENT
    assert plain.resources == model.ResourceRequirements()


def test_the_plan_caches_in_a_repository_next_to_the_image(tmp_path: pathlib.Path) -> None:
    planned = plan(spec(), context(tmp_path))
    assert planned.image.startswith("contoso.azurecr.io/ade/runner:")
    assert planned.cache_ref == "contoso.azurecr.io/ade/runner/buildcache:latest"
    argv = buildctl.arguments(job.request(planned))
    assert argv[argv.index("--export-cache") + 1] == (
        f"type=registry,ref={planned.cache_ref},mode=max,ignore-error=true"
    )
    assert argv[argv.index("--import-cache") + 1] == f"type=registry,ref={planned.cache_ref}"


def test_the_plan_carries_the_source_time_to_the_job_for_a_reproducible_digest(
    tmp_path: pathlib.Path,
) -> None:
    planned = plan(spec(), context(tmp_path))
    assert planned.source_date_epoch == 1733400000
    argv = buildctl.arguments(job.request(planned))
    assert "build-arg:SOURCE_DATE_EPOCH=1733400000" in argv
    assert argv[argv.index("--output") + 1].endswith(",rewrite-timestamp=true")


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
    await jobs.start(plan(spec(**PLACED), context(tmp_path)), docker_config=None)
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
    await jobs.start(plan(spec(), context(tmp_path)), docker_config=None)
    pod = recorder.created[1]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "operator-builds"
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod


async def test_the_job_backend_ships_the_context_it_reads_when_it_starts(
    tmp_path: pathlib.Path,
) -> None:
    folder = context(tmp_path)
    (folder / "scripts").mkdir()
    (folder / "scripts" / "deploy.sh").write_text("#!/bin/sh\n")
    (folder / "scripts" / "deploy.sh").chmod(0o755)
    (folder / "scripts" / "link.sh").symlink_to(folder / "scripts" / "deploy.sh")
    recorder = RecordingKube()
    jobs = job_backend.JobBackend(kube=cast(kube.Kube, recorder))
    await jobs.start(plan(spec(), folder), docker_config=None)
    config_map, body = recorder.created
    assert config_map["data"] == {"f0000": "FROM alpine\n", "f0001": "#!/bin/sh\n"}
    volume = {v["name"]: v for v in body["spec"]["template"]["spec"]["volumes"]}["context"]
    assert volume["configMap"]["items"] == [
        {"key": "f0000", "path": "Dockerfile", "mode": 0o644},
        {"key": "f0001", "path": "scripts/deploy.sh", "mode": 0o755},
    ]


class PollingKube:
    """`kube.Kube` as `JobBackend.state` reads it: a running Job and its pod."""

    async def get_job(self, *, namespace: str, name: str) -> Mapping[str, Any] | None:
        return {"metadata": {"name": name}, "status": {"active": 1}}

    async def list_pods(self, *, namespace: str, selector: str) -> list[Mapping[str, Any]]:
        return [{"metadata": {"name": "p"}, "status": {"phase": "Running"}}]


async def test_polling_the_state_never_reads_the_context(tmp_path: pathlib.Path) -> None:
    planned = plan(spec(), context(tmp_path))
    gone = dataclasses.replace(planned, context_dir=tmp_path / "removed-with-its-revision")
    jobs = job_backend.JobBackend(kube=cast(kube.Kube, PollingKube()))
    assert (await jobs.state(gone)).phase is backend.Phase.RUNNING
