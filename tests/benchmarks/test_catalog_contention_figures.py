"""The catalog writer against another writer pushing ever faster: the contention figure.

The timing-sensitive counterpart of `tests/e2e/test_catalog_contention.py`, printed rather than
asserted: another writer (a thread writing the bare repository directly, as a server-side bot
would: an unrelated file committed on the branch head and the branch moved with
`update-ref <new> <old>`) moves the branch `rate` times a second (each interval jittered by
+-25%), while the writer lands `CHANGES` changes one after the other, each waited for through
any number of lost rounds. The rate goes up until a change takes longer than `DEADLINE` to land.

Printed: the highest rate at which every change still landed within `DEADLINE`, each rate's
worst latency and lost pushes, and the writer's round trip after a lost race, from the start of
the fetch that read the branch to the end of the push (the window another writer must not push
in), split into the fetch, the writer's own work between them (the replay), and the push.
"""

from __future__ import annotations

import asyncio
import pathlib
import random
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from controller.catalog import repository
from controller.catalog.repository import CatalogWriter, Change, CloneCache, GitOperation
from controller.git.credentials import Credentials
from tests.env import gitserver

pytestmark = pytest.mark.benchmark

PASSWORD = "b3nch-pässw0rd"
ALICE = Credentials(username="alice", password=PASSWORD, secret="catalog-creds")
RATES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)
CHANGES = 3
DEADLINE = 10.0
BUDGET = 60.0
"""Seconds: no higher rate is tried once the run has taken this long (CI time stays bounded)."""


class Rival(threading.Thread):
    """Moves `refs/heads/main` of a bare repository about `rate` times a second."""

    def __init__(self, bare: pathlib.Path, env: dict[str, str], rate: float) -> None:
        super().__init__(name=f"rival at {rate}/s", daemon=True)
        self.bare, self.rate = bare, rate
        self.env = {**env, "GIT_INDEX_FILE": str(bare / f"rival-{uuid.uuid4().hex}.index")}
        self.stop = threading.Event()
        self.moved = 0
        self.error: BaseException | None = None

    def git(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(self.bare), *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

    def run(self) -> None:
        try:
            next_at = time.monotonic()
            while not self.stop.is_set():
                next_at += random.uniform(0.75, 1.25) / self.rate  # noqa: S311 - pacing
                if self.stop.wait(max(0.0, next_at - time.monotonic())):
                    break
                head = self.git("rev-parse", "refs/heads/main")
                blob = self.git("hash-object", "-w", "--stdin", stdin=f"{self.moved}\n")
                self.git("read-tree", head)
                self.git(
                    "update-index", "--add", "--cacheinfo", f"100644,{blob},rival/{self.moved}.txt"
                )
                tree = self.git("write-tree")
                commit = self.git("commit-tree", tree, "-p", head, "-m", f"Rival {self.moved}")
                try:
                    self.git("update-ref", "refs/heads/main", commit, head)
                except subprocess.CalledProcessError:
                    continue  # the writer moved it meanwhile: next time
                self.moved += 1
        except BaseException as error:
            self.error = error

    def __enter__(self) -> Rival:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(30)
        assert self.error is None, self.error


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {"alice": PASSWORD}) as running:
        yield running


def _path(index: int) -> str:
    return f"Environments/env-{index:03d}/environment.yaml"


def _change(server: gitserver.GitServer, repo: str, index: int, image: str) -> Change:
    path = _path(index)

    def apply(worktree: pathlib.Path) -> list[str]:
        target = worktree / path
        target.write_text(target.read_text().replace("runner: core:latest", f"runner: {image}"))
        return [path]

    return Change(
        url=server.url(repo),
        branch="main",
        credentials=ALICE,
        message=f"Use {image}",
        author_name="ADE Operator",
        author_email="ade@example.test",
        apply=apply,
        depends_on=lambda other: other == path,
    )


async def _land(writer: CatalogWriter, change: Change, deadline: float) -> float | None:
    """Seconds until `change` landed, waited for through lost rounds; None past `deadline`
    (then it is withdrawn)."""
    started = time.monotonic()
    ticket = writer.enqueue(change)
    while True:
        try:
            await asyncio.wait_for(ticket.wait(), deadline - (time.monotonic() - started))
        except repository.CatalogPushRejected:
            continue
        except TimeoutError:
            ticket.withdraw()
            return None
        return time.monotonic() - started


def _round_trips(
    events: list[tuple[float, GitOperation]],
) -> tuple[list[float], list[float]]:
    """For each push after a lost race: (from the start of the fetch before it to its end; from
    the end of that fetch to its start, the writer's own part of the window)."""
    trips, gaps = [], []
    fetched: tuple[float, float] | None = None  # (started, ended)
    for at, event in events:
        if event.operation == "fetch":
            fetched = (at - event.seconds, at)
        elif event.operation == "push" and fetched is not None and event.attempt > 1:
            trips.append(at - fetched[0])
            gaps.append(at - event.seconds - fetched[1])
    return trips, gaps


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return f"median {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


async def test_the_highest_competitor_push_rate_at_which_every_change_lands_within_10_s(
    server: gitserver.GitServer, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"catalog-{uuid.uuid4().hex[:8]}"
    count = len(RATES) * CHANGES
    files = {_path(i): f"name: env-{i}\nrunner: core:latest\n" for i in range(count)}
    server.create_repo(repo, {**files, "README.md": "catalog\n"})
    events: list[tuple[float, GitOperation]] = []
    writer = CatalogWriter(
        cache=CloneCache(tmp_path / "cache"),
        window=0.0,
        metrics=lambda event: events.append((time.monotonic(), event)),
    )
    env = gitserver.git_env(server.folder)
    rows, highest, index = [], 0.0, 0
    try:
        await writer.submit(_change(server, repo, count - 1, "warm:up"))  # the clone exists
        began = time.monotonic()
        for rate in RATES:
            if time.monotonic() - began > BUDGET:
                rows.append(f"  (stopped: the run took more than {BUDGET:.0f} s)")
                break
            events.clear()
            with Rival(server.path(repo), env, rate) as rival:
                latencies = []
                for _ in range(CHANGES):
                    latency = await _land(
                        writer, _change(server, repo, index, f"r:{index}"), DEADLINE
                    )
                    index += 1
                    latencies.append(latency)
                    if latency is None:
                        break
            lost = sum(e.operation == "push" and e.outcome == "rejected" for _, e in events)
            retried, gaps = _round_trips(events)
            fetches = [e.seconds for _, e in events if e.operation == "fetch"]
            pushes = [e.seconds for _, e in events if e.operation == "push"]
            landed = [t for t in latencies if t is not None]
            worst = f"{max(landed):.1f} s" if landed else "-"
            rows.append(
                f"  {rate:4.0f}/s: {len(landed)}/{CHANGES} landed within {DEADLINE:.0f} s"
                f" (worst {worst}), {lost} pushes lost, round trip after a lost race"
                f" {_ms(retried)} (its fetch {_ms(fetches)}, then the replay {_ms(gaps)},"
                f" its push {_ms(pushes)});"
                f" the rival moved the branch {rival.moved} times"
            )
            if len(landed) < CHANGES:
                break
            highest = rate
    finally:
        await writer.aclose()
    history = {commit.subject for commit in server.log(repo)}
    assert sum(s.startswith("Rival ") for s in history) > 0  # nothing of the rival lost
    with capsys.disabled():
        print(
            f"\n[catalog contention] the highest competitor push rate at which every change"
            f" still lands within {DEADLINE:.0f} s: {highest:.0f} pushes/s"
            f" ({CHANGES} changes per rate, one after the other)\n" + "\n".join(rows)
        )
    assert highest >= 1.0
