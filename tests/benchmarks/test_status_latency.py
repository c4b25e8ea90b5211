"""Apply-to-first-status latency of the operator, against the API server's own create latency.

Creates RunnerImages one after another, times each create call (the API server's latency as a
client sees it) and the moment a watch first shows `status.observedGeneration` (the operator's
first status update). Prints both medians and their ratio.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import pytest
from kubernetes import client, config, watch

from tests.conftest import StartOperator
from tests.e2e import samples
from tests.env import controlplane

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

COUNT = 50
MAX_MEDIAN_SECONDS = 5.0


def _body(name: str) -> dict[str, Any]:
    return samples.offline(name)


def test_apply_to_first_status_latency(
    control_plane: controlplane.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    start_operator()
    api = client.CustomObjectsApi(config.new_client_from_config(str(control_plane.kubeconfig)))
    seen: dict[str, float] = {}
    ready = threading.Event()
    stream = watch.Watch()

    def observe() -> None:
        for event in stream.stream(
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
            if name not in seen and (obj.get("status") or {}).get("observedGeneration"):
                seen[name] = time.monotonic()
                if len(seen) == COUNT:
                    ready.set()
                    return

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    created: dict[str, float] = {}
    create_latency: list[float] = []
    for index in range(COUNT):
        name = f"latency-{index:03d}"
        start = time.monotonic()
        api.create_namespaced_custom_object(
            "runners.ade.dev", "v1alpha1", namespace, "runnerimages", _body(name)
        )
        create_latency.append(time.monotonic() - start)
        created[name] = start
    assert ready.wait(timeout=120), f"only {len(seen)} of {COUNT} objects got a status"
    stream.stop()
    status_latency = [seen[name] - created[name] for name in created]
    median_status = statistics.median(status_latency)
    median_create = statistics.median(create_latency)
    with capsys.disabled():
        print(
            f"\n[benchmark] apply-to-first-status over {COUNT} RunnerImages: "
            f"median {median_status * 1000:.1f} ms, p95 "
            f"{statistics.quantiles(status_latency, n=20)[18] * 1000:.1f} ms; "
            f"API server create median {median_create * 1000:.1f} ms; "
            f"ratio {median_status / median_create:.1f}x"
        )
    assert median_status < MAX_MEDIAN_SECONDS
