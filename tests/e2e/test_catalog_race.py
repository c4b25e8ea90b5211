"""Catalog write-back at the operator level, many RunnerImages on one repository branch.

The operator runs as a process; builds are Job builds on the kwok node, finished by the test all
at once (one image push each to the real registry, then one `kubectl label` for every build pod);
the catalog is a bare repository behind `git http-backend` with Basic auth.

- The race: 20 RunnerImages, each pointing its own manifest of one repository at its image,
  while another writer wins the first `BEATEN` races for the branch. The other writer lives in
  the git server (`tests.env.contention`: a `pre-receive` hook that moves the branch with an
  unrelated commit before the operator's push can, so git rejects that push exactly as when a
  writer landed between the operator's fetch and its push): which pushes lose is decided by a
  count, not by how fast this machine runs. Every update lands exactly once, nothing of the
  other writer is lost; the same 20 on a fresh repository without the other writer, and three
  alone, give the latency figures to compare (printed, never asserted: they measure the machine;
  the competitor-rate figure is `tests/benchmarks/test_catalog_contention_figures.py`).
- Contention that outlasts a round of the writer's attempts (the competitor wins every race
  until released): meanwhile the RunnerImages say so (CatalogSynced=False,
  `CatalogPushRejected`, "stays queued") and nothing of theirs lands; released, every change
  lands exactly once, and the RunnerImages are Synced at once (the writer wakes them).
- The burst: 100 RunnerImages whose builds are all complete when the operator looks take a
  handful of commits.

How "build verified -> commit pushed" is measured. Status has two timestamps near it, the
Verified condition's `lastTransitionTime` (the start of the reconcile) and
`status.catalog.pushedAt` (when the batch's push landed), but only to the second; so both ends
are observed outside the operator, to the millisecond, on one clock (CLOCK_MONOTONIC; the hook's
wall clock converted), and the test prints how many RunnerImages show pushedAt at or after
Verified:

- verified: the arrival of the last request the operator made for the image before its commit
  landed, at a recording proxy (`registry.FaultProxy`, injecting nothing) through which the
  RunnerImages reach the registry: the last check of the Verify step (the tag's resolution, and
  whatever else Verify reads of the image), which comes after the build and before the write.
  The registry's answer to it (a few ms) is counted in.
- pushed: the moment the git server moved the branch to the commit that first holds the
  manifest's change, stamped by a `post-receive` hook of the bare repository (`date +%s.%N`).

So the interval holds the rest of that reconcile, the writer's batch window (200 ms; up to 5 s
once changes keep coming), waiting for a batch in flight, the fetch, edit, commit and push, and
the retries after a lost race.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import StartOperator
from tests.e2e import buildjobs
from tests.e2e.catalogs import (
    GIT_PASSWORD,
    GIT_USER,
    MANIFEST,
    figures,
    git_secret,
    with_catalog,
)
from tests.env import contention, gitserver, kube, kwok, oci, registry

pytestmark = pytest.mark.e2e

RACE = 20
LONE = 3
BURST = 100
BEATEN = 5
"""The operator's first pushes to the raced repository that the competitor wins."""
HELD = 2
"""RunnerImages written while the competitor wins every race, until released."""
LABEL = "runners.ade.dev/runnerimage"
SYNC_TIMEOUT = 180.0
MAX_BURST_COMMITS = 8
"""4, 6, 6, 7 measured with the default 8 reconciles at once and ADE_CATALOG_BATCH_MAX_WINDOW 5s
(one commit every 5 s once changes keep coming; 14-17 before it, a commit per push round trip,
each of about 8 changes, one per reconcile slot): the changes reach the writer over 15-25 s,
so 5 commits are not always enough."""


BUILT = buildjobs.runner_built()
"""What each build pushes, as a real build of `buildjobs.runner_image` would."""


@pytest.fixture
def git_server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        yield server


@pytest.fixture
def proxy(oci_registry: registry.Registry) -> Iterator[registry.FaultProxy]:
    """The registry as the operator sees it: through a proxy that records when requests came."""
    with registry.FaultProxy(oci_registry.host) as running:
        yield running


def _path(index: int) -> str:
    return f"Environments/env-{index:03d}/environment.yaml"


def _bare(server: gitserver.GitServer, repo: str, *args: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(server.path(repo)), *args],
        env=gitserver.git_env(server.folder),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _catalog(server: gitserver.GitServer, count: int) -> tuple[str, pathlib.Path]:
    """A new repository with `count` environment definitions, and the file its `post-receive`
    hook appends "<new sha> <ref> <wall clock>" to for every ref a push updates."""
    name = f"catalog-{uuid.uuid4().hex[:8]}"
    files = {_path(i): MANIFEST.format(name=f"env-{i:03d}") for i in range(count)}
    server.create_repo(name, {**files, "README.md": "catalog\n"})
    landed = server.folder / f"{name}.landed"
    hook = server.path(name) / "hooks" / "post-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "now=$(date +%s.%N)\n"
        f'while read -r old new ref; do echo "$new $ref $now" >> "{landed}"; done\n'
    )
    hook.chmod(0o755)
    return name, landed


def _landings(landed: pathlib.Path) -> dict[str, float]:
    """When each sha the hook saw became a branch head, on the monotonic clock."""
    offset = time.time() - time.monotonic()
    found: dict[str, float] = {}
    for line in landed.read_text().splitlines():
        sha, _, stamp = line.split()
        found.setdefault(sha, float(stamp) - offset)
    return found


def _lost_races(log: str) -> int:
    """Pushes of the operator's catalog writer that lost a race (it logs each one it retries)."""
    return sum(" rejected " in line and line.endswith(": retrying") for line in log.splitlines())


def _runner_images(
    namespace: str, names: list[str], *, host: str, base: str, url: str
) -> dict[str, Any]:
    """One `List` of RunnerImages, the i-th writing the i-th manifest of the catalog at `url`."""
    items = []
    for index, name in enumerate(names):
        body = with_catalog(buildjobs.runner_image(namespace, host, base), url, [_path(index)])
        body["metadata"]["name"] = name
        body["spec"]["image"]["repository"] = f"{namespace}/{name}"
        items.append(body)
    return {"apiVersion": "v1", "kind": "List", "items": items}


def _list(cluster: kube.Cluster, namespace: str, kind: str, names: set[str]) -> list[Any]:
    """The objects of `kind` in `namespace` that are (runnerimages) or belong to (build Jobs and
    their pods) one of the RunnerImages `names`; one `kubectl get`."""
    selector = [] if kind == "runnerimages" else ["-l", LABEL]
    out = cluster.plane.kubectl("get", kind, "-n", namespace, *selector, "-o", "json")
    items: list[Any] = json.loads(out.stdout)["items"]
    if kind == "runnerimages":
        return [i for i in items if i["metadata"]["name"] in names]
    return [i for i in items if i["metadata"].get("labels", {}).get(LABEL) in names]


def _prepare_builds(
    cluster: kube.Cluster, namespace: str, names: list[str], pusher: oci.Pusher
) -> str:
    """Wait for the build pod of every RunnerImage of `names` to run, and push each image as the
    build would; the digest (one content, so one digest for all)."""
    wanted = set(names)
    jobs = kube.wait_for(
        lambda: (found if len(found := _list(cluster, namespace, "jobs", wanted)) >= len(names)
                 else None),
        timeout=120, interval=0.5, what=f"{len(names)} build Jobs",
    )  # fmt: skip
    digests = set()
    for job in jobs:
        image = job["metadata"]["annotations"]["runners.ade.dev/image"]
        repository, _, tag = image.split("/", 1)[1].rpartition(":")
        digests.add(pusher.push_image(repository, BUILT, tag=tag).digest)
    kube.wait_for(
        lambda: sum(
            p["status"].get("phase") == "Running" for p in _list(cluster, namespace, "pods", wanted)
        ) >= len(names),
        timeout=120, interval=0.5, what=f"{len(names)} running build pods",
    )  # fmt: skip
    (digest,) = digests
    return digest


def _complete_builds(cluster: kube.Cluster, namespace: str, names: list[str], digest: str) -> None:
    """Terminate every build pod of `names` reporting `digest`: one `kubectl annotate` and one
    `kubectl label` for all of them (kwok then ends each pod as a finished build would)."""
    selector = f"{LABEL} in ({','.join(sorted(names))})"
    cluster.plane.kubectl(
        "annotate", "pods", "-n", namespace, "-l", selector, f"{kwok.DIGEST_ANNOTATION}={digest}"
    )
    cluster.plane.kubectl(
        "label", "pods", "-n", namespace, "-l", selector, f"{kwok.COMPLETE_LABEL}=true"
    )


def _wait_synced(
    cluster: kube.Cluster,
    namespace: str,
    names: list[str],
    *,
    status: str = "True",
    reason: str | None = None,
) -> list[Any]:
    """Every RunnerImage of `names` with CatalogSynced=`status` (and `reason`, when given) for
    its current generation."""

    def synced() -> list[Any] | None:
        objs = _list(cluster, namespace, "runnerimages", set(names))
        done = [
            obj
            for obj in objs
            if (found := kube.condition(obj, "CatalogSynced") or {}).get("status") == status
            and (reason is None or found.get("reason") == reason)
            and found.get("observedGeneration") == obj["metadata"]["generation"]
        ]
        return done if len(done) == len(names) else None

    what = f"{len(names)} RunnerImages CatalogSynced={status} {reason or ''}"
    return kube.wait_for(synced, timeout=SYNC_TIMEOUT, interval=0.25, what=what)


@dataclasses.dataclass(frozen=True)
class _Setup:
    cluster: kube.Cluster
    namespace: str
    server: gitserver.GitServer
    proxy: registry.FaultProxy
    base: str
    """The base image, through the proxy."""


class _Phase:
    """One run: `count` RunnerImages named `<prefix>-NNN` on a fresh repository."""

    def __init__(self, setup: _Setup, prefix: str, count: int) -> None:
        self.names = [f"{prefix}-{i:03d}" for i in range(count)]
        self.cluster, self.namespace = setup.cluster, setup.namespace
        self.server, self.proxy, self.base = setup.server, setup.proxy, setup.base
        self.repo, self.landed = _catalog(setup.server, count)
        self.objects: list[Any] = []
        self.completed = self.synced = 0.0

    def create(self) -> None:
        body = _runner_images(
            self.namespace,
            self.names,
            host=self.proxy.host,
            base=self.base,
            url=self.server.url(self.repo),
        )
        self.cluster.apply(self.namespace, json.dumps(body))

    def prepare(self, pusher: oci.Pusher) -> str:
        return _prepare_builds(self.cluster, self.namespace, self.names, pusher)

    def complete(self, digest: str) -> None:
        self.completed = time.monotonic()
        _complete_builds(self.cluster, self.namespace, self.names, digest)

    def wait_synced(self) -> None:
        objects = _wait_synced(self.cluster, self.namespace, self.names)
        self.synced = time.monotonic()
        self.objects = sorted(objects, key=lambda obj: str(obj["metadata"]["name"]))

    def finish(self, pusher: oci.Pusher) -> None:
        self.complete(self.prepare(pusher))
        self.wait_synced()

    def check(self) -> None:
        """Every manifest holds its RunnerImage's image; every revision is in the history."""
        history = {commit.sha for commit in self.server.log(self.repo)}
        for index, obj in enumerate(self.objects):
            catalog = obj["status"]["catalog"]
            assert catalog["manifests"] == [_path(index)]
            assert catalog["revision"] in history, (obj["metadata"]["name"], catalog)
            text = _bare(self.server, self.repo, "show", f"main:{_path(index)}")
            runner = re.search(r'(?m)^runner: "?([^"\s]+)"?', text)
            assert runner is not None
            assert runner.group(1) == catalog["image"]
            assert catalog["image"].startswith(f"{self.proxy.host}/{self.namespace}/")

    def latencies(self) -> list[float]:
        """Build verified -> commit pushed, one per RunnerImage (see the module docstring)."""
        return [pushed - verified for verified, pushed in self._verified_pushed()]

    def verified(self) -> list[float]:
        """When each RunnerImage's build was verified (see the module docstring), monotonic."""
        return [verified for verified, _ in self._verified_pushed()]

    def batches(self) -> list[tuple[float, int]]:
        """The operator's commits in the order they landed: (when, monotonic; how many
        manifests it changed)."""
        landings = _landings(self.landed)
        out = []
        for sha in self.revisions():
            shown = _bare(self.server, self.repo, "show", "--format=", "--name-only", sha)
            out.append((landings[sha], sum(p.startswith("Environments/") for p in shown.split())))
        return sorted(out)

    def timeline(self, since: float) -> str:
        """Verifications per second and the batches' sizes, in seconds after `since`: where
        the commits go."""
        verified = [t - since for t in self.verified()]
        start = int(min(verified))
        counts = [0] * (int(max(verified)) - start + 1)
        for t in verified:
            counts[int(t) - start] += 1
        per_second = " ".join(str(n) for n in counts)
        sizes = ", ".join(f"{t - since:.1f}s:{n}" for t, n in self.batches())
        return f"verified per second from {start} s: {per_second}; commits (landed: size): {sizes}"

    def _verified_pushed(self) -> list[tuple[float, float]]:
        landings = _landings(self.landed)
        requests = self.proxy.recorded()
        out = []
        for index, name in enumerate(self.names):
            introduced = _bare(
                self.server, self.repo, "log", "--format=%H", "main", "--", _path(index)
            )
            commit = introduced.split()[0]  # the one change of this manifest, then the initial
            assert len(introduced.split()) == 2
            assert commit in landings, f"{commit} of {name} was not the head of a push"
            pushed = landings[commit]
            mine = [r for r in requests if r.path.startswith(f"/v2/{self.namespace}/{name}/")]
            assert any(
                "/manifests/" in r.path and r.status == 200 and r.time < pushed for r in mine
            ), f"no verifying request of {name} reached the registry before its commit"
            out.append((max(r.time for r in mine if r.time < pushed), pushed))
        assert min(pushed - verified for verified, pushed in out) > 0
        return out

    def revisions(self) -> set[str]:
        """The commits the operator made: those that changed manifests, the initial one aside."""
        listed = _bare(self.server, self.repo, "log", "--format=%H", "main", "--", "Environments")
        return set(listed.split()[:-1])

    def commits(self) -> int:
        return len(self.revisions())

    def ordered_stamps(self) -> int:
        """How many RunnerImages show status.catalog.pushedAt at or after Verified's transition."""
        return sum(
            str(obj["status"]["catalog"].get("pushedAt") or "")
            >= str((kube.condition(obj, "Verified") or {}).get("lastTransitionTime") or "~")
            for obj in self.objects
        )


def _assert_competitor_kept(
    server: gitserver.GitServer, repo: str, rival: contention.Contention
) -> None:
    """No force push: every commit of the competitor stays in the branch's history."""
    history = server.log(repo)
    assert rival.commits()
    assert set(rival.commits()) <= {commit.sha for commit in history}
    assert sum(c.subject.startswith("Competitor ") for c in history) == rival.beaten()


def test_twenty_images_racing_another_writer_all_land_and_lose_nothing(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    proxy: registry.FaultProxy,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twenty RunnerImages on one branch, alone and then against a competitor that wins the
    operator's first `BEATEN` pushes: every update lands exactly once, the competitor's commits
    all stay, every RunnerImage is CatalogSynced at a revision of the branch, and status stamps
    the push after the verification. Then `HELD` RunnerImages while the competitor wins every
    race: they report `CatalogPushRejected` meanwhile, and land once it lets go. The latencies
    (build verified -> commit pushed, as the module docstring says) are printed."""
    buildjobs.push_secret(cluster, namespace, proxy.host)
    git_secret(cluster, namespace)
    operator = start_operator(ADE_MAX_CONCURRENT_BUILDS=str(2 * RACE + HELD + 1))
    base = base_image.replace(oci_registry.host, proxy.host, 1)
    setup = _Setup(cluster, namespace, git_server, proxy, base)

    lone: list[float] = []
    for index in range(LONE):
        alone = _Phase(setup, f"lone{index}", 1)
        alone.create()
        alone.finish(pusher)
        alone.check()
        lone.extend(alone.latencies())

    quiet = _Phase(setup, "quiet", RACE)
    quiet.create()
    quiet.finish(pusher)
    quiet.check()
    lost_alone = _lost_races(operator.logs())

    raced = _Phase(setup, "raced", RACE)
    rival = contention.Contention(git_server, raced.repo, beat=BEATEN)
    raced.create()
    raced.finish(pusher)
    raced.check()  # each manifest changed by exactly one commit, which landed (_verified_pushed)
    _assert_competitor_kept(git_server, raced.repo, rival)
    assert rival.beaten() == BEATEN
    lost_raced = _lost_races(operator.logs()) - lost_alone
    assert lost_raced == BEATEN  # each lost push retried in-process, none given up

    held = _Phase(setup, "held", HELD)
    holder = contention.Contention(git_server, held.repo)
    holder.hold()
    held_from = time.monotonic()
    held.create()
    held.complete(held.prepare(pusher))
    waiting = _wait_synced(cluster, namespace, held.names, status="False",
                           reason="CatalogPushRejected")  # fmt: skip
    for obj in waiting:
        assert "stays queued" in (kube.condition(obj, "CatalogSynced") or {})["message"]
    assert held.commits() == 0  # nothing of theirs landed meanwhile
    beaten_while_held, reported_after = holder.beaten(), time.monotonic() - held_from
    holder.release()
    released = time.monotonic()
    held.wait_synced()
    held.check()
    _assert_competitor_kept(git_server, held.repo, holder)

    calm_median, calm_p95 = figures(quiet.latencies())
    raced_median, raced_p95 = figures(raced.latencies())
    lone_median, _ = figures(lone)
    with capsys.disabled():
        print(
            f"\n[catalog race] {RACE} RunnerImages, one manifest each, one repository branch;"
            " build verified -> commit pushed:"
            f"\n  one at a time:       median {lone_median * 1000:.0f} ms"
            f" ({', '.join(f'{t * 1000:.0f}' for t in lone)} ms; {LONE} RunnerImages, each alone)"
            f"\n  alone:               median {calm_median * 1000:.0f} ms,"
            f" p95 {calm_p95 * 1000:.0f} ms; {quiet.commits()} commits;"
            f" build pods told to finish -> all synced {quiet.synced - quiet.completed:.1f} s;"
            f" {lost_alone} pushes lost a race"
            f"\n    {quiet.timeline(quiet.completed)}"
            f"\n  first {BEATEN} pushes lost: median {raced_median * 1000:.0f} ms,"
            f" p95 {raced_p95 * 1000:.0f} ms; {raced.commits()} commits;"
            f" build pods told to finish -> all synced {raced.synced - raced.completed:.1f} s;"
            f" {lost_raced} pushes lost a race and were retried in-process"
            f"\n    {raced.timeline(raced.completed)}"
            f"\n  every push lost until released: {HELD} RunnerImages CatalogPushRejected after"
            f" {beaten_while_held} lost pushes ({reported_after:.1f} s after they were"
            f" created), {holder.beaten()} in all; released -> all synced"
            f" {held.synced - released:.1f} s"
            f"\n  status: catalog.pushedAt >= Verified.lastTransitionTime for"
            f" {quiet.ordered_stamps() + raced.ordered_stamps()} of {2 * RACE}"
        )
    assert quiet.ordered_stamps() + raced.ordered_stamps() == 2 * RACE  # pushedAt is the push


def test_a_hundred_images_completing_together_take_a_handful_of_commits(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    proxy: registry.FaultProxy,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """100 RunnerImages on one repository whose builds are all complete when the operator looks
    land in a handful of commits: the writer batches what arrives within its window or while a
    write is in flight, and once changes keep coming, writes one batch per
    ADE_CATALOG_BATCH_MAX_WINDOW (see MAX_BURST_COMMITS). The test prints the verifications per
    second and each commit's size, to show where commits go.

    "At once" needs the operator away while the builds finish: this control plane's Job
    controller marks about six Jobs Complete a second, and the operator, which looks at each
    build every 2 s, would see them trickle in over some 17 s and write each trickle (measured:
    20-30 commits). So the operator is stopped once every build runs, the builds finish, and the
    operator started again finds 100 finished builds to verify and write, as after a restart or
    an upgrade of the operator during a wave of rebuilds. It still takes some 10 s to work
    through them, so the changes reach the writer over that time, not in one instant.

    The operator runs with the default ADE_MAX_CONCURRENT_RECONCILES (8): a reconcile lends its
    slot while its change waits for its batch's push, so 8 slots still fill large batches
    (before it kept the slot, and the default capped a batch at 8 changes: 51 commits). The
    changes still come 8 at a time, every 1-2 s (16 slots: 16 every 3-4 s, the same rate).
    """
    buildjobs.push_secret(cluster, namespace, proxy.host)
    git_secret(cluster, namespace)
    operator = start_operator(ADE_MAX_CONCURRENT_BUILDS=str(BURST + 1))
    base = base_image.replace(oci_registry.host, proxy.host, 1)
    burst = _Phase(_Setup(cluster, namespace, git_server, proxy, base), "burst", BURST)
    created = time.monotonic()
    burst.create()
    digest = burst.prepare(pusher)
    operator.stop()
    burst.complete(digest)
    kube.wait_for(
        lambda: sum(
            bool(job.get("status", {}).get("succeeded"))
            for job in _list(cluster, namespace, "jobs", set(burst.names))
        ) == BURST,
        timeout=120, interval=0.5, what=f"{BURST} build Jobs complete",
    )  # fmt: skip
    started = time.monotonic()
    operator.start()
    burst.wait_synced()
    burst.check()
    commits = burst.commits()
    latencies = burst.latencies()
    median, p95 = figures(latencies)
    landings = _landings(burst.landed)
    with capsys.disabled():
        print(
            f"\n[catalog burst] {BURST} RunnerImages on one repository, all builds complete:"
            f" {commits} commits; operator started -> all synced {burst.synced - started:.1f} s"
            f" (-> last commit landed {max(landings.values()) - started:.1f} s; created ->"
            f" all synced {burst.synced - created:.1f} s, the operator's stop included);"
            f" build verified -> commit pushed median {median * 1000:.0f} ms,"
            f" p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
            f"\n  operator started at 0 s; {burst.timeline(started)}"
        )
    assert commits <= MAX_BURST_COMMITS
