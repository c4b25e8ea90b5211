"""The real node itself: it registers, turns Ready, and runs pods pulled from the local registry.

Two network shapes, both inside the machine's rule (traffic only on loopback): a pod of its own
network namespace sees only `lo`; a host-network pod reaches the services on 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.env import kube, node, node_images

pytestmark = pytest.mark.e2e


def pod(name: str, image: str, script: str, *, host_network: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": image, "command": ["sh", "-c", script]}],
        "terminationGracePeriodSeconds": 1,
    }
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def run_pod(
    cluster: kube.Cluster, namespace: str, where: node.Node, body: dict[str, Any]
) -> dict[str, Any]:
    """Create `body` on the real node, wait until it finished; the pod as read then."""
    body["spec"].update(node.placement(where.name))
    cluster.apply(namespace, json.dumps(body))
    name = body["metadata"]["name"]

    def finished() -> dict[str, Any] | None:
        out = cluster.plane.kubectl("get", "pod", name, "-n", namespace, "-o", "json")
        found: dict[str, Any] = json.loads(out.stdout)
        return found if found["status"].get("phase") in ("Succeeded", "Failed") else None

    return kube.wait_for(finished, timeout=90, what=f"pod {name} finished")


def test_node_registers_ready_with_its_taint_and_label(
    cluster: kube.Cluster,
    real_node: node.Node,
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = json.loads(cluster.plane.kubectl("get", "node", real_node.name, "-o", "json").stdout)
    assert found["metadata"]["labels"][node.LABEL] == "true"
    assert found["spec"]["taints"] == [
        {"key": node.TAINT_KEY, "value": "true", "effect": "NoSchedule"}
    ]
    assert kube.condition(found, "Ready")["status"] == "True"  # type: ignore[index]
    info = found["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://1.")
    assert info["kubeletVersion"] == node_images.versions()["KUBERNETES_VERSION"]
    with capsys.disabled():
        print(f"\n[figure] node Ready {real_node.ready_after:.1f} s after containerd started")


def test_a_pod_of_its_own_network_sees_only_loopback(
    cluster: kube.Cluster,
    namespace: str,
    real_node: node.Node,
    node_image_store: node_images.Served,
) -> None:
    images = node_image_store[1]
    done = run_pod(
        cluster,
        namespace,
        real_node,
        pod("netns", images.debian, "cat /proc/net/dev; echo finished"),
    )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["spec"]["nodeName"] == real_node.name
    assert done["status"]["podIP"].startswith("127."), done["status"]  # its own loopback address
    # Logs travel API server -> kubelet (by host name, on loopback).
    logs = cluster.plane.kubectl("logs", "netns", "-n", namespace).stdout
    interfaces = {line.split(":")[0].strip() for line in logs.splitlines() if ":" in line}
    assert interfaces == {"lo"}, logs
    assert "finished" in logs


def test_a_host_network_pod_reaches_the_registry_on_loopback(
    cluster: kube.Cluster,
    namespace: str,
    real_node: node.Node,
    node_image_store: node_images.Served,
) -> None:
    images = node_image_store[1]
    port = images.host.rpartition(":")[2]
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port}; "
        'printf "GET /v2/ HTTP/1.0\\r\\n\\r\\n" >&3; head -n 1 <&3'
    )
    done = run_pod(
        cluster,
        namespace,
        real_node,
        pod("hostnet", images.debian, f"bash -c '{script}'", host_network=True),
    )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    logs = cluster.plane.kubectl("logs", "hostnet", "-n", namespace).stdout
    assert logs.startswith("HTTP/1."), logs
    assert " 200 " in logs, logs
