"""The build Job and its context ConfigMap (controller.builds.job). Pure, plus one real `sh`."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import shlex
import subprocess
from typing import Any

import pytest

from controller.api import identity as api_identity
from controller.api import spec as model
from controller.builds import backend, buildctl, job

KEY = "0123456789abcdef" * 4
OWNER = backend.Owner(name="runner", namespace="team-a", uid="5f0c7c1e-0000-4000-8000-000000000001")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DIGEST = "sha256:" + "ab" * 32
PUSH_SECRET = "push-creds"
FILES = (
    job.ContextFile("Dockerfile", b"FROM alpine\nCOPY scripts/ /scripts/\n"),
    job.ContextFile("scripts/deploy.sh", b"#!/bin/sh\necho deploy\n", executable=True),
    job.ContextFile("scripts/logo.png", b"\x89PNG\r\n\x1a\n\x00\xff\xfe"),
    job.ContextFile("scripts/readme.txt", "caf\u00e9\n".encode()),
)


MEMORY_LIMIT = model.ResourceRequirements(limits={"memory": "4Gi"})


def plan(
    push_secret: str | None = PUSH_SECRET,
    attempt: int = 1,
    placement: backend.PodPlacement = backend.DEFAULT_PLACEMENT,
    resources: model.ResourceRequirements = MEMORY_LIMIT,
    build_args: dict[str, str] | None = None,
) -> backend.BuildPlan:
    return backend.BuildPlan(
        owner=OWNER,
        key=KEY,
        reason="SourceChanged",
        image="contoso.azurecr.io/ade/runner:abc",
        dockerfile="docker/Dockerfile",
        context_dir=pathlib.Path("/var/lib/operator/sources/team-a/runner/rev"),
        push_secret=push_secret,
        timeout_seconds=1800,
        build_args={"A": "1"} if build_args is None else build_args,
        platforms=("linux/amd64",),
        resources=resources,
        placement=placement,
        attempt=attempt,
    )


def build(
    push_secret: str | None = PUSH_SECRET,
    settings: job.JobSettings = job.DEFAULT_SETTINGS,
    build_args: dict[str, str] | None = None,
    attempt: int = 1,
    placement: backend.PodPlacement = backend.DEFAULT_PLACEMENT,
    resources: model.ResourceRequirements = MEMORY_LIMIT,
) -> dict[str, Any]:
    planned = plan(push_secret, attempt, placement, resources, build_args)
    return job.build_job(planned, context_files=FILES, settings=settings)


def pod(body: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = body["spec"]["template"]["spec"]
    return spec


def container(body: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod(body)["containers"]
    assert isinstance(only, dict)
    return only


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


# --- build_job: ownership, identity, lifetime --------------------------------------------------


def test_job_metadata_and_owner_reference() -> None:
    body = build()
    assert body["apiVersion"] == "batch/v1"
    assert body["kind"] == "Job"
    metadata = body["metadata"]
    assert metadata["name"] == backend.build_name(OWNER.name, KEY)
    assert metadata["namespace"] == "team-a"
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": api_identity.API_VERSION,
            "kind": "RunnerImage",
            "name": "runner",
            "uid": OWNER.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_labels_and_annotations_carry_the_build_key() -> None:
    body = build()
    expected_labels = {
        "app.kubernetes.io/managed-by": "ade-runner-operator",
        "runners.ade.dev/runnerimage": "runner",
        "runners.ade.dev/build-key": KEY[:63],
    }
    expected_annotations = {
        "runners.ade.dev/build-key": KEY,
        "runners.ade.dev/image": "contoso.azurecr.io/ade/runner:abc",
        "runners.ade.dev/build-reason": "SourceChanged",
    }
    for metadata in (body["metadata"], body["spec"]["template"]["metadata"]):
        assert metadata["labels"] == expected_labels
        assert metadata["annotations"] == expected_annotations


def test_labels_are_valid_label_values_for_long_names() -> None:
    owner = backend.Owner(name="a" * 62 + "-b" * 20, namespace="n", uid="u")
    found = job.labels(owner, KEY)
    value = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
    for label in found.values():
        assert len(label) <= 63
        assert value.match(label), label


def test_job_runs_once_with_a_deadline_and_a_ttl() -> None:
    body = build(settings=job.JobSettings(ttl_seconds=600))
    assert body["spec"]["backoffLimit"] == 0
    assert body["spec"]["activeDeadlineSeconds"] == 1800
    assert body["spec"]["ttlSecondsAfterFinished"] == 600
    assert pod(body)["restartPolicy"] == "Never"
    assert build()["spec"]["ttlSecondsAfterFinished"] == job.DEFAULT_TTL


def test_job_name_counts_the_attempt() -> None:
    body = build(attempt=2)
    assert body["metadata"]["name"].endswith("-r2")
    assert by_name(pod(body)["volumes"])["context"]["configMap"]["name"] == body["metadata"]["name"]


def test_image_resources_and_service_account() -> None:
    body = build(
        settings=job.JobSettings(image="mirror/buildkit:v1-rootless", service_account="sa")
    )
    assert container(body)["image"] == "mirror/buildkit:v1-rootless"
    assert container(body)["resources"] == {"limits": {"memory": "4Gi"}}
    assert pod(body)["serviceAccountName"] == "sa"
    assert "serviceAccountName" not in pod(build())
    assert container(build())["image"] == job.BUILDKIT_IMAGE


# --- build_job: resources and placement (spec.build) --------------------------------------------

PLACED = model.BuildSpec(
    resources=model.ResourceRequirements(
        requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "4Gi"}
    ),
    node_selector={"kubernetes.io/arch": "amd64", "pool": "builds"},
    tolerations=(
        model.Toleration(key="dedicated", value="builds", effect=model.TaintEffect.NO_SCHEDULE),
        model.Toleration(operator=model.TolerationOperator.EXISTS),
        model.Toleration(
            key="spot",
            operator=model.TolerationOperator.EXISTS,
            effect=model.TaintEffect.NO_EXECUTE,
            toleration_seconds=120,
        ),
    ),
    service_account_name="runner-builds",
)


def test_placement_goes_into_the_pod_template() -> None:
    body = build(placement=backend.PodPlacement.of(PLACED), resources=PLACED.resources)
    assert pod(body)["nodeSelector"] == {"kubernetes.io/arch": "amd64", "pool": "builds"}
    assert pod(body)["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "builds", "effect": "NoSchedule"},
        {"operator": "Exists"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 120},
    ]
    assert pod(body)["serviceAccountName"] == "runner-builds"
    assert container(body)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "4Gi"},
    }


def test_no_placement_leaves_the_pod_unplaced() -> None:
    body = build(
        placement=backend.PodPlacement.of(model.BuildSpec()), resources=model.BuildSpec().resources
    )
    for field in ("nodeSelector", "tolerations", "serviceAccountName", "affinity"):
        assert field not in pod(body)
    assert container(body)["resources"] == {}


def test_spec_service_account_wins_over_the_operator_setting() -> None:
    operator_wide = job.JobSettings(service_account="operator-builds")
    placed = backend.PodPlacement(service_account="runner-builds")
    assert pod(build(settings=operator_wide, placement=placed))["serviceAccountName"] == (
        "runner-builds"
    )
    assert pod(build(settings=operator_wide))["serviceAccountName"] == "operator-builds"


def test_placement_does_not_change_the_job_name_or_its_identity() -> None:
    plain, placed = build(), build(placement=backend.PodPlacement.of(PLACED))
    assert placed["metadata"] == plain["metadata"]
    assert placed["spec"]["template"]["metadata"] == plain["spec"]["template"]["metadata"]


def test_placement_with_host_network_keeps_both() -> None:
    body = build(
        settings=job.JobSettings(host_network=True), placement=backend.PodPlacement.of(PLACED)
    )
    assert pod(body)["hostNetwork"] is True
    assert pod(body)["nodeSelector"]["pool"] == "builds"


def test_buildkit_image_is_pinned() -> None:
    assert re.fullmatch(r"moby/buildkit:v\d+\.\d+\.\d+-rootless", job.BUILDKIT_IMAGE)


# --- build_job: rootless BuildKit ---------------------------------------------------------------


def test_rootless_security_settings() -> None:
    body = build()
    assert pod(body)["securityContext"]["runAsUser"] == 1000
    security = container(body)["securityContext"]
    assert security["runAsUser"] == 1000
    assert security["runAsGroup"] == 1000
    assert security["seccompProfile"] == {"type": "Unconfined"}
    assert security["appArmorProfile"] == {"type": "Unconfined"}
    assert security.get("privileged") is not True


def test_rootless_environment_and_state_volumes() -> None:
    body = build()
    env = {item["name"]: item["value"] for item in container(body)["env"]}
    assert env["BUILDKITD_FLAGS"] == "--oci-worker-no-process-sandbox"
    assert env["HOME"] == "/home/user"
    mounts = {item["name"]: item for item in container(body)["volumeMounts"]}
    volumes = by_name(pod(body)["volumes"])
    assert mounts["buildkitd"]["mountPath"] == "/home/user/.local/share/buildkit"
    assert mounts["tmp"]["mountPath"] == "/home/user/.local/tmp"
    assert volumes["buildkitd"] == {"name": "buildkitd", "emptyDir": {}}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    mounted = {item["name"] for item in container(body)["volumeMounts"]}
    assert mounted == set(volumes)


def test_termination_message_falls_back_to_logs() -> None:
    assert container(build())["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_command_builds_then_writes_the_metadata_to_the_termination_log() -> None:
    command = container(build())["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    lines = command[2].splitlines()
    assert lines[0] == "set -e"
    assert lines[1].startswith("buildctl-daemonless.sh build ")
    assert lines[-1] == "cat /tmp/metadata.json > /dev/termination-log"
    assert job.METADATA_FILE == "/tmp/metadata.json"


def test_the_pods_request_reads_the_mounted_context_and_writes_the_pods_metadata_file() -> None:
    req = job.request(plan())
    assert req.context == buildctl.LocalContext(job.CONTEXT_MOUNT)
    assert req.metadata_file == job.METADATA_FILE
    args = buildctl.arguments(req)
    assert f"context={job.CONTEXT_MOUNT}" in args
    assert f"dockerfile={job.CONTEXT_MOUNT}/docker" in args
    assert str(plan().context_dir) not in " ".join(args)  # the operator's folder stays home


# --- build_job: push credentials ----------------------------------------------------------------


def test_push_secret_mounted_as_docker_config() -> None:
    body = build(push_secret="push-creds")
    env = {item["name"]: item["value"] for item in container(body)["env"]}
    assert env["DOCKER_CONFIG"] == "/home/user/.docker"
    mounts = {item["name"]: item for item in container(body)["volumeMounts"]}
    assert mounts["docker-config"] == {
        "name": "docker-config",
        "mountPath": "/home/user/.docker",
        "readOnly": True,
    }
    assert by_name(pod(body)["volumes"])["docker-config"]["secret"] == {
        "secretName": "push-creds",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }


@pytest.mark.parametrize("push_secret", [None, ""])
def test_no_push_secret_no_docker_config(push_secret: str | None) -> None:
    body = build(push_secret=push_secret)
    assert "DOCKER_CONFIG" not in {item["name"] for item in container(body)["env"]}
    assert "docker-config" not in by_name(pod(body)["volumes"])
    assert "docker-config" not in by_name(container(body)["volumeMounts"])
    assert "secret" not in json.dumps(pod(body))


# --- the context ConfigMap ----------------------------------------------------------------------


def test_context_volume_maps_keys_back_to_paths_with_modes() -> None:
    body = build()
    volume = by_name(pod(body)["volumes"])["context"]
    assert volume["configMap"]["name"] == body["metadata"]["name"]
    assert volume["configMap"]["items"] == [
        {"key": "f0000", "path": "Dockerfile", "mode": 0o644},
        {"key": "f0001", "path": "scripts/deploy.sh", "mode": 0o755},
        {"key": "f0002", "path": "scripts/logo.png", "mode": 0o644},
        {"key": "f0003", "path": "scripts/readme.txt", "mode": 0o644},
    ]
    mount = by_name(container(body)["volumeMounts"])["context"]
    assert mount == {"name": "context", "mountPath": job.CONTEXT_MOUNT, "readOnly": True}


def test_context_config_map_holds_every_file_under_its_item_key() -> None:
    config_map = job.context_config_map(plan(), FILES)
    assert config_map["apiVersion"] == "v1"
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == backend.build_name(OWNER.name, KEY)
    assert config_map["metadata"]["namespace"] == "team-a"
    assert config_map["metadata"]["labels"] == job.labels(OWNER, KEY)
    assert config_map["metadata"]["ownerReferences"] == [job.owner_reference(OWNER)]
    assert config_map["data"] == {
        "f0000": "FROM alpine\nCOPY scripts/ /scripts/\n",
        "f0001": "#!/bin/sh\necho deploy\n",
        "f0003": "caf\u00e9\n",
    }
    assert config_map["binaryData"] == {"f0002": base64.b64encode(FILES[2].content).decode()}
    keys = set(config_map["data"]) | set(config_map["binaryData"])
    assert keys == {item["key"] for item in job.context_items(FILES)}


def test_binary_data_round_trips() -> None:
    config_map = job.context_config_map(plan(), FILES)
    assert base64.b64decode(config_map["binaryData"]["f0002"]) == FILES[2].content


def test_text_only_context_has_no_binary_data() -> None:
    config_map = job.context_config_map(plan(), FILES[:2])
    assert "binaryData" not in config_map


def test_context_config_map_name_follows_the_attempt() -> None:
    config_map = job.context_config_map(plan(attempt=3), FILES)
    assert config_map["metadata"]["name"] == backend.build_name(OWNER.name, KEY, 3)
    assert config_map["metadata"]["name"] == build(attempt=3)["metadata"]["name"]


# --- the rendered shell command -----------------------------------------------------------------

NASTY = {
    "SPACES": "a b  c",
    "QUOTES": 'it\'s "quoted"',
    "DOLLAR": "$HOME ${HOME} $(echo injected) `echo injected`",
    "NEWLINE": "one\ntwo",
    "SEMICOLON": "x; exit 3 && echo y | cat",
    "GLOB": "* ? [a]",
    "BACKSLASH": "\\n \\",
    "EMPTY": "",
}


def test_command_parses_back_to_the_buildctl_arguments() -> None:
    req = job.request(plan(build_args=NASTY))
    script = container(build(build_args=NASTY))["command"][2]
    tokens = shlex.split(script)
    assert tokens[:2] == ["set", "-e"]
    assert tokens[2:4] == ["buildctl-daemonless.sh", "build"]
    assert tokens[4:-4] == buildctl.arguments(req)
    assert tokens[-4:] == ["cat", job.METADATA_FILE, ">", "/dev/termination-log"]


STUB = """#!/bin/sh
printf '%s\\0' "$@" > "$ARGV_OUT"
while [ $# -gt 0 ]; do
  if [ "$1" = --metadata-file ]; then printf '%s' "$METADATA" > "$2"; fi
  shift
done
exit "$STUB_EXIT"
"""


def run_script(tmp_path: pathlib.Path, script: str, *, exit_code: int) -> tuple[int, list[str]]:
    """Run the pod's script in a real `sh`, with a stub `buildctl-daemonless.sh` and the
    metadata file and termination log moved into `tmp_path`."""
    stub = tmp_path / "bin" / "buildctl-daemonless.sh"
    stub.parent.mkdir()
    stub.write_text(STUB)
    stub.chmod(0o755)
    script = script.replace(job.METADATA_FILE, str(tmp_path / "metadata.json"))
    script = script.replace("/dev/termination-log", str(tmp_path / "termination-log"))
    argv_out = tmp_path / "argv"
    env = {
        "PATH": f"{stub.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "ARGV_OUT": str(argv_out),
        "METADATA": json.dumps({"containerimage.digest": DIGEST}),
        "STUB_EXIT": str(exit_code),
    }
    done = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, timeout=30, check=False
    )
    argv = argv_out.read_bytes().decode().split("\0")[:-1] if argv_out.exists() else []
    return done.returncode, argv


def test_command_runs_in_a_real_shell_with_the_exact_arguments(tmp_path: pathlib.Path) -> None:
    req = job.request(plan(build_args=NASTY))
    script = container(build(build_args=NASTY))["command"][2]
    code, argv = run_script(tmp_path, script, exit_code=0)
    assert code == 0
    expected = ["build", *buildctl.arguments(req)]
    expected[expected.index(job.METADATA_FILE)] = str(tmp_path / "metadata.json")
    assert argv == expected
    termination = (tmp_path / "termination-log").read_text()
    assert backend.digest_from_metadata(termination) == DIGEST


def test_failed_build_does_not_write_the_termination_log(tmp_path: pathlib.Path) -> None:
    script = container(build(build_args=NASTY))["command"][2]
    code, argv = run_script(tmp_path, script, exit_code=7)
    assert code == 7
    assert argv[0] == "build"
    assert not (tmp_path / "termination-log").exists()
