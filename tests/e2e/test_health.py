"""RunnerImage status read by kstatus itself and by the shipped Argo CD health check.

The real operator (a process on the real API server, Job builds on kwok nodes) brings
RunnerImages into every state: not yet seen, building, retrying, ready, a spec change not yet
observed, stalled, suspended and deleting (deletionTimestamp set while the operator, stopped,
still holds its finalizer). Each object is read as `kubectl get -o json` returns it and given to
both `kstatus-check` (sigs.k8s.io/cli-utils' kstatus, compiled by hack/tools.sh) and
`deploy/health/runnerimage.lua` (in Lua 5.1, as Argo CD runs it); the two must agree.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from tests.conftest import PUSH_PASSWORD, PUSH_USER, StartOperator
from tests.e2e import buildjobs, health, samples
from tests.env import controlplane, kube, kwok, oci, registry

pytestmark = pytest.mark.e2e

NAME = buildjobs.NAME


def _read(
    cluster: kube.Cluster, namespace: str, name: str
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The object, and what kstatus and Argo CD make of it (which must agree), as dicts."""
    obj = cluster.get(namespace, name)
    assert obj is not None, f"{namespace}/{name} is gone"
    ks, argo = health.kstatus(obj), health.argocd(obj)
    assert health.agree(ks, argo, obj), (ks, argo, obj.get("status"))
    return obj, dataclasses.asdict(ks), dataclasses.asdict(argo)


def test_a_job_build_from_creation_to_deletion(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    cluster.apply(
        namespace, json.dumps(buildjobs.runner_image(namespace, oci_registry.host, base_image))
    )

    # Not seen by any operator yet: no status. kstatus cannot tell (a custom resource without
    # observedGeneration or conditions is "Current" to it); Argo CD waits.
    unseen = cluster.get(namespace, NAME)
    assert unseen is not None
    assert "status" not in unseen
    assert health.kstatus(unseen).status == "Current"
    assert health.argocd(unseen) == health.Health(
        "Progressing", "Waiting for the operator to report status"
    )

    operator = start_operator()
    cluster.wait_condition(namespace, NAME, "Reconciling", status="True")
    building, ks, argo = _read(cluster, namespace, NAME)
    reconciling = kube.condition(building, "Reconciling")
    assert reconciling is not None
    assert ks == {"status": "InProgress", "message": reconciling["message"]}
    assert argo == ks | {"status": "Progressing"}

    (job,) = buildjobs.one_job(cluster, namespace)
    buildjobs.finish(cluster, namespace, job, pusher)
    cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=60)
    ready, ks, argo = _read(cluster, namespace, NAME)
    assert ks == {"status": "Current", "message": "Resource is Ready"}
    assert argo == {"status": "Healthy", "message": kube.condition(ready, "Ready")["message"]}  # type: ignore[index]

    # A spec change the operator has not observed (it is stopped): in progress, whatever the
    # conditions of the previous generation say.
    operator.stop()
    cluster.plane.kubectl(
        "patch", "ri", NAME, "-n", namespace, "--type=merge",
        "-p", '{"spec":{"buildArgs":{"HEALTH_TEST":"1"}}}',
    )  # fmt: skip
    changed, ks, argo = _read(cluster, namespace, NAME)
    generation = changed["metadata"]["generation"]
    assert changed["status"]["observedGeneration"] == generation - 1
    assert kube.condition(changed, "Ready")["status"] == "True"  # type: ignore[index]
    assert ks == {
        "status": "InProgress",
        "message": f"RunnerImage generation is {generation}, "
        f"but latest observed generation is {generation - 1}",
    }
    assert argo == {
        "status": "Progressing",
        "message": f"Generation {generation} is not observed yet (observed: {generation - 1})",
    }

    # Deleted while the operator is away: the finalizer holds it, deletionTimestamp is set.
    cluster.plane.kubectl("delete", "ri", NAME, "-n", namespace, "--wait=false")
    deleting, ks, argo = _read(cluster, namespace, NAME)
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["finalizers"] == ["runners.ade.dev/finalizer"]
    assert ks == {"status": "Terminating", "message": "Resource scheduled for deletion"}
    assert argo == {"status": "Progressing", "message": "Pending deletion"}

    operator.start()
    kube.wait_for(
        lambda: cluster.get(namespace, NAME) is None, timeout=30, what="the finalizer released"
    )


def test_an_invalid_spec_is_stalled_failed_and_degraded(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    obj = samples.offline()
    obj["spec"]["catalog"] = {
        "git": {"url": "https://git.example.com/platform/catalog.git"},
        "manifests": ["../elsewhere/*.yaml"],
    }
    cluster.apply(namespace, json.dumps(obj))
    cluster.wait_condition(namespace, "bicep-runner", "Stalled", status="True")
    stalled, ks, argo = _read(cluster, namespace, "bicep-runner")
    message = kube.condition(stalled, "Stalled")["message"]  # type: ignore[index]
    assert message.startswith("spec.catalog.manifests[0]")
    assert ks == {"status": "Failed", "message": message}
    assert argo == {"status": "Degraded", "message": message}


def test_suspended_is_in_progress_to_kstatus_and_suspended_to_argocd(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    cluster.apply(namespace, samples.manifest(suspend=True))
    cluster.wait_condition(namespace, "bicep-runner", "Ready", status="False", reason="Suspended")
    suspended, ks, argo = _read(cluster, namespace, "bicep-runner")
    ready = kube.condition(suspended, "Ready")
    assert ready is not None
    assert ks == {"status": "InProgress", "message": ready["message"]}
    assert argo["status"] == "Suspended"


def test_a_transient_failure_is_in_progress_while_retried(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    # A registry nothing listens on: the base image cannot be resolved, and that may pass.
    host = f"127.0.0.1:{controlplane.free_port()}"
    cluster.plane.kubectl(
        "create", "secret", "docker-registry", "push", "-n", namespace,
        f"--docker-server={host}", f"--docker-username={PUSH_USER}",
        f"--docker-password={PUSH_PASSWORD}",
    )  # fmt: skip
    start_operator()
    cluster.apply(
        namespace, json.dumps(buildjobs.runner_image(namespace, host, f"{host}/core:4.0"))
    )
    cluster.wait_condition(namespace, NAME, "Ready", status="False", timeout=60)
    retrying, ks, argo = _read(cluster, namespace, NAME)
    ready = kube.condition(retrying, "Ready")
    assert ready is not None
    assert kube.condition(retrying, "Stalled") is None, ready
    assert ks == {"status": "InProgress", "message": ready["message"]}
    assert argo == ks | {"status": "Progressing"}


HAND_MADE: dict[str, dict[str, Any]] = {
    "ready": {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}]},
    "stalled": {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "m"},
            {"type": "Stalled", "status": "True", "reason": "BuildFailed", "message": "m"},
        ]
    },
    "reconciling": {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Building", "message": "b"},
            {"type": "Reconciling", "status": "True", "reason": "Building", "message": "b"},
        ]
    },
    "ready-unknown": {
        "conditions": [{"type": "Ready", "status": "Unknown", "reason": "X", "message": "u"}]
    },
    "behind": {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}],
    },
}


@pytest.mark.parametrize("case", sorted(HAND_MADE))
def test_hand_made_statuses_read_the_same_in_kstatus_and_argocd(case: str) -> None:
    obj = {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": "r", "namespace": "ns", "generation": 2},
        "spec": {},
        "status": {"observedGeneration": 2, **HAND_MADE[case]},
    }
    ks, argo = health.kstatus(obj), health.argocd(obj)
    assert health.agree(ks, argo, obj), (ks, argo)
