"""The Job backend on the real API server, scheduler, job controller and kwok nodes.

A build pod "runs" on a kwok node until the test finishes it: the test pushes the image the pod
would have pushed (a synthetic one, to the real registry) and lets the pod terminate with
BuildKit's metadata JSON carrying that digest, exactly what a real build pod reports.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.conftest import PUSH_PASSWORD, StartOperator
from tests.e2e import buildjobs
from tests.env import kube, kwok, oci, registry
from tests.env import operator as operator_

pytestmark = pytest.mark.e2e

NAME = buildjobs.NAME


def test_job_build_end_to_end(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    operator = start_operator()
    cluster.apply(
        namespace, json.dumps(buildjobs.runner_image(namespace, oci_registry.host, base_image))
    )
    building = cluster.wait_condition(
        namespace, NAME, "Reconciling", status="True", reason="Building"
    )
    assert kube.condition(building, "Ready")["reason"] == "Building"  # type: ignore[index]
    (job,) = buildjobs.one_job(cluster, namespace)

    status = building["status"]
    key = status["buildKey"]
    assert job["metadata"]["name"] == f"{NAME}-build-{key[:12]}"
    assert job["metadata"]["labels"]["runners.ade.dev/build-key"] == key[:63]
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("RunnerImage", NAME, True)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].endswith("-rootless")
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    script = container["command"][-1]
    assert f"type=image,name={job['metadata']['annotations']['runners.ade.dev/image']}" in script
    assert "--metadata-file /tmp/metadata.json" in script
    assert "> /dev/termination-log" in script
    items = {i["path"]: i["mode"] for i in pod["volumes"][-1]["configMap"]["items"]}
    assert items == {"Dockerfile": 0o644, "scripts/delete.sh": 0o755, "scripts/deploy.sh": 0o755}
    assert status["baseImageDigest"].startswith("sha256:")
    assert status["builds"][0]["result"] == "Running"
    assert status["builds"][0]["reason"] == "Initial"

    digest = buildjobs.finish(cluster, namespace, job, pusher)
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=60)
    latest = ready["status"]["latestImage"]
    assert latest["digest"] == digest
    assert latest["reference"] == job["metadata"]["annotations"]["runners.ade.dev/image"]
    assert kube.condition(ready, "Verified")["status"] == "True"  # type: ignore[index]
    assert kube.condition(ready, "Reconciling") is None
    assert ready["status"]["builds"][0]["result"] == "Succeeded"
    assert ready["status"]["builds"][0]["digest"] == digest
    table = cluster.plane.kubectl("get", "ri", NAME, "-n", namespace).stdout.splitlines()
    assert table[1].split()[1:3] == ["True", latest["reference"]]
    assert PUSH_PASSWORD not in operator.logs()
    assert PUSH_PASSWORD not in json.dumps(ready)


def test_a_finished_build_job_wakes_its_reconcile_at_once(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
) -> None:
    """With the progress timer a minute away, only the watch of the build Job can bring Ready
    soon after the Job ends."""
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    start_operator(ADE_PROGRESS_INTERVAL="60s", ADE_RESYNC_INTERVAL="10m")
    cluster.apply(
        namespace, json.dumps(buildjobs.runner_image(namespace, oci_registry.host, base_image))
    )
    (job,) = buildjobs.one_job(cluster, namespace)
    buildjobs.finish(cluster, namespace, job, pusher)
    finished = time.monotonic()
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=90)
    seconds = time.monotonic() - finished
    annotations = ready["metadata"].get("annotations") or {}
    assert annotations.get("runners.ade.dev/build-finished") == job["metadata"]["name"]
    assert seconds < 10, f"Ready took {seconds:.1f}s: the timer, not the Job's end, woke it"
    # The watch wrote nothing to the Job: no finalizer, no kopf annotation.
    (after,) = buildjobs.jobs(cluster, namespace)
    assert not after["metadata"].get("finalizers")
    assert not [a for a in after["metadata"].get("annotations") or {} if "kopf" in a]
    print(f"\n[figure] Job, progress timer 60 s: Job finished -> Ready in {seconds:.1f} s")


def test_restart_mid_build_adopts_the_job(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    operator = start_operator()
    cluster.apply(
        namespace, json.dumps(buildjobs.runner_image(namespace, oci_registry.host, base_image))
    )
    (job,) = buildjobs.one_job(cluster, namespace)
    buildjobs.running_pod(cluster, namespace, job["metadata"]["name"])
    operator.restart()
    # The restarted operator looks at the build again (its resume reconcile) ...
    kube.wait_for(
        lambda: "Building" in operator.logs() or _reconciled(operator), timeout=30, what="resume"
    )
    digest = buildjobs.finish(cluster, namespace, job, pusher)
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=60)
    assert ready["status"]["latestImage"]["digest"] == digest
    # ... and never started a second one.
    assert [j["metadata"]["name"] for j in buildjobs.jobs(cluster, namespace)] == [
        job["metadata"]["name"]
    ]
    assert len(ready["status"]["builds"]) == 1


def _reconciled(operator: Any) -> bool:
    return bool(re.search(r"^ade_runner_reconciles_total\{[^}]*\} [1-9]", operator.metrics(), re.M))


def test_spec_changes_make_one_job_per_key_and_history_is_pruned(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    start_operator()
    body = buildjobs.runner_image(
        namespace, oci_registry.host, base_image, historyLimit={"succeeded": 1, "failed": 1}
    )
    for value in ("1", "2", "3"):  # three rapid changes
        body["spec"]["buildArgs"] = {"VERSION": value}
        cluster.apply(namespace, json.dumps(body))
    settled = cluster.wait_condition(namespace, NAME, "InputsResolved", status="True")
    key = settled["status"]["buildKey"]
    jobs = buildjobs.jobs(cluster, namespace)
    keys = [j["metadata"]["annotations"]["runners.ade.dev/build-key"] for j in jobs]
    assert len(keys) == len(set(keys)), "two Jobs for one build key"
    assert key in keys
    current = next(
        j for j in jobs if j["metadata"]["annotations"]["runners.ade.dev/build-key"] == key
    )
    buildjobs.finish(cluster, namespace, current, pusher)
    cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=60)

    body["spec"]["buildArgs"] = {"VERSION": "4"}
    cluster.apply(namespace, json.dumps(body))
    building = cluster.wait_condition(
        namespace, NAME, "Reconciling", status="True", reason="Building"
    )
    assert building["status"]["builds"][0]["reason"] == "SpecChanged"
    newest = kube.wait_for(
        lambda: [
            j
            for j in buildjobs.jobs(cluster, namespace)
            if j["metadata"]["annotations"]["runners.ade.dev/build-key"]
            == building["status"]["buildKey"]
        ],
        timeout=30,
        what="the Job of the new key",
    )[0]
    buildjobs.finish(cluster, namespace, newest, pusher)
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=60)
    succeeded = [b for b in ready["status"]["builds"] if b["result"] == "Succeeded"]
    assert len(succeeded) == 1  # historyLimit.succeeded
    assert ready["status"]["latestImage"]["changes"] == [
        "buildArgs: {'VERSION': '3'} -> {'VERSION': '4'}"
    ]
    finished_names = {
        j["metadata"]["name"]
        for j in buildjobs.jobs(cluster, namespace)
        if j["status"].get("succeeded")
    }
    assert finished_names == {newest["metadata"]["name"]}


def test_failed_build_reports_the_log_and_waits_for_a_trigger(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    operator = start_operator(ADE_RESYNC_INTERVAL="1s")
    cluster.apply(
        namespace, json.dumps(buildjobs.runner_image(namespace, oci_registry.host, base_image))
    )
    (job,) = buildjobs.one_job(cluster, namespace)
    pod = buildjobs.running_pod(cluster, namespace, job["metadata"]["name"])
    cluster.plane.kubectl("label", "pod", pod, "-n", namespace, f"{kwok.COMPLETE_LABEL}=fail")
    failed = cluster.wait_condition(namespace, NAME, "Stalled", status="True", timeout=60)
    ready = kube.condition(failed, "Ready")
    assert ready is not None
    assert ready["reason"] == "BuildFailed"
    assert kwok.FAILURE_MESSAGE in ready["message"]
    assert failed["status"]["builds"][0]["result"] == "Failed"
    events = kube.wait_for(
        lambda: [e for e in cluster.events(namespace, NAME) if e["reason"] == "BuildFailed"],
        timeout=15,
        what="a BuildFailed event",
    )
    assert events[0]["type"] == "Warning"

    # No retry storm: several more reconciles (1 s timer) start no new Job for the same key.
    _wait_reconciles(operator, 3)
    assert len(buildjobs.jobs(cluster, namespace)) == 1

    # A manual trigger retries the same key once, as a new Job.
    cluster.plane.kubectl(
        "annotate", "ri", NAME, "-n", namespace, "--overwrite",
        "runners.ade.dev/reconcile-requested-at=retry-1",
    )  # fmt: skip
    jobs = buildjobs.one_job(cluster, namespace, count=2)
    retry = next(j for j in jobs if j["metadata"]["name"] != job["metadata"]["name"])
    assert retry["metadata"]["name"].endswith("-r2")
    assert retry["metadata"]["annotations"]["runners.ade.dev/build-reason"] == "Manual"
    buildjobs.finish(cluster, namespace, retry, pusher)
    ready_obj = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=60)
    assert ready_obj["status"]["latestImage"]["reason"] == "Manual"
    assert kube.condition(ready_obj, "Stalled") is None


def _wait_reconciles(operator: operator_.OperatorProcess, count: int) -> None:
    """Wait until the operator has reconciled `count` more times (its own metric says so)."""
    before = _reconcile_count(operator.metrics())
    kube.wait_for(
        lambda: _reconcile_count(operator.metrics()) >= before + count,
        timeout=30,
        what=f"{count} reconciles",
    )


def _reconcile_count(metrics: str) -> float:
    return sum(
        float(v) for v in re.findall(r"^ade_runner_reconciles_total\{[^}]*\} (\S+)$", metrics, re.M)
    )


def test_pending_pod_fails_the_build_with_the_scheduler_reason(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    start_operator(ADE_BUILD_PENDING_TIMEOUT="3s")
    body = buildjobs.runner_image(namespace, oci_registry.host, base_image)
    body["spec"]["build"]["resources"] = {"requests": {"cpu": "500"}}
    cluster.apply(namespace, json.dumps(body))
    failed = cluster.wait_condition(namespace, NAME, "Stalled", status="True", timeout=60)
    message = kube.condition(failed, "Ready")["message"]  # type: ignore[index]
    assert "stayed Pending for more than 3s" in message
    assert "Insufficient cpu" in message
    kube.wait_for(
        lambda: not buildjobs.jobs(cluster, namespace), timeout=30, what="the stuck Job deleted"
    )


def test_builds_over_the_operator_limit_wait_queued(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    start_operator(ADE_MAX_CONCURRENT_BUILDS="1")
    first = buildjobs.runner_image(namespace, oci_registry.host, base_image)
    cluster.apply(namespace, json.dumps(first))
    (job,) = buildjobs.one_job(cluster, namespace)
    second = buildjobs.runner_image(namespace, oci_registry.host, base_image)
    second["metadata"]["name"] = "queued-runner"
    second["spec"]["image"]["repository"] = f"{namespace}/queued"
    cluster.apply(namespace, json.dumps(second))
    queued = cluster.wait_condition(
        namespace, "queued-runner", "Reconciling", status="True", reason="BuildQueued"
    )
    message = kube.condition(queued, "Reconciling")["message"]  # type: ignore[index]
    assert "waiting for a build slot (1 builds run at once)" in message
    assert len(buildjobs.jobs(cluster, namespace, "")) == 1
    buildjobs.finish(cluster, namespace, job, pusher)
    cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=60)
    # The slot is free: the queued build starts.
    cluster.wait_condition(
        namespace, "queued-runner", "Reconciling", status="True", reason="Building", timeout=60
    )


RACED_PUSH = (
    "#14 ERROR: error writing layer blob: context canceled\n"
    "error: failed to solve: failed to push: unknown: "
    "provided digest did not match uploaded content"
)


def _fail(cluster: kube.Cluster, namespace: str, job: dict[str, Any], message: str) -> None:
    """Let the build pod of `job` fail, its termination message saying `message`."""
    pod = buildjobs.running_pod(cluster, namespace, job["metadata"]["name"])
    cluster.plane.kubectl(
        "annotate", "pod", pod, "-n", namespace, f"{kwok.FAILURE_ANNOTATION}={message}"
    )
    cluster.plane.kubectl("label", "pod", pod, "-n", namespace, f"{kwok.COMPLETE_LABEL}=fail")


def _job_named(cluster: kube.Cluster, namespace: str, suffix: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = [
            j for j in buildjobs.jobs(cluster, namespace) if j["metadata"]["name"].endswith(suffix)
        ]
        return found[0] if found else None

    return kube.wait_for(probe, timeout=30, what=f"a build Job named *{suffix}")


def test_a_failed_push_is_retried_by_itself_as_a_new_job(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    start_operator(ADE_BUILD_RETRY_DELAY="2s")
    cluster.apply(
        namespace, json.dumps(buildjobs.runner_image(namespace, oci_registry.host, base_image))
    )
    (job,) = buildjobs.one_job(cluster, namespace)
    _fail(cluster, namespace, job, RACED_PUSH)

    # In progress, not stalled, while the retry is coming: kstatus and `kubectl wait` keep waiting.
    retrying = cluster.wait_condition(
        namespace, NAME, "Reconciling", status="True", reason="BuildRetrying", timeout=60
    )
    assert kube.condition(retrying, "Stalled") is None
    ready = kube.condition(retrying, "Ready")
    assert ready is not None
    assert ready["reason"] == "BuildRetrying"
    assert "retry 1 of 2" in ready["message"]
    assert "provided digest did not match" in ready["message"]

    retry = _job_named(cluster, namespace, "-r2")
    assert retry["metadata"]["annotations"]["runners.ade.dev/build-reason"] == "Initial"
    buildjobs.finish(cluster, namespace, retry, pusher)
    done = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=60)
    assert done["status"]["latestImage"]["reason"] == "Initial"
    (record,) = done["status"]["builds"]
    assert (record["attempt"], record["retries"], record["result"]) == (2, 1, "Succeeded")


def test_automatic_retries_are_bounded_then_the_build_stalls(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    base_image: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    operator = start_operator(
        ADE_BUILD_RETRY_DELAY="1s", ADE_BUILD_RETRIES="1", ADE_RESYNC_INTERVAL="1s"
    )
    cluster.apply(
        namespace, json.dumps(buildjobs.runner_image(namespace, oci_registry.host, base_image))
    )
    (job,) = buildjobs.one_job(cluster, namespace)
    _fail(cluster, namespace, job, RACED_PUSH)
    _fail(cluster, namespace, _job_named(cluster, namespace, "-r2"), RACED_PUSH)
    stalled = cluster.wait_condition(namespace, NAME, "Stalled", status="True", timeout=60)
    ready = kube.condition(stalled, "Ready")
    assert ready is not None
    assert ready["reason"] == "BuildFailed"
    assert "(after 2 attempts)" in ready["message"]

    # Spent: several more reconciles start no third Job.
    _wait_reconciles(operator, 3)
    names = [j["metadata"]["name"] for j in buildjobs.jobs(cluster, namespace)]
    assert not [n for n in names if n.endswith("-r3")], names
