"""Real builds through a real buildkitd (BuildKitDaemon backend), pushed to the real registry.

The base image is the stand-in core image, built and pushed by BuildKit too; the runner image is
built from ADE's own Dockerfile pattern (`ARG BASE_IMAGE`, `ARG IMAGE_VERSION`, `FROM`, `COPY
scripts/`, `RUN chmod`). What the operator reports is checked against what the registry serves.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.api.identity import RUNNER_IMAGE_LABEL
from controller.reconcile import building
from tests.conftest import PUSH_PASSWORD, StartOperator
from tests.e2e.daemon_builds import operator_env, push_secret
from tests.env import buildkitd, dockerd, gitserver, images, kube, oci, registry, tokenserver

pytestmark = pytest.mark.e2e

NAME = "bicep-runner"
DOCKERFILE = """\
ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core
ARG IMAGE_VERSION=latest
FROM ${BASE_IMAGE}:${IMAGE_VERSION}
COPY scripts/ /scripts/
RUN find /scripts/ -type f -iname "*.sh" -exec sed -i 's/\\r$//' {} + \\
 && find /scripts/ -type f -iname "*.sh" -exec chmod +x {} +
"""
SCRIPTS = {"deploy.sh": "#!/bin/sh\necho deploying\n", "delete.sh": "#!/bin/sh\necho deleting\n"}


def _runner(namespace: str, host: str, core: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": NAME},
        "spec": {
            "source": {"inline": {"dockerfile": DOCKERFILE, "scripts": SCRIPTS}},
            "buildArgs": {"BASE_IMAGE": core, "IMAGE_VERSION": "4.0"},
            "image": {
                "registry": host,
                "repository": f"{namespace}/bicep",
                "pushSecretRef": {"name": "push"},
            },
            "build": {"backend": "BuildKitDaemon", "timeout": "10m"},
        },
    }
    body["spec"].update(spec)
    return body


def test_daemon_build_pushes_the_digest_the_registry_serves(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    core: str,
) -> None:
    push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
    operator = start_operator(**operator_env(buildkit))
    cluster.apply(namespace, json.dumps(_runner(namespace, oci_registry.host, core)))
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=300)
    latest = ready["status"]["latestImage"]
    repository, _, tag = latest["reference"].split("/", 1)[1].rpartition(":")
    assert repository == f"{namespace}/bicep"
    assert pusher.manifest_digest(repository, tag) == latest["digest"]
    assert ready["status"]["baseImageDigest"] == pusher.manifest_digest(f"{namespace}/core", "4.0")
    assert latest["reason"] == "Initial"
    assert ready["status"]["builds"][0]["result"] == "Succeeded"
    assert PUSH_PASSWORD not in operator.logs()

    # The base image moves under the same tag: exactly one rebuild, reason BaseImageChanged.
    images.push_core(buildkit, f"{core}:4.0", revision="2")
    cluster.plane.kubectl(
        "annotate", "ri", NAME, "-n", namespace, "--overwrite",
        "runners.ade.dev/reconcile-requested-at=poll-base",
    )  # fmt: skip

    def rebuilt() -> dict[str, Any] | None:
        obj = cluster.get(namespace, NAME)
        status = (obj or {}).get("status", {})
        stalled = kube.condition(obj or {}, "Stalled")
        # Fail fast, saying why. A push that failed on the way is retried, so only Stalled counts.
        if stalled and stalled["status"] == "True":
            raise AssertionError(f"the rebuild stalled: {kube.condition(obj or {}, 'Ready')}")
        image = status.get("latestImage", {})
        return obj if obj and image.get("digest") != latest["digest"] else None

    after = kube.wait_for(rebuilt, timeout=300, what="the rebuild on the new base image")
    assert after["status"]["latestImage"]["reason"] == "BaseImageChanged"
    assert any(c.startswith("baseDigest:") for c in after["status"]["latestImage"]["changes"])
    assert [b["reason"] for b in after["status"]["builds"]] == ["BaseImageChanged", "Initial"]


def test_a_finished_build_wakes_its_reconcile_at_once(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    core: str,
) -> None:
    """With the progress timer a minute away, only the build's own end can bring Ready soon. The
    build outlasts the time its reconcile waits for it (`building.SHORT_BUILD_SECONDS`): that
    reconcile stops, and the build's end wakes the next."""
    push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
    start_operator(**operator_env(buildkit, ADE_PROGRESS_INTERVAL="60s", ADE_RESYNC_INTERVAL="10m"))
    applied = time.monotonic()
    body = _runner(namespace, oci_registry.host, core)
    longer = f"{DOCKERFILE}RUN sleep {building.SHORT_BUILD_SECONDS * 3:g}\n"
    body["spec"]["source"]["inline"]["dockerfile"] = longer
    cluster.apply(namespace, json.dumps(body))
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=300)
    seconds = time.monotonic() - applied
    build = ready["status"]["builds"][0]
    annotations = ready["metadata"].get("annotations") or {}
    assert annotations.get("runners.ade.dev/build-finished") == build["name"]
    assert seconds < 30, f"Ready took {seconds:.1f}s: the timer, not the build's end, woke it"
    print(f"\n[figure] BuildKitDaemon, progress timer 60 s: apply -> Ready in {seconds:.1f} s")


def test_failing_dockerfile_reports_the_build_log(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    core: str,
) -> None:
    push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
    start_operator(**operator_env(buildkit))
    body = _runner(namespace, oci_registry.host, core)
    body["spec"]["source"]["inline"]["dockerfile"] = DOCKERFILE + "RUN echo broken-step && exit 3\n"
    cluster.apply(namespace, json.dumps(body))
    stalled = cluster.wait_condition(namespace, NAME, "Stalled", status="True", timeout=300)
    ready = kube.condition(stalled, "Ready")
    assert ready is not None
    assert ready["reason"] == "BuildFailed"
    assert "exit code: 3" in ready["message"]
    assert stalled["status"]["builds"][0]["result"] == "Failed"


@pytest.mark.parametrize(
    ("case", "reason", "fragment"),
    [
        ("missing-secret", "SecretNotFound", "spec.image.pushSecretRef: Secret 'push' not found"),
        ("wrong-password", "PushFailed", "refused"),
        ("no-from", "DockerfileInvalid", "no FROM instruction"),
        ("unreachable-registry", "RegistryUnavailable", "127.0.0.1:9"),
    ],
)
def test_bad_inputs_end_in_the_documented_condition(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    case: str,
    reason: str,
    fragment: str,
) -> None:
    operator = start_operator(**operator_env(buildkit))
    host = oci_registry.host
    body = _runner(namespace, host, "unused")
    scratch = "FROM scratch\nCOPY scripts/ /scripts/\n"
    body["spec"]["source"]["inline"]["dockerfile"] = scratch
    if case != "missing-secret":
        password = "not-the-password" if case == "wrong-password" else PUSH_PASSWORD
        push_secret(cluster, namespace, host, password)
    if case == "no-from":
        body["spec"]["source"]["inline"]["dockerfile"] = "COPY scripts/ /scripts/\n"
    if case == "unreachable-registry":
        body["spec"]["image"]["registry"] = "127.0.0.1:9"
    cluster.apply(namespace, json.dumps(body))
    obj = cluster.wait_condition(
        namespace, NAME, "Ready", status="False", reason=reason, timeout=60
    )
    ready = kube.condition(obj, "Ready")
    assert ready is not None
    assert fragment in ready["message"]
    assert "not-the-password" not in json.dumps(obj)
    assert "not-the-password" not in operator.logs()
    assert PUSH_PASSWORD not in operator.logs()


def test_git_source_ref_that_does_not_exist(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    tmp_path: pathlib.Path,
) -> None:
    with gitserver.running(tmp_path / "git", {"ci": "g1t-pa55"}) as server:
        server.create_repo("runners.git", {"Dockerfile": "FROM scratch\n", "scripts/deploy.sh": ""})
        cluster.plane.kubectl(
            "create", "secret", "generic", "git", "-n", namespace,
            "--from-literal=username=ci", "--from-literal=password=g1t-pa55",
        )  # fmt: skip
        push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
        operator = start_operator(**operator_env(buildkit))
        body = _runner(namespace, oci_registry.host, "unused")
        body["spec"]["source"] = {
            "git": {
                "url": server.url("runners.git"),
                "ref": "no-such-branch",
                "secretRef": {"name": "git"},
            }
        }
        cluster.apply(namespace, json.dumps(body))
        obj = cluster.wait_condition(
            namespace, NAME, "Stalled", status="True", reason="SourceRefNotFound", timeout=60
        )
        assert "no-such-branch" in kube.condition(obj, "Stalled")["message"]  # type: ignore[index]
        assert "g1t-pa55" not in operator.logs()


@pytest.fixture(scope="session")
def docker_engine(oci_registry: registry.Registry) -> Iterator[dockerd.DockerDaemon]:
    short = pathlib.Path(tempfile.mkdtemp(prefix="dk-"))
    engine = dockerd.DockerDaemon(short, insecure_registries=[oci_registry.host])
    engine.start()
    yield engine
    engine.stop()
    shutil.rmtree(short, ignore_errors=True)


def test_docker_backend_build_and_push(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    docker_engine: dockerd.DockerDaemon,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    core: str,
) -> None:
    push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
    operator = start_operator(DOCKER_HOST=docker_engine.host)
    body = _runner(namespace, oci_registry.host, core)
    body["spec"]["build"]["backend"] = "Docker"
    body["spec"]["source"]["inline"]["dockerfile"] = DOCKERFILE + "COPY . /context/\n"
    cluster.apply(namespace, json.dumps(body))
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=300)
    latest = ready["status"]["latestImage"]
    repository, _, tag = latest["reference"].split("/", 1)[1].rpartition(":")
    assert pusher.manifest_digest(repository, tag) == latest["digest"]
    assert kube.condition(ready, "Verified")["status"] == "True"  # type: ignore[index]
    assert PUSH_PASSWORD not in operator.logs()
    # The labels, in one step (the classic builder makes the API's labels a step each), from a
    # copy of the Dockerfile that is not part of the context the image copies.
    image = latest["reference"]
    shown = docker_engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image)
    assert json.loads(shown.stdout)[RUNNER_IMAGE_LABEL] == f"{namespace}/{NAME}"
    steps = docker_engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    labelled = [line for line in steps.stdout.splitlines() if "runners.ade.dev/" in line]
    assert len(labelled) == 1, labelled
    assert "build-key" in labelled[0]
    copied = docker_engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "ls", image, "-A", "/context"
    )
    assert sorted(copied.stdout.split()) == ["Dockerfile", "scripts"]


def test_a_ready_resource_idles_without_any_request(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    token_server: tokenserver.TokenServer,
    core: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Built, pushed, verified: then timer reconciles every second touch nothing at all."""
    push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
    operator = start_operator(**operator_env(buildkit, ADE_RESYNC_INTERVAL="1s"))
    cluster.apply(namespace, json.dumps(_runner(namespace, oci_registry.host, core)))
    cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=300)
    before = _reconcile_count(operator.metrics())
    kube.wait_for(
        lambda: _reconcile_count(operator.metrics()) > before, timeout=10, what="a reconcile"
    )
    since = datetime.datetime.now(datetime.UTC)
    settled = cluster.get(namespace, NAME)
    assert settled is not None
    tokens_before = len(token_server.recorded())
    start, reconciles_start = time.monotonic(), _reconcile_count(operator.metrics())
    kube.wait_for(
        lambda: _reconcile_count(operator.metrics()) >= reconciles_start + 10,
        timeout=60,
        what="10 idle reconciles",
    )
    seconds = time.monotonic() - start
    requests = [
        e
        for e in cluster.plane.audit_events()
        if e.get("user", {}).get("username") == kube.OPERATOR_USER
        and datetime.datetime.fromisoformat(e["requestReceivedTimestamp"]) >= since
        and e.get("verb") not in ("watch",)
    ]
    after = cluster.get(namespace, NAME)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"]
    assert len(token_server.recorded()) == tokens_before, "idle reconciles asked for tokens"
    assert requests == [], [(e["verb"], e["requestURI"]) for e in requests]
    with capsys.disabled():
        print(
            f"\n[figure] idle Ready RunnerImage: {len(requests)} API requests and "
            f"0 registry requests over {seconds:.1f}s of 1-second reconciles"
        )


def _reconcile_count(metrics: str) -> float:
    return sum(
        float(v) for v in re.findall(r"^ade_runner_reconciles_total\{[^}]*\} (\S+)$", metrics, re.M)
    )
