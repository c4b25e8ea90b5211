"""The default `Job` backend for real: rootless BuildKit in a pod on the real node.

The operator (a process here; in a pod in `test_operator_pod.py`) renders its Job exactly as it
does on a cluster; the only settings are the BuildKit image (built here from the pinned release,
`tests.env.node_images`) and host networking for build pods (the node's pods have no network
but loopback; `tests.env.node`). Placement uses `spec.build.nodeSelector` and
`spec.build.tolerations`, the user-facing fields. What kwok let the other Job tests assume —
the pod's result, its termination message, its digest — is here produced by BuildKit itself.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import StartOperator
from tests.e2e import buildjobs, catalogs
from tests.env import gitserver, kube, node, node_images, oci, registry

pytestmark = pytest.mark.e2e

NAME = buildjobs.NAME
MANIFEST = "Environments/webapp/environment.yaml"


@pytest.fixture
def catalog_server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {catalogs.GIT_USER: catalogs.GIT_PASSWORD}) as server:
        server.create_repo("catalog", {MANIFEST: catalogs.MANIFEST.format(name="webapp")})
        yield server


def operator_env(images: node_images.NodeImages) -> dict[str, str]:
    """The operator's settings for the real node (and nothing else that differs from a cluster)."""
    return {
        "ADE_BUILDKIT_IMAGE": images.buildkit,
        "ADE_BUILD_HOST_NETWORK": "true",
    }


def prepare(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    where: node.Node,
    images: node_images.NodeImages,
    host: str,
    base: str,
    **env: str,
) -> dict[str, Any]:
    """The push Secret and the operator (the real node's settings, `env` over them); the
    RunnerImage `job-runner` pushing to `host`, built `FROM base`, placed on `where`."""
    buildjobs.push_secret(cluster, namespace, host)
    start_operator(**{**operator_env(images), **env})
    return buildjobs.on_real_node(buildjobs.runner_image(namespace, host, base), where)


def build_pods(cluster: kube.Cluster, namespace: str) -> list[dict[str, Any]]:
    out = cluster.plane.kubectl(
        "get", "pods", "-n", namespace, "-l", "runners.ade.dev/runnerimage", "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def stalled_build(
    cluster: kube.Cluster, namespace: str, body: dict[str, Any], *, timeout: float = 180
) -> str:
    """Apply `body`; the message of the `Stalled` condition it ends with (reason BuildFailed)."""
    cluster.apply(namespace, json.dumps(body))
    stalled = cluster.wait_condition(namespace, NAME, "Stalled", status="True", timeout=timeout)
    condition = kube.condition(stalled, "Stalled")
    assert condition is not None
    assert condition["reason"] == "BuildFailed", condition
    return str(condition["message"])


def wait_digest_change(
    cluster: kube.Cluster, namespace: str, before: str, *, timeout: float
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = cluster.get(namespace, NAME)
        if found is None:
            return None
        latest = (found.get("status") or {}).get("latestImage") or {}
        ready = kube.condition(found, "Ready") or {}
        if latest.get("digest") not in (None, before) and ready.get("status") == "True":
            return found
        return None

    return kube.wait_for(probe, timeout=timeout, what="a new image, Ready", interval=0.2)


def test_job_build_runs_in_a_real_pod_to_ready_cold_and_warm(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    real_node: node.Node,
    node_image_store: node_images.Served,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    catalog_server: gitserver.GitServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    images = node_image_store[1]
    catalogs.git_secret(cluster, namespace)
    body = prepare(
        cluster, namespace, start_operator, real_node, images, oci_registry.host, base_image
    )
    resources = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "2Gi"}}
    body["spec"]["build"]["resources"] = resources
    cluster.plane.kubectl("create", "serviceaccount", "builds", "-n", namespace)
    body["spec"]["build"]["serviceAccountName"] = "builds"
    catalogs.with_catalog(body, catalog_server.url("catalog"), [MANIFEST])

    start = time.monotonic()
    cluster.apply(namespace, json.dumps(body))
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=240)
    cold = time.monotonic() - start

    latest = ready["status"]["latestImage"]
    repository, _, tag = latest["reference"].split("/", 1)[1].partition("@")[0].rpartition(":")
    # The digest BuildKit reported from inside the pod is what the registry serves for the tag.
    assert pusher.manifest_digest(repository, tag) == latest["digest"]
    # The registry cache the pod exported, in its own repository beside the image's.
    assert oci_registry.tags(f"{repository}/buildcache") == ["latest"]
    (pod,) = build_pods(cluster, namespace)
    assert pod["spec"]["nodeName"] == real_node.name
    assert pod["spec"]["hostNetwork"] is True
    container = pod["status"]["containerStatuses"][0]
    assert container["state"]["terminated"]["exitCode"] == 0
    assert container["image"].endswith(images.buildkit.rpartition("/")[2])
    assert pod["spec"]["containers"][0]["resources"] == resources  # spec.build, on the node
    assert pod["spec"]["serviceAccountName"] == "builds"
    assert {
        "key": node.TAINT_KEY,
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    } in (pod["spec"]["tolerations"])
    security = pod["spec"]["containers"][0]["securityContext"]
    assert security["runAsUser"] == 1000
    assert "privileged" not in security
    # Verified from the registry's layers, then written to the catalog.
    assert kube.condition(ready, "Verified")["status"] == "True"  # type: ignore[index]
    shown = catalog_server.show("catalog")
    assert latest["digest"] in shown or tag in shown, shown

    # Warm: a changed script rebuilds (base layers cached in the registry's build cache).
    body["spec"]["source"]["inline"]["scripts"]["deploy.sh"] = "#!/bin/sh\necho deploy v2\n"
    start = time.monotonic()
    cluster.apply(namespace, json.dumps(body))
    rebuilt = wait_digest_change(cluster, namespace, latest["digest"], timeout=240)
    warm = time.monotonic() - start
    assert rebuilt["status"]["latestImage"]["digest"] != latest["digest"]
    with capsys.disabled():
        print(
            f"\n[figure] Job backend on the real node: apply->Ready cold {cold:.1f} s, "
            f"warm {warm:.1f} s"
        )


def test_a_failing_run_step_stalls_with_buildkits_log_tail(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    real_node: node.Node,
    node_image_store: node_images.Served,
    oci_registry: registry.Registry,
) -> None:
    images = node_image_store[1]
    body = prepare(
        cluster, namespace, start_operator, real_node, images, oci_registry.host, images.debian
    )
    body["spec"]["source"]["inline"]["dockerfile"] = (
        f"FROM {images.debian}\nCOPY scripts/ /scripts/\nRUN echo about to fail && exit 1\n"
    )
    message = stalled_build(cluster, namespace, body)
    # The real BuildKit's words, from the pod's log (termination message falls back to it).
    assert "exit code: 1" in message, message
    (pod,) = build_pods(cluster, namespace)
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] != 0


def test_a_build_image_that_cannot_be_pulled_fails_with_the_kubelets_reason(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    real_node: node.Node,
    node_image_store: node_images.Served,
    oci_registry: registry.Registry,
    base_image: str,
) -> None:
    images = node_image_store[1]
    missing = f"{images.host}/ade-test/buildkit:no-such-tag"
    body = prepare(
        cluster, namespace, start_operator, real_node, images, oci_registry.host, base_image,
        ADE_BUILDKIT_IMAGE=missing, ADE_BUILD_PENDING_TIMEOUT="5s",
    )  # fmt: skip
    message = stalled_build(cluster, namespace, body, timeout=120)
    assert "cannot be pulled" in message, message
    assert "ErrImagePull" in message or "ImagePullBackOff" in message, message
    assert missing in message
    assert buildjobs.jobs(cluster, namespace) == []  # the stuck Job is deleted, not left to hang


def test_a_build_pod_that_cannot_be_scheduled_fails_with_the_schedulers_reason(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    real_node: node.Node,
    node_image_store: node_images.Served,
    oci_registry: registry.Registry,
    base_image: str,
) -> None:
    body = prepare(
        cluster, namespace, start_operator, real_node, node_image_store[1], oci_registry.host,
        base_image, ADE_BUILD_PENDING_TIMEOUT="3s",
    )  # fmt: skip
    body["spec"]["build"]["nodeSelector"]["ade.dev/accelerator"] = "none-here"
    message = stalled_build(cluster, namespace, body, timeout=120)
    assert "stayed Pending" in message, message
    # The real scheduler's words (kwok tests write their own).
    assert "Unschedulable" in message, message
    assert "node affinity/selector" in message, message


def test_a_build_past_its_deadline_fails_saying_so(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    real_node: node.Node,
    node_image_store: node_images.Served,
    oci_registry: registry.Registry,
) -> None:
    images = node_image_store[1]
    body = prepare(
        cluster, namespace, start_operator, real_node, images, oci_registry.host, images.debian
    )
    body["spec"]["build"]["timeout"] = "60s"  # the shortest spec.build.timeout allowed
    body["spec"]["source"]["inline"]["dockerfile"] = (
        f"FROM {images.debian}\nCOPY scripts/ /scripts/\nRUN sleep 600\n"
    )
    started = time.monotonic()
    message = stalled_build(cluster, namespace, body, timeout=150)
    assert "deadline" in message.lower(), message
    assert time.monotonic() - started < 120  # the Job's deadline stopped it, not the sleep
