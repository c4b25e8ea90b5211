"""The operator as a process on the real API server: status, validation, suspend, events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import StartOperator
from tests.e2e import samples
from tests.env import kube

pytestmark = pytest.mark.e2e

EXAMPLE = samples.manifest()
NAME = "bicep-runner"


def test_example_is_reported_in_status(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    cluster.apply(namespace, EXAMPLE)
    obj = cluster.wait_condition(
        namespace, NAME, "Ready", status="False", reason=samples.SETTLED_REASON
    )
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    inputs = kube.condition(obj, "InputsResolved")
    assert inputs is not None
    assert inputs["status"] == "True"
    assert obj["status"]["sourceRevision"].startswith("inline-")
    assert len(obj["status"]["buildKey"]) == 64
    access = kube.condition(obj, "RegistryAccessReady")
    assert access is not None
    assert access["status"] == "False"
    assert access["message"].startswith(samples.SETTLED_FIELD)
    stalled = kube.condition(obj, "Stalled")
    assert stalled is not None
    assert (stalled["status"], stalled["reason"]) == ("True", samples.SETTLED_REASON)
    assert kube.condition(obj, "Reconciling") is None
    assert "runners.ade.dev/finalizer" in obj["metadata"]["finalizers"]
    waited = cluster.plane.kubectl(
        "wait", f"ri/{NAME}", "-n", namespace, "--for=condition=Ready=false", "--timeout=10s"
    )
    assert "condition met" in waited.stdout
    wide = cluster.plane.kubectl("get", "ri", NAME, "-n", namespace, "-o", "wide").stdout
    assert samples.SETTLED_REASON in wide.splitlines()[1]


def test_invalid_spec_stalls_naming_the_field_and_recovers(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    obj = json.loads(json.dumps(_example_object()))
    obj["spec"]["catalog"] = {
        "git": {"url": "https://git.example.com/platform/catalog.git"},
        "manifests": ["Environments/**/environment.yaml", "../elsewhere/*.yaml"],
    }
    cluster.apply(namespace, json.dumps(obj))
    stalled = cluster.wait_condition(
        namespace, NAME, "Stalled", status="True", reason="InvalidSpec"
    )
    message = kube.condition(stalled, "Stalled")["message"]  # type: ignore[index]
    assert message == "spec.catalog.manifests[1]: glob matches outside the repository"
    ready = kube.condition(stalled, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    events = kube.wait_for(
        lambda: [e for e in cluster.events(namespace, NAME) if e["reason"] == "InvalidSpec"],
        timeout=15,
        what="an InvalidSpec event",
    )
    assert events[0]["type"] == "Warning"
    assert "spec.catalog.manifests[1]" in events[0]["message"]

    obj["spec"]["catalog"]["manifests"] = ["Environments/**/environment.yaml"]
    cluster.apply(namespace, json.dumps(obj))
    fixed = cluster.wait_condition(namespace, NAME, "Ready", reason=samples.SETTLED_REASON)
    still = kube.condition(fixed, "Stalled")  # now on the next problem, the absent Secret
    assert still is not None
    assert still["reason"] == samples.SETTLED_REASON


def test_credentials_in_a_url_are_refused_without_being_echoed(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    obj = _example_object()
    obj["spec"]["source"] = {"git": {"url": "https://robot:s3cr3t-t0ken@git.example.com/x.git"}}
    cluster.apply(namespace, json.dumps(obj))
    stalled = cluster.wait_condition(namespace, NAME, "Stalled", status="True")
    condition = kube.condition(stalled, "Stalled")
    assert condition is not None
    assert condition["message"].startswith("spec.source.git.url: must not embed credentials")
    assert "s3cr3t-t0ken" not in json.dumps(stalled["status"])
    events = kube.wait_for(
        lambda: cluster.events(namespace, NAME), timeout=15, what="the stall event"
    )
    assert all("s3cr3t-t0ken" not in e["message"] for e in events)


def test_suspend_stops_work_and_is_reported(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    obj = _example_object()
    obj["spec"]["suspend"] = True
    cluster.apply(namespace, json.dumps(obj))
    suspended = cluster.wait_condition(namespace, NAME, "Ready", status="False", reason="Suspended")
    assert kube.condition(suspended, "InputsResolved") is None  # no step ran
    assert "sourceRevision" not in suspended["status"]
    obj["spec"]["suspend"] = False
    cluster.apply(namespace, json.dumps(obj))
    cluster.wait_condition(namespace, NAME, "Ready", reason=samples.SETTLED_REASON)


def test_manual_trigger_is_echoed_in_status(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    cluster.apply(namespace, EXAMPLE)
    cluster.wait_condition(namespace, NAME, "Ready", reason=samples.SETTLED_REASON)
    cluster.plane.kubectl(
        "annotate", "ri", NAME, "-n", namespace, "--overwrite",
        "runners.ade.dev/reconcile-requested-at=2026-11-26T12:00:00Z",
    )  # fmt: skip

    def echoed() -> bool:
        obj = cluster.get(namespace, NAME) or {}
        echoed: object = obj.get("status", {}).get("lastHandledReconcileAt")
        return echoed == "2026-11-26T12:00:00Z"

    kube.wait_for(echoed, timeout=15, what="lastHandledReconcileAt")


def test_metrics_count_reconciles(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    operator = start_operator()
    cluster.apply(namespace, EXAMPLE)
    cluster.wait_condition(namespace, NAME, "Ready", reason=samples.SETTLED_REASON)
    text = operator.metrics()
    assert 'ade_runner_reconciles_total{result="stalled"}' in text
    assert f'ade_runner_ready{{name="{NAME}",namespace="{namespace}"}} 0.0' in text


def _example_object() -> dict[str, Any]:
    return samples.offline()
