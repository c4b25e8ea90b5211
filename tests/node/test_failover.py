"""Two replicas of the operator's pod on the real node: one leader, and a takeover mid-build.

The chart with `replicas: 2` (kopf peering, a random priority per replica): the replicas run in
pods of their own network namespace (their metrics and health ports would collide on the host's),
reaching the API server, registry and git server over the node's loopback bridge
(`tests.env.loopback_bridge`). Several RunnerImages build in real rootless BuildKit Jobs; while
the builds run, the leader dies: its pod deleted with `--grace-period=0 --force` (the kubelet
still stops it with SIGTERM, and kopf withdraws from the peering on the way out), or its process
SIGKILLed (its peering record must lapse: `peering.lifetime`). The standby takes over, adopts the
running Jobs and finishes: one Job per build key, one catalog commit per manifest, every object
Ready.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import signal
import time
from typing import Any

import pytest

from tests.e2e import buildjobs, catalogs
from tests.e2e.releases import chart_values, install, operator_pods
from tests.env import controlplane, gitserver, helm, kube, node, node_images, registry, tokenserver

pytestmark = pytest.mark.e2e

COUNT = 3
BUILD_SECONDS = 20


def leader(plane: controlplane.ControlPlane, namespace: str) -> str:
    """The pod name of the replica kopf's peering makes active (the highest priority)."""

    def probe() -> str | None:
        out = plane.kubectl("get", "kopfpeerings", "-n", namespace, "-o", "json", check=False)
        if out.returncode != 0:
            return None
        items = json.loads(out.stdout)["items"]
        peers: dict[str, Any] = (items[0].get("status") or {}) if items else {}
        if len(peers) < 2:
            return None
        # kopf's identity: <user>@<host name, the pod's name>/<start time>/<random>
        identity = max(peers, key=lambda peer: peers[peer]["priority"])
        return identity.partition("@")[2].split("/", 1)[0]

    return kube.wait_for(probe, timeout=60, what="two peers in the KopfPeering")


def took_over(
    plane: controlplane.ControlPlane, namespace: str, pod: str, since: float
) -> float | None:
    """When `pod` first took the lead after `since` (epoch seconds): a "Resuming operations" it
    logged that no "Pausing operations" followed within a second. (A replica logs "Resuming" as
    it starts, then "Pausing" at once if it sees a peer of higher priority: no takeover.)"""
    events: list[tuple[str, float]] = []
    logs = plane.kubectl("logs", pod, "-n", namespace, check=False).stdout
    for line in logs.splitlines():
        found = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", line)
        word = next((w for w in ("Resuming", "Pausing") if f"{w} operations" in line), None)
        if found and word:
            stamp = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
            events.append((word, stamp.replace(tzinfo=datetime.UTC).timestamp()))
    for index, (word, at) in enumerate(events):
        after = events[index + 1] if index + 1 < len(events) else None
        held = after is None or after[1] - at > 1.0
        if word == "Resuming" and at > since and held:
            return at
    return None


def kill_operator_process(pod: str) -> int:
    """SIGKILL the operator process of `pod` on this host (found by the pod's HOSTNAME): a
    replica that dies without a word, leaving its peering record to lapse."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        program = cmdline.split(b"\0", 1)[0]
        if program.endswith(b"tini"):  # PID 1 of the container: not the operator itself
            continue
        if b"ade-runner-operator" in cmdline and f"HOSTNAME={pod}".encode() in environ:
            os.kill(int(entry.name), signal.SIGKILL)
            return int(entry.name)
    raise AssertionError(f"no operator process of pod {pod} on this host")


@pytest.mark.parametrize("death", ["force-delete", "sigkill"])
def test_two_replicas_one_leader_and_a_takeover_mid_build(
    death: str,
    cluster: kube.Cluster,
    namespace: str,
    release_namespace: str,
    chart: helm.Helm,
    real_node: node.Node,
    node_image_store: node_images.Served,
    oci_registry: registry.Registry,
    token_server: tokenserver.TokenServer,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plane = cluster.plane
    images = node_image_store[1]
    manifests = [f"Environments/env{i}/environment.yaml" for i in range(COUNT)]
    users = {catalogs.GIT_USER: catalogs.GIT_PASSWORD}
    with gitserver.running(tmp_path / "git", users) as server:
        server.create_repo(
            "catalog",
            {m: catalogs.MANIFEST.format(name=f"env{i}") for i, m in enumerate(manifests)},
        )
        buildjobs.push_secret(cluster, namespace, oci_registry.host)
        catalogs.git_secret(cluster, namespace)
        real_node.bridge(
            out=[
                plane.api_port,
                oci_registry.port,
                token_server.port,
                server.port,
                int(images.host.rpartition(":")[2]),  # the base image's registry
            ],
            inbound=[8080, 8081],
        )
        values = chart_values(plane, images, real_node, namespace=namespace, replicas=2)
        values.update(hostNetwork=False, ports={"metrics": 8080, "health": 8081})
        install(chart, plane, release_namespace, values, tmp_path / "values")
        kube.wait_for(
            lambda: [
                p for p in operator_pods(plane, release_namespace)
                if (kube.condition(p, "Ready") or {}).get("status") == "True"
            ] if len(operator_pods(plane, release_namespace)) == 2 else None,
            timeout=120,
            what="two operator pods Ready",
        )  # fmt: skip
        active = leader(plane, namespace)

        names = [f"runner-{i}" for i in range(COUNT)]
        for name, manifest in zip(names, manifests, strict=True):
            body = buildjobs.runner_image(namespace, oci_registry.host, images.debian)
            body["metadata"]["name"] = name
            body["spec"]["image"]["repository"] = f"{namespace}/{name}"
            body["spec"]["source"]["inline"]["dockerfile"] = (
                f"FROM {images.debian}\nCOPY scripts/ /scripts/\nRUN sleep {BUILD_SECONDS}\n"
            )
            body["spec"]["build"].update(node.placement(real_node.name))
            catalogs.with_catalog(body, server.url("catalog"), [manifest])
            cluster.apply(namespace, json.dumps(body))

        # Every build pod running: now the leader dies without a word.
        def all_building() -> bool:
            pods = json.loads(
                plane.kubectl(
                    "get", "pods", "-n", namespace, "-l", "runners.ade.dev/runnerimage",
                    "-o", "json",
                ).stdout
            )["items"]  # fmt: skip
            return len(pods) == COUNT and all(p["status"].get("phase") == "Running" for p in pods)

        kube.wait_for(all_building, timeout=120, what=f"{COUNT} build pods Running")
        killed = time.time()
        if death == "force-delete":
            plane.kubectl(
                "delete", "pod", active, "-n", release_namespace, "--grace-period=0", "--force"
            )
        else:
            kill_operator_process(active)
        for name in names:
            cluster.wait_condition(namespace, name, "Ready", status="True", timeout=180)
        all_ready = time.time() - killed
        # The standby, or the leader's restarted container (SIGKILL) or its replacement (force
        # delete) if it drew a higher priority: whichever took the lead first.
        pods = [p["metadata"]["name"] for p in operator_pods(plane, release_namespace)]
        resumed = [t for t in (took_over(plane, release_namespace, p, killed) for p in pods) if t]
        assert resumed, "no replica took the lead after the death"
        failover = min(resumed) - killed
        assert failover < 15, f"the takeover took {failover:.1f} s"

        # One Job per RunnerImage (adopted, never doubled), one commit per manifest.
        jobs = buildjobs.jobs(cluster, namespace, "")
        per_owner = sorted(j["metadata"]["labels"]["runners.ade.dev/runnerimage"] for j in jobs)
        assert per_owner == sorted(names), per_owner
        for manifest in manifests:
            touched = server.log("catalog", path=manifest)
            assert len(touched) == 2, (manifest, touched)  # the seed commit and one write-back
    with capsys.disabled():
        print(
            f"\n[figure] failover ({death} of the leader mid-build): a replica resumed in "
            f"{failover:.1f} s"
            f" (the chart's default peering lifetime); {COUNT} RunnerImages Ready "
            f"{all_ready:.1f} s after it"
        )
