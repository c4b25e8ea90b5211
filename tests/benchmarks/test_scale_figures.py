"""Scale figures: the operator's memory idle and with 500 RunnerImages, and the size of a
`/metrics` scrape with them, on the real API server.

The RunnerImages are the settled offline sample (inputs resolved, then a stall on the absent
Azure credentials Secret): every one goes through validation, the inline source written to the
work folder, a Secret read and a status write, with no registry, git or Azure behind them. RSS is
read from /proc for the operator process. Prints the figures; the bounds only catch a regression
by an order of magnitude.
"""

from __future__ import annotations

import json
import pathlib
import time

import pytest

from tests.conftest import StartOperator
from tests.e2e import samples
from tests.env import kube

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

COUNT = 500


def _rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_and_metrics_size_with_500_runner_images(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    operator = start_operator(ADE_MAX_CONCURRENT_RECONCILES="16")
    pid = operator.pid
    kube.wait_for(lambda: operator.metrics() or None, timeout=10, what="the first scrape")
    idle = _rss_mib(pid)
    idle_scrape = len(operator.metrics().encode())
    items = [samples.offline(f"runner-{index:03d}") for index in range(COUNT)]
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    started = time.monotonic()
    cluster.apply(namespace, manifest)

    def settled() -> bool | None:
        listed = cluster.plane.kubectl("get", "ri", "-n", namespace, "-o", "json").stdout
        objects = json.loads(listed)["items"]
        done = [
            o
            for o in objects
            if (kube.condition(o, "Stalled") or {}).get("observedGeneration")
            == o["metadata"]["generation"]
        ]
        return len(done) == COUNT or None

    kube.wait_for(settled, timeout=600, interval=2.0, what=f"{COUNT} RunnerImages settled")
    took = time.monotonic() - started
    loaded = _rss_mib(pid)
    scrape = operator.metrics()
    size = len(scrape.encode())
    assert f'name="runner-{COUNT - 1:03d}"' in scrape
    with capsys.disabled():
        print(
            f"\n[benchmark] operator RSS idle {idle:.0f} MiB, with {COUNT} RunnerImages "
            f"{loaded:.0f} MiB (+{(loaded - idle) * 1024 / COUNT:.0f} KiB each); all {COUNT} "
            f"reconciled to a settled status in {took:.1f} s; /metrics scrape "
            f"{idle_scrape / 1024:.1f} KiB idle, {size / 1024:.1f} KiB with {COUNT} "
            f"({(size - idle_scrape) / COUNT:.0f} B per RunnerImage)"
        )
    assert loaded < 1024
    assert size < 2 * 1024 * 1024
