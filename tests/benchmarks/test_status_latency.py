"""Apply-to-first-status latency of the operator, against the API server's own create latency.

Creates RunnerImages one after another, then a burst of them at once, times each create call (the
API server's latency as a client sees it) and the moment a watch first shows
`status.observedGeneration` (the operator's first status update). Prints both medians and their
ratio. In a burst the first status must not wait for the reconciles queued ahead (the operator
says Reconciling before it takes a reconcile slot).
"""

from __future__ import annotations

import concurrent.futures
import statistics
import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch

from tests.conftest import StartOperator
from tests.e2e import samples
from tests.env import controlplane, kube

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

COUNT = 50
MAX_MEDIAN_SECONDS = 5.0
GOAL_BURST_RATIO = 5.0
"""Issue 16's goal for a burst: the first-status median at most this many times a create's.
Printed beside the figure; the assertion only catches a regression (as the sequential one)."""


def _body(name: str) -> dict[str, Any]:
    return samples.offline(name)


class FirstStatus:
    """Watches a namespace and notes when each RunnerImage first shows a status."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str, count: int) -> None:
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self._stream = watch.Watch()
        self._thread = threading.Thread(
            target=self._observe, args=(api, namespace, count), daemon=True
        )
        self._thread.start()

    def _observe(self, api: client.CustomObjectsApi, namespace: str, count: int) -> None:
        for event in self._stream.stream(
            api.list_namespaced_custom_object,
            "runners.ade.dev",
            "v1alpha1",
            namespace,
            "runnerimages",
            timeout_seconds=120,
            _request_timeout=130,
        ):
            obj = event["object"]
            name = obj["metadata"]["name"]
            if name not in self.seen and (obj.get("status") or {}).get("observedGeneration"):
                self.seen[name] = time.monotonic()
                if len(self.seen) == count:
                    self.ready.set()
                    return

    def wait(self, count: int) -> None:
        assert self.ready.wait(timeout=120), f"only {len(self.seen)} of {count} got a status"
        self._stream.stop()


class Creates:
    """Creates RunnerImages, noting when each create began and how long the API server took."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str) -> None:
        self._api = api
        self._namespace = namespace
        self.started: dict[str, float] = {}
        self.latency: list[float] = []

    def create(self, name: str) -> None:
        start = time.monotonic()
        self._api.create_namespaced_custom_object(
            "runners.ade.dev", "v1alpha1", self._namespace, "runnerimages", _body(name)
        )
        self.latency.append(time.monotonic() - start)
        self.started[name] = start


def test_a_burst_gets_its_first_status_without_queueing(
    control_plane: controlplane.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start_operator()
    api = kube.custom_objects(control_plane)
    first = FirstStatus(api, namespace, COUNT)
    creates = Creates(api, namespace)
    with concurrent.futures.ThreadPoolExecutor(max_workers=COUNT) as pool:
        list(pool.map(creates.create, [f"burst-{index:03d}" for index in range(COUNT)]))
    first.wait(COUNT)
    status_latency = [first.seen[name] - start for name, start in creates.started.items()]
    median_status = statistics.median(status_latency)
    median_create = statistics.median(creates.latency)
    ratio = median_status / median_create
    with capsys.disabled():
        print(
            f"\n[benchmark] {COUNT} RunnerImages created at once: first status median "
            f"{median_status * 1000:.1f} ms, p95 "
            f"{statistics.quantiles(status_latency, n=20)[18] * 1000:.1f} ms; "
            f"API server create median {median_create * 1000:.1f} ms (in the same burst); "
            f"ratio {ratio:.1f}x (goal {GOAL_BURST_RATIO:.0f}x)"
        )
    assert median_status < MAX_MEDIAN_SECONDS


def test_apply_to_first_status_latency(
    control_plane: controlplane.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start_operator()
    api = kube.custom_objects(control_plane)
    first = FirstStatus(api, namespace, COUNT)
    creates = Creates(api, namespace)
    for index in range(COUNT):
        creates.create(f"latency-{index:03d}")
    first.wait(COUNT)
    status_latency = [first.seen[name] - start for name, start in creates.started.items()]
    median_status = statistics.median(status_latency)
    median_create = statistics.median(creates.latency)
    with capsys.disabled():
        print(
            f"\n[benchmark] apply-to-first-status over {COUNT} RunnerImages: "
            f"median {median_status * 1000:.1f} ms, p95 "
            f"{statistics.quantiles(status_latency, n=20)[18] * 1000:.1f} ms; "
            f"API server create median {median_create * 1000:.1f} ms; "
            f"ratio {median_status / median_create:.1f}x"
        )
    assert median_status < MAX_MEDIAN_SECONDS
