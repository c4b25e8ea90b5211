"""Restarts, idling and deletion: quiet when nothing changes, never blocking a deletion."""

from __future__ import annotations

import datetime
import json
import re
import time

import pytest

from tests.conftest import StartOperator
from tests.e2e import samples
from tests.env import kube

pytestmark = pytest.mark.e2e

EXAMPLE = samples.manifest()
NAME = "bicep-runner"
IDLE_WINDOW = 30.0


def _reconciles(metrics: str) -> float:
    return sum(
        float(value)
        for value in re.findall(r"^ade_runner_reconciles_total\{[^}]*\} (\S+)$", metrics, re.M)
    )


def test_restart_changes_nothing_and_idle_writes_nothing(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    started = datetime.datetime.now(datetime.UTC)
    operator = start_operator()
    for index in range(3):
        cluster.apply(namespace, samples.manifest(f"{NAME}-{index}"))
    settled = {
        index: cluster.wait_condition(
            namespace, f"{NAME}-{index}", "Ready", reason=samples.SETTLED_REASON
        )
        for index in range(3)
    }
    # The audit log does see this operator's writes (finalizers, status): the count below is real.
    assert cluster.writes_by(kube.OPERATOR_USER, since=started)

    operator.restart()
    # The resumed operator reconciles every object once; wait until it has, then watch it idle.
    kube.wait_for(
        lambda: _reconciles(operator.metrics()) >= 3, timeout=30, what="3 resume reconciles"
    )
    since = datetime.datetime.now(datetime.UTC)
    writes = _writes_during(cluster, since=since, seconds=IDLE_WINDOW)
    assert writes == [], [(w["verb"], w["requestURI"]) for w in writes]
    for index, before in settled.items():
        after = cluster.get(namespace, f"{NAME}-{index}")
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["status"] == before["status"]


def _writes_during(
    cluster: kube.Cluster, *, since: datetime.datetime, seconds: float
) -> list[dict[str, object]]:
    """The operator's writes from `since` over `seconds`, checked every second (fails fast)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        writes = cluster.writes_by(kube.OPERATOR_USER, since=since)
        if writes:
            return writes
        time.sleep(1.0)
    return cluster.writes_by(kube.OPERATOR_USER, since=since)


def test_delete_releases_the_finalizer(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    cluster.apply(namespace, EXAMPLE)
    obj = cluster.wait_condition(namespace, NAME, "Ready", reason=samples.SETTLED_REASON)
    assert obj["metadata"]["finalizers"] == ["runners.ade.dev/finalizer"]
    cluster.plane.kubectl("delete", "ri", NAME, "-n", namespace, "--timeout=30s")
    assert cluster.get(namespace, NAME) is None


def test_namespace_deletion_finishes(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    cluster.apply(namespace, EXAMPLE)
    cluster.wait_condition(namespace, NAME, "Ready", reason=samples.SETTLED_REASON)
    cluster.plane.kubectl("delete", "namespace", namespace, "--wait=false")
    kube.wait_for(
        lambda: cluster.plane.kubectl("get", "namespace", namespace, check=False).returncode != 0,
        timeout=60,
        what=f"namespace {namespace} to be gone",
        interval=0.5,
    )


def test_documented_finalizer_removal_when_the_operator_is_gone(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    operator = start_operator()
    cluster.apply(namespace, EXAMPLE)
    cluster.wait_condition(namespace, NAME, "Ready", reason=samples.SETTLED_REASON)
    operator.stop()
    cluster.plane.kubectl("delete", "ri", NAME, "-n", namespace, "--wait=false")
    stuck = cluster.get(namespace, NAME)
    assert stuck is not None
    assert stuck["metadata"]["deletionTimestamp"]
    # The command README.md documents for this case:
    cluster.plane.kubectl(
        "patch", "runnerimage", NAME, "-n", namespace, "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}',
    )  # fmt: skip
    kube.wait_for(
        lambda: cluster.get(namespace, NAME) is None, timeout=15, what="the object to be gone"
    )


def test_a_new_object_says_reconciling_in_its_first_write_and_is_reconciled_at_once(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    """The first word goes before kopf's finalizer (one write, not two in sequence), the
    finalizer is added on its echo (an object without the finalizer) and kopf refuses nothing: a
    refused finalizer patch left the object waiting for a timer, which here would be ten minutes
    away. The status is written twice: the word, then the verdict (the echo said the word again,
    unchanged, when the finalizer went in the word's own cycle)."""
    start_operator(ADE_PROGRESS_INTERVAL="10m")
    since = datetime.datetime.now(datetime.UTC)
    name = "first-word"
    cluster.plane.kubectl(
        "create", "-n", namespace, "-f", "-", input=json.dumps(samples.offline(name))
    )
    obj = cluster.wait_condition(namespace, name, "Stalled", status="True", timeout=20)
    assert obj["metadata"]["finalizers"] == ["runners.ade.dev/finalizer"]
    requests = sorted(
        (
            event
            for event in cluster.writes_by(kube.OPERATOR_USER, since=since)
            if event["objectRef"].get("resource") == "runnerimages"
            and event["objectRef"].get("name") == name
        ),
        key=lambda event: event["requestReceivedTimestamp"],
    )
    said = [
        (event["verb"], event["objectRef"].get("subresource", ""), event["responseStatus"]["code"])
        for event in requests
    ]
    assert said[:2] == [("patch", "status", 200), ("patch", "", 200)], said  # word, finalizer
    assert all(code < 400 for _, _, code in said), said
    assert [subresource for _, subresource, _ in said].count("status") == 2, said
