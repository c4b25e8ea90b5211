"""The chart installed by `helm install` on the test control plane, and on the real node: the
fixtures (`chart`, `release_namespace`: uninstalled and deleted after) and the values and waits
the tests that run the operator's pod share."""

from __future__ import annotations

import json
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.env import controlplane, helm, kube, node, node_images


@pytest.fixture
def chart(tmp_path: pathlib.Path) -> helm.Helm:
    return helm.Helm(tmp_path / "helm")


@pytest.fixture
def release_namespace(cluster: kube.Cluster, chart: helm.Helm) -> Iterator[str]:
    """Where the chart is installed; the release is uninstalled and the namespace deleted after."""
    name = f"ade-{uuid.uuid4().hex[:8]}"
    yield name
    chart.uninstall(cluster.plane, release="ade", namespace=name)
    cluster.plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def chart_values(
    plane: controlplane.ControlPlane,
    images: node_images.NodeImages,
    where: node.Node,
    *,
    namespace: str,
    replicas: int = 1,
) -> dict[str, Any]:
    """The chart's values for the real node: its image, placement and loopback networking."""
    repository, _, tag = images.operator.rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag},
        "replicas": replicas,
        "watchNamespaces": [namespace],
        "hostNetwork": True,
        "apiServer": {"host": "127.0.0.1", "port": str(plane.api_port)},
        # hostNetwork: the node's ports, so free ones (the receiver's too, not the default 9292).
        "ports": dict(
            zip(("metrics", "health", "receiver"), controlplane.free_ports(3), strict=True)
        ),
        "operator": {
            "logFormat": "plain",
            "buildkitImage": images.buildkit,
            "buildHostNetwork": True,
            "progressInterval": "1s",
        },
        **node.placement(where.name),
    }


def install(
    chart: helm.Helm,
    plane: controlplane.ControlPlane,
    namespace: str,
    values: dict[str, Any],
    folder: pathlib.Path,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "values.json"
    path.write_text(json.dumps(values))  # JSON is YAML
    chart.install(plane, release="ade", namespace=namespace, values_files=[path])


def operator_pods(plane: controlplane.ControlPlane, namespace: str) -> list[dict[str, Any]]:
    out = plane.kubectl(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=ade-runner-operator",
        "-o", "json",
    )  # fmt: skip
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def ready_pod(plane: controlplane.ControlPlane, namespace: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        for pod in operator_pods(plane, namespace):
            if (kube.condition(pod, "Ready") or {}).get("status") == "True":
                return pod
        return None

    return kube.wait_for(probe, timeout=120, what="an operator pod Ready", interval=0.2)
