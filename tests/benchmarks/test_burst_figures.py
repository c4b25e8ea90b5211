"""Burst figures (issue 16): 1,000 RunnerImages created at once, on the real API server.

The RunnerImages are suspended: each one goes the whole way through the operator (kopf's
finalizer and last-handled configuration, validation, the status write saying Suspended, the
metrics) with no registry, git or Azure behind it, so the figures are the operator's own. Creates
run from a pool of threads, as a burst of `kubectl apply` from many clients would; a watch notes
when each object shows its settled status (Ready=False, Suspended, for its generation).

Prints, each beside its goal:
- settled: every object `SETTLE_GOAL` s after the last create returned at most;
- operator RSS with 1,000 objects `RSS_GOAL` MiB at most (read from /proc, once settled and again
  after the quiet period, the larger counts);
- the operator's writes in the burst by kind, and none in the `QUIET` s after (asserted).

`ADE_BENCH_LONG=1` adds the 5,000 figure (printed; five times the settle bound; about 8 minutes
on a loaded 2-core machine).
`ADE_BENCH_MEMTRACE=<folder>` runs the operator under `tests.env.memtrace` instead and prints
where the memory per object goes (tracemalloc by line and file, live objects by type, asyncio
tasks); the RSS figures are then inflated by tracing and not asserted.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import os
import pathlib
import signal
import threading
import time
from collections import Counter
from typing import Any, cast

import pytest
from kubernetes import client, config, watch

from controller import apisession
from controller import kube as kube_
from controller.api import identity
from tests.conftest import StartOperator
from tests.e2e import samples
from tests.env import controlplane, kube, memtrace

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

SETTLE_GOAL = 30.0
RSS_GOAL = 200.0
SETTLE_BOUND = 120.0
RSS_BOUND = 250.0
"""What is asserted: about 190 MiB at 1,000 (about 30 KiB per object live, the rest the burst's
transient memory that stays resident), with room for a loaded 2-core machine; the settle goal
is not asserted on a loaded machine. The bounds catch a regression; the goals are printed beside
the figures. Before the API server session was bounded (`controller.apisession`) the RSS followed
the burst's pace, 250-640 MiB, with up to 729 connections open at once."""
SOCKETS_BOUND = apisession.REQUESTS_IN_FLIGHT + kube_.CALLS_AT_ONCE + 16
"""The operator's sockets at once during the burst: kopf's bounded requests, the operator's own
client's pool (its status writes), the watches, the metrics and health endpoints, and room for
connections being closed."""
QUIET = 30.0
CREATORS = 16
LONG = os.environ.get("ADE_BENCH_LONG") == "1"
MEMTRACE = os.environ.get("ADE_BENCH_MEMTRACE", "")
LAST_HANDLED = f"{identity.KOPF_STATE_PREFIX}/last-handled-configuration"


def _proc_mib(pid: int, field: str) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def _sockets(pid: int) -> int:
    """The sockets `pid` has open now (0 once it has ended)."""
    count = 0
    try:
        for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):  # closed while listed
                count += os.readlink(fd).startswith("socket:")
    except FileNotFoundError:
        return 0
    return count


class MostSockets:
    """Samples a process's open sockets every 50 ms until stopped; `most` is the largest count."""

    def __init__(self, pid: int) -> None:
        self.most = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(pid,), daemon=True)
        self._thread.start()

    def _sample(self, pid: int) -> None:
        while not self._stopped.wait(0.05):
            self.most = max(self.most, _sockets(pid))

    def stop(self) -> int:
        self._stopped.set()
        self._thread.join()
        return self.most


def _settled(obj: dict[str, Any]) -> bool:
    """Suspended as reported for its generation, and kopf done with it (its finalizer and the
    last-handled configuration written)."""
    meta = obj["metadata"]
    generation = meta.get("generation")
    if (obj.get("status") or {}).get("observedGeneration") != generation:
        return False
    if identity.FINALIZER not in (meta.get("finalizers") or []):
        return False
    if LAST_HANDLED not in (meta.get("annotations") or {}):
        return False
    ready = kube.condition(obj, "Ready") or {}
    return ready.get("reason") == "Suspended" and ready.get("observedGeneration") == generation


class Settled:
    """Watches a namespace and notes when each RunnerImage first shows its settled status.

    The API server closes a watch whose reader falls behind (a burst is many events): the watch
    is then made again from a fresh list, and an object first seen settled in that list counts
    from then (later than it settled, never earlier)."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str, count: int) -> None:
        self.at: dict[str, float] = {}
        self.count = count
        self.rewatches = 0
        self.errors: list[str] = []
        self.done = threading.Event()
        self._stopped = threading.Event()
        self._stream: watch.Watch | None = None
        self._thread = threading.Thread(target=self._observe, args=(api, namespace), daemon=True)
        self._thread.start()

    def _note(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name not in self.at and _settled(obj):
            self.at[name] = time.monotonic()
            if len(self.at) == self.count:
                self.done.set()

    def _observe(self, api: client.CustomObjectsApi, namespace: str) -> None:
        args = ("runners.ade.dev", "v1alpha1", namespace, "runnerimages")
        while not self.done.is_set() and not self._stopped.is_set():
            try:
                listed = cast(dict[str, Any], api.list_namespaced_custom_object(*args))
                for obj in listed["items"]:
                    self._note(obj)
                self._stream = watch.Watch()
                for event in self._stream.stream(
                    api.list_namespaced_custom_object,
                    *args,
                    resource_version=listed["metadata"]["resourceVersion"],
                    timeout_seconds=60,
                    _request_timeout=90,
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._note(event["object"])
                    if self.done.is_set():
                        return
            except Exception as error:  # a closed or expired watch: list again
                self.errors.append(f"{type(error).__name__}: {error}"[:200])
            self.rewatches += 1

    def wait(self, api: client.CustomObjectsApi, namespace: str, timeout: float) -> None:
        if not self.done.wait(timeout):
            found = cast(
                dict[str, Any],
                api.list_namespaced_custom_object(
                    "runners.ade.dev", "v1alpha1", namespace, "runnerimages"
                ),
            )
            listed = found["items"]
            late = [o for o in listed if not _settled(o)]
            shown = {k: late[0][k] for k in ("metadata", "status") if late and k in late[0]}
            raise AssertionError(
                f"{len(self.at)} of {self.count} seen settled ({len(late)} not settled when "
                f"listed; the first: {shown})"
            )
        self._stopped.set()
        if self._stream is not None:
            self._stream.stop()


def _creates(api: client.CustomObjectsApi, namespace: str, count: int) -> tuple[float, float]:
    """Create `count` suspended RunnerImages from `CREATORS` threads; (first started, last done)."""
    ended: list[float] = []

    def create(index: int) -> None:
        body = samples.offline(f"burst-{index:05d}", suspend=True)
        api.create_namespaced_custom_object(
            "runners.ade.dev", "v1alpha1", namespace, "runnerimages", body
        )
        ended.append(time.monotonic())

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=CREATORS) as pool:
        list(pool.map(create, range(count)))
    return started, max(ended)


def _api(plane: controlplane.ControlPlane) -> client.CustomObjectsApi:
    configuration = client.Configuration()
    config.load_kube_config(str(plane.kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = CREATORS + 2
    return client.CustomObjectsApi(client.ApiClient(configuration))


def _writes(cluster: kube.Cluster, since: datetime.datetime) -> Counter[str]:
    found = cluster.writes_by(kube.OPERATOR_USER, since=since)
    return Counter(
        f"{e['verb']} {e['objectRef'].get('resource')}"
        + (f"/{e['objectRef']['subresource']}" if e["objectRef"].get("subresource") else "")
        for e in found
    )


def _memtrace_dump(pid: int, folder: pathlib.Path, index: int) -> None:
    os.kill(pid, signal.SIGUSR2)
    kube.wait_for((folder / f"done-{index}").exists, timeout=120, what=f"memtrace dump {index}")


def _print_breakdown(folder: pathlib.Path, count: int) -> None:
    grown = memtrace.compare(folder, 0, 1)
    print(f"\n[memtrace] traced growth {grown['traced'][0][1] / count / 1024:.1f} KiB per object")
    for key in ("filename", "lineno"):
        print(f"[memtrace] by {key} (bytes per object, allocations per object):")
        for where, size, allocations in grown[key]:
            print(f"  {size / count:9.0f} B {allocations / count:7.1f}  {where}")
    for key in ("types", "tasks"):
        print(f"[memtrace] live {key} grown (per object):")
        for name, diff, _ in grown[key]:
            print(f"  {diff / count:7.2f}  {name}")


def _burst(
    *,
    count: int,
    plane: controlplane.ControlPlane,
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
) -> dict[str, float]:
    env = {"ADE_MAX_CONCURRENT_RECONCILES": "16"}
    folder = tmp_path / "memtrace" if not MEMTRACE else pathlib.Path(MEMTRACE) / str(count)
    if MEMTRACE:
        operator = start_operator(
            module="tests.env.memtrace", timeout=300, ADE_MEMTRACE_DIR=str(folder), **env
        )
    else:
        operator = start_operator(**env)
    pid = operator.pid
    kube.wait_for(lambda: operator.metrics() or None, timeout=10, what="the first scrape")
    idle = _proc_mib(pid, "VmRSS")
    if MEMTRACE:
        _memtrace_dump(pid, folder, 0)
    api = _api(plane)
    settled = Settled(api, namespace, count)
    since = datetime.datetime.now(datetime.UTC)
    sockets = MostSockets(pid)
    first_create, last_create = _creates(api, namespace, count)
    settled.wait(api, namespace, timeout=max(300.0, count * 0.2))
    most_sockets = sockets.stop()
    settle = max(settled.at.values()) - last_create
    at_settle = _proc_mib(pid, "VmRSS")
    # The Event each one gets (Suspended) is posted in the background: the quiet period starts
    # once they are all there.
    events = client.CoreV1Api(api.api_client)

    def all_posted() -> bool:
        listed = events.list_namespaced_event(namespace, field_selector="reason=Suspended")
        return len(listed.items) >= count

    kube.wait_for(all_posted, timeout=120, interval=1.0, what=f"{count} Suspended Events")
    posted = time.monotonic() - last_create
    quiet_from = datetime.datetime.now(datetime.UTC)
    time.sleep(QUIET)  # the quiet period itself is the measurement: nothing may be written in it
    after_quiet = _proc_mib(pid, "VmRSS")
    peak = _proc_mib(pid, "VmHWM")
    quiet_writes = _writes(cluster, quiet_from)
    burst_writes = _writes(cluster, since) - quiet_writes
    if MEMTRACE:
        _memtrace_dump(pid, folder, 1)
    loaded = max(at_settle, after_quiet)
    with capsys.disabled():
        print(
            f"\n[benchmark] {count} RunnerImages created at once ({CREATORS} clients, "
            f"{last_create - first_create:.1f} s of creates): all settled {settle:.1f} s after "
            f"the last create (goal {SETTLE_GOAL:.0f} s; test watch made again "
            f"{settled.rewatches} times), Events posted by {posted:.1f} s; operator RSS idle "
            f"{idle:.0f} MiB, "
            f"settled {at_settle:.0f} MiB, {QUIET:.0f} s later {after_quiet:.0f} MiB, peak "
            f"{peak:.0f} MiB (+{(loaded - idle) * 1024 / count:.0f} KiB per object; goal "
            f"{RSS_GOAL:.0f} MiB at 1,000), at most {most_sockets} sockets open at once; "
            f"operator writes in the burst "
            f"{sum(burst_writes.values())} ({dict(burst_writes)}), in the {QUIET:.0f} s after "
            f"{sum(quiet_writes.values())}"
            + (" [memtrace: RSS inflated by tracing]" if MEMTRACE else "")
        )
        if MEMTRACE:
            _print_breakdown(folder, count)
    assert not quiet_writes, f"writes after the burst settled: {dict(quiet_writes)}"
    assert most_sockets <= SOCKETS_BOUND, f"{most_sockets} sockets open at once: unbounded requests"
    return {"settle": settle, "rss": loaded, "idle": idle}


@pytest.mark.timeout(600)
def test_a_burst_of_1000_settles_quickly_in_little_memory(
    control_plane: controlplane.ControlPlane,
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
) -> None:
    figures = _burst(
        count=int(os.environ.get("ADE_BENCH_COUNT", "1000")),
        plane=control_plane,
        cluster=cluster,
        namespace=namespace,
        start_operator=start_operator,
        capsys=capsys,
        tmp_path=tmp_path,
    )
    assert figures["settle"] <= SETTLE_BOUND
    if not MEMTRACE:
        assert figures["rss"] <= RSS_BOUND


@pytest.mark.skipif(not LONG, reason="the 5,000 figure: ADE_BENCH_LONG=1 (about 8 minutes)")
@pytest.mark.timeout(1800)
def test_a_burst_of_5000(
    control_plane: controlplane.ControlPlane,
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
) -> None:
    figures = _burst(
        count=5000,
        plane=control_plane,
        cluster=cluster,
        namespace=namespace,
        start_operator=start_operator,
        capsys=capsys,
        tmp_path=tmp_path,
    )
    assert figures["settle"] <= 5 * SETTLE_BOUND
