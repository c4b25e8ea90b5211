"""Webhook burst figures (issue 14): 1,000 signed GitHub push events in 10 s against 100
RunnerImages, through the operator's receiver, on the real API server.

100 suspended RunnerImages follow 10 repositories (10 each); each repository is pushed twice
(two distinct changes), and each push is delivered 50 times (as many hooks and redeliveries
would), in a shuffled order, the second pushes after the first. The deliveries go out at 100 a
second from a pool of threads. Asserted: every delivery answered 202; each RunnerImage asked to
reconcile exactly once per change (200 reconcile requests) and reconciled once per change
(200 status writes, from the audit log); every RunnerImage ends on the second push. Printed: the
answer times, the operator's CPU over the burst and its peak RSS.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime
import json
import pathlib
import random
import statistics
import time
from typing import Any

import pytest

from tests.conftest import StartOperator
from tests.e2e import samples
from tests.env import kube, webhooks

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

OBJECTS, REPOSITORIES, PUSHES, DELIVERIES = 100, 10, 2, 50
EVENTS = REPOSITORIES * PUSHES * DELIVERIES  # 1,000
RATE = 100.0  # a second: 10 s in all
SENDERS = 16
TOKEN = "burst-token-" + "7" * 20


def _peak_rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _url(repository: int) -> str:
    return f"https://github.com/contoso/runner-{repository}.git"


def test_a_thousand_events_reconcile_each_object_once_per_change(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    operator = start_operator()
    cluster.plane.kubectl(
        "create", "secret", "generic", "hook", "-n", namespace, f"--from-literal=token={TOKEN}"
    )  # fmt: skip
    receiver = {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "WebhookReceiver",
        "metadata": {"name": "github"},
        "spec": {"type": "GitHub", "secretRef": {"name": "hook"}},
    }
    cluster.apply(namespace, json.dumps(receiver))
    items = []
    for index in range(OBJECTS):
        git = {"git": {"url": _url(index % REPOSITORIES), "ref": "main"}}
        items.append(samples.offline(f"r-{index:03d}", suspend=True, source=git))
    cluster.apply(namespace, json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def settled() -> str | None:
        listed = json.loads(
            cluster.plane.kubectl("get", "ri", "-n", namespace, "-o", "json").stdout
        )
        done = [o for o in listed["items"] if (o.get("status") or {}).get("observedGeneration")]
        hook = cluster.get(namespace, "github", kind="webhookreceiver") or {}
        path = (hook.get("status") or {}).get("webhookPath")
        return path if len(done) == OBJECTS and path else None

    path = kube.wait_for(settled, timeout=120, what="the RunnerImages and the receiver settled")
    url = f"http://127.0.0.1:{operator.receiver_port}{path}"
    revisions = {
        (repository, push): f"{repository:02d}{push:02d}".ljust(40, "a")
        for repository in range(REPOSITORIES)
        for push in range(PUSHES)
    }
    rounds = []
    for push in range(PUSHES):
        deliveries = [
            webhooks.github_push(
                secret=TOKEN,
                clone_url=_url(repository),
                ref="refs/heads/main",
                after=revisions[repository, push],
            )
            for repository in range(REPOSITORIES)
            for _ in range(DELIVERIES)
        ]
        random.Random(push).shuffle(deliveries)  # noqa: S311 (an order, not a secret)
        rounds.append(deliveries)
    schedule = [delivery for deliveries in rounds for delivery in deliveries]

    since = datetime.datetime.now(datetime.UTC)
    cpu_before = operator.cpu_seconds()
    answers: list[tuple[int, float, dict[str, Any]]] = []
    started = time.monotonic()

    def send(indexed: tuple[int, webhooks.Delivery]) -> None:
        index, delivery = indexed
        time.sleep(max(0.0, started + index / RATE - time.monotonic()))
        sent = time.monotonic()
        status, body = webhooks.post(url, delivery, timeout=30)
        answers.append((status, time.monotonic() - sent, json.loads(body or b"{}")))

    # The second pushes only once the first are all answered: a host sends a later push later.
    first = len(rounds[0])
    with concurrent.futures.ThreadPoolExecutor(max_workers=SENDERS) as pool:
        list(pool.map(send, enumerate(schedule[:first])))
    with concurrent.futures.ThreadPoolExecutor(max_workers=SENDERS) as pool:
        list(pool.map(send, enumerate(schedule[first:], start=first)))
    burst = time.monotonic() - started
    cpu = operator.cpu_seconds() - cpu_before

    assert collections.Counter(status for status, _, _ in answers) == {202: EVENTS}
    assert sum(body["requested"] for _, _, body in answers) == OBJECTS * PUSHES

    def all_on_the_second_push() -> bool:
        listed = json.loads(
            cluster.plane.kubectl("get", "ri", "-n", namespace, "-o", "json").stdout
        )
        handled = {
            o["metadata"]["name"]: (o.get("status") or {}).get("lastHandledReconcileAt")
            for o in listed["items"]
        }
        wanted = {
            f"r-{index:03d}": f"webhook source {revisions[index % REPOSITORIES, PUSHES - 1]}"
            for index in range(OBJECTS)
        }
        return handled == wanted

    kube.wait_for(all_on_the_second_push, timeout=120, what="every RunnerImage on the last push")
    settled_after = time.monotonic() - started
    writes = collections.Counter(
        (event["objectRef"].get("subresource") or "object", event["objectRef"]["name"])
        for event in cluster.writes_by(kube.OPERATOR_USER, since=since)
        if event["objectRef"].get("resource") == "runnerimages"
    )
    per_object = collections.Counter((kind, count) for (kind, _), count in writes.items())
    # per object and change: the receiver's annotation and kopf's record of the handled
    # configuration (its digest changes with the annotation), then one status write
    assert per_object == {("object", 2 * PUSHES): OBJECTS, ("status", PUSHES): OBJECTS}
    times = sorted(seconds for _, seconds, _ in answers)
    print(
        f"\n[figure] {EVENTS} GitHub push events in {burst:.1f} s against {OBJECTS} RunnerImages "
        f"({REPOSITORIES} repositories x {PUSHES} pushes x {DELIVERIES} deliveries): "
        f"{OBJECTS * PUSHES} reconcile requests, each RunnerImage reconciled once per change "
        f"({PUSHES} requests and {PUSHES} status writes each); all settled "
        f"{settled_after:.1f} s after the first event; answer median "
        f"{statistics.median(times) * 1000:.0f} ms, p99 {times[int(len(times) * 0.99)] * 1000:.0f} "
        f"ms; operator CPU {cpu:.1f} s over the burst ({cpu / burst * 100:.0f}% of a core), "
        f"peak RSS {_peak_rss_mib(operator.pid):.0f} MiB"
    )
