"""Build figures: spec change to build start (Job backend), and the example's cold and warm build
time end to end on the daemon backend (apply to Ready: resolve, build, push, verify).

Each prints its figures; the assertions are loose bounds that catch a regression by an order of
magnitude, not noise.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import statistics
import tempfile
import threading
import time
from typing import Any

import pytest
from kubernetes import client, config, watch

from tests.conftest import PUSH_PASSWORD, PUSH_USER, StartOperator
from tests.env import buildkitd, controlplane, images, kube, kwok, registry

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

CHANGES = 20


def _secret(cluster: kube.Cluster, namespace: str, host: str) -> None:
    cluster.plane.kubectl(
        "create", "secret", "docker-registry", "push", "-n", namespace,
        f"--docker-server={host}", f"--docker-username={PUSH_USER}",
        f"--docker-password={PUSH_PASSWORD}",
    )  # fmt: skip


DOCKERFILE = (
    "ARG BASE_IMAGE\nARG IMAGE_VERSION\nFROM ${BASE_IMAGE}:${IMAGE_VERSION}\n"
    "COPY scripts/ /scripts/\nRUN chmod +x /scripts/*.sh\n"
)
"""The example's Dockerfile: ADE's pattern, one layer of scripts on the base image."""


def runner_body(
    namespace: str, host: str, *, backend: str, base: str, script: str, name: str = "bench"
) -> dict[str, Any]:
    """A RunnerImage of `DOCKERFILE` with `script` as deploy.sh, pushed to `namespace/name`."""
    return {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": name},
        "spec": {
            "source": {
                "inline": {
                    "dockerfile": DOCKERFILE,
                    "scripts": {"deploy.sh": script, "delete.sh": "#!/bin/sh\n"},
                }
            },
            "buildArgs": {"BASE_IMAGE": base, "IMAGE_VERSION": "4.0"},
            "image": {
                "registry": host,
                "repository": f"{namespace}/{name}",
                "pushSecretRef": {"name": "push"},
            },
            "build": {"backend": backend},
        },
    }


def test_spec_change_to_build_start(
    control_plane: controlplane.ControlPlane,
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _secret(cluster, namespace, oci_registry.host)
    start_operator(ADE_MAX_CONCURRENT_BUILDS=str(CHANGES + 1))
    batch = client.BatchV1Api(config.new_client_from_config(str(control_plane.kubeconfig)))
    created: list[float] = []
    ready = threading.Semaphore(0)
    stream = watch.Watch()

    done = threading.Event()

    def observe() -> None:
        try:
            for event in stream.stream(
                batch.list_namespaced_job, namespace, timeout_seconds=300, _request_timeout=310
            ):
                if event["type"] == "ADDED":
                    created.append(time.monotonic())
                    ready.release()
        except Exception:
            if not done.is_set():  # an error while measuring is a failure; after, the end
                raise

    threading.Thread(target=observe, daemon=True).start()
    body = runner_body(namespace, oci_registry.host, backend="Job", base="unused", script="")
    body["spec"]["source"]["inline"]["dockerfile"] = "FROM scratch\nCOPY scripts/ /scripts/\n"
    latencies = []
    for change in range(CHANGES + 1):
        body["spec"]["buildArgs"] = {"CHANGE": str(change)}
        start = time.monotonic()
        cluster.apply(namespace, json.dumps(body))
        assert ready.acquire(timeout=60), f"no Job after change {change}"
        if change:  # the first is the initial build, not a change
            latencies.append(created[-1] - start)
    done.set()
    stream.stop()
    median = statistics.median(latencies)
    with capsys.disabled():
        print(
            f"\n[benchmark] spec change to build Job created, {CHANGES} changes: median "
            f"{median * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
        )
    assert median < 5.0


def test_example_cold_and_warm_build_on_the_daemon_backend(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    oci_registry: registry.Registry,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_json = registry.docker_config_json(
        oci_registry.host, user=PUSH_USER, password=PUSH_PASSWORD
    )
    short = pathlib.Path(tempfile.mkdtemp(prefix="bk-"))
    daemon = buildkitd.BuildkitDaemon(short)  # a fresh daemon: an empty cache
    daemon.start()
    with buildkitd.push_credentials(tmp_path / "docker", config_json):
        try:
            base = f"{oci_registry.host}/{namespace}/core"
            images.push_core(daemon, f"{base}:4.0")
            daemon.stop()
            shutil.rmtree(short, ignore_errors=True)
            daemon = buildkitd.BuildkitDaemon(pathlib.Path(tempfile.mkdtemp(prefix="bk-")))
            daemon.start()  # cold: nothing of the base image or the build is cached
            _secret(cluster, namespace, oci_registry.host)
            path = f"{daemon.bin}:{os.environ['PATH']}"
            start_operator(ADE_BUILDKIT_ADDR=daemon.address, PATH=path)
            figures = []
            for script in ("#!/bin/sh\necho v1\n", "#!/bin/sh\necho v2\n"):
                body = runner_body(
                    namespace, oci_registry.host, backend="BuildKitDaemon", base=base, script=script
                )
                start = time.monotonic()
                cluster.apply(namespace, json.dumps(body))

                def built(script: str = script) -> bool:
                    obj = cluster.get(namespace, "bench") or {}
                    status = obj.get("status", {})
                    ready = kube.condition(obj, "Ready") or {}
                    return (
                        ready.get("status") == "True"
                        and status.get("observedGeneration") == obj["metadata"]["generation"]
                        and ready.get("observedGeneration") == obj["metadata"]["generation"]
                    )

                kube.wait_for(built, timeout=300, what="the example built and verified")
                figures.append(time.monotonic() - start)
        finally:
            daemon.stop()  # the one running now (stopping twice is harmless)
    with capsys.disabled():
        print(
            f"\n[benchmark] example on BuildKitDaemon, apply to Ready (build+push+verify): "
            f"cold {figures[0]:.2f} s, warm (one script changed) {figures[1]:.2f} s"
        )
    assert figures[1] < 60
