"""Helpers shared by the catalog write-back tests (writer level and operator level).

The catalog a RunnerImage writes to (`MANIFEST`, the git Secret, `spec.catalog`); `Pusher`:
another writer of the catalog's branch, the git CLI pushing unrelated commits in a loop, never
forcing, so that a test can prove a writer racing it loses nothing of it
(`assert_nothing_of_the_pusher_lost`); `figures`: the median and p95 the race tests print.
"""

from __future__ import annotations

import asyncio
import pathlib
import random
import statistics
import subprocess
import threading
from typing import Any

from tests.conftest import GIT_PASSWORD, GIT_USER
from tests.env import gitserver, kube

__all__ = ["GIT_PASSWORD", "GIT_USER"]

MANIFEST = """\
# yaml-language-server: $schema=https://github.com/Azure/deployment-environments/releases/download/2022-11-11-preview/manifest.schema.json
name: {name}
version: 1.0.0
summary: {name} environment
description: Deploys {name}
runner: "mcr.microsoft.com/deployment-environments/runners/core:latest" # the runner
templatePath: main.bicep
parameters:
  - id: location  # where
    name: Location
    type: string
"""


def git_secret(cluster: kube.Cluster, namespace: str, password: str = GIT_PASSWORD) -> None:
    """The Secret `catalog` with the git server's Basic credentials."""
    cluster.plane.kubectl(
        "create", "secret", "generic", "catalog", "-n", namespace,
        f"--from-literal=username={GIT_USER}", f"--from-literal=password={password}",
    )  # fmt: skip


def with_catalog(
    body: dict[str, Any], url: str, manifests: list[str], **extra: Any
) -> dict[str, Any]:
    """`body` (a RunnerImage) writing to `manifests` of branch main at `url`, with Secret
    `catalog`."""
    body["spec"]["catalog"] = {
        "git": {"url": url, "branch": "main", "secretRef": {"name": "catalog"}},
        "manifests": manifests,
        **extra,
    }
    return body


class Pusher(threading.Thread):
    """Another writer of the branch: the git CLI on its own clone, in a loop until told to stop
    or `limit` commits. Each round commits an unrelated file and pushes; on a rejection it
    rebases on the server's branch and pushes again, never forcing. `landed` holds every commit
    it got onto the branch. `pause` (seconds, low and high) spaces its rounds at random: (0, 0)
    is a tight loop.

    With `sync_first` each round starts with `pull --rebase`, as real writers do (Flux and Argo
    fetch or clone per run, CI jobs check out, people pull). Without it, the pusher learns of
    other commits only when rejected, and on this server (~45 ms an HTTP request) moves the
    branch every ~125 ms: less than the ~160 ms any writer needs between reading the branch in a
    fetch and updating it in a push (the rest of the fetch, the commit, the push's two requests).
    No writer that refuses to force can land against that; the writer must then give up cleanly,
    which `test_race_against_a_pusher_that_never_fetches` checks.

    Used as a context manager (`with`, or `async with`): started, and entered once its first
    commit landed; stopped and joined on exit, raising what went wrong in it.
    """

    def __init__(
        self,
        server: gitserver.GitServer,
        repo: str,
        work: pathlib.Path,
        *,
        sync_first: bool,
        pause: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        super().__init__(name="unrelated pusher", daemon=True)
        self.pause = pause
        self.url = server.url_with_user(repo)  # a plain git client: 401 first, then the password
        self.work = work
        self.sync_first = sync_first
        self.stop = threading.Event()
        self.started_pushing = threading.Event()
        self.landed: list[str] = []
        self.rejected = 0
        self.error: BaseException | None = None
        self.limit = 2000

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["git", *args],
            cwd=self.work if self.work.exists() else self.work.parent,
            env=gitserver.git_env(self.work.parent),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"pusher: git {args[0]} failed: {result.stderr}")
        return result

    def run(self) -> None:
        try:
            self.git("clone", "--quiet", self.url, str(self.work))
            for number in range(self.limit):
                if self.stop.wait(random.uniform(*self.pause)):  # noqa: S311 - pacing, not secrecy
                    break
                if self.sync_first:
                    self.git("pull", "--quiet", "--rebase", "origin", "main")
                (self.work / "unrelated").mkdir(exist_ok=True)
                (self.work / "unrelated" / f"{number}.txt").write_text(f"{number}\n")
                self.git("add", "--all")
                self.git("commit", "--quiet", "-m", f"Unrelated {number}")
                for _ in range(100):
                    if self.git("push", "--quiet", "origin", "HEAD:main", check=False).returncode:
                        self.rejected += 1
                        self.git("pull", "--quiet", "--rebase", "origin", "main")
                        continue
                    self.landed.append(self.git("rev-parse", "HEAD").stdout.strip())
                    self.started_pushing.set()
                    break
                else:
                    raise RuntimeError("pusher: 100 rejections in a row")
        except BaseException as error:
            self.error = error
        finally:
            self.started_pushing.set()

    def __enter__(self) -> Pusher:
        self.start()
        assert self.started_pushing.wait(60)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(120)
        assert not self.is_alive()
        assert self.error is None, self.error

    async def __aenter__(self) -> Pusher:
        self.start()
        assert await asyncio.to_thread(self.started_pushing.wait, 60)
        assert self.error is None, self.error
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.to_thread(self.join, 120)
        assert not self.is_alive()
        assert self.error is None, self.error


def assert_nothing_of_the_pusher_lost(
    server: gitserver.GitServer, repo: str, pusher: Pusher
) -> None:
    """No force push: the branch's history holds every commit the other writer landed."""
    history = server.log(repo)
    assert set(pusher.landed) <= {commit.sha for commit in history}
    unrelated = [c for c in history if c.subject.startswith("Unrelated ")]
    assert len(unrelated) == len(pusher.landed)


def figures(latencies: list[float]) -> tuple[float, float]:
    """(median, p95) of `latencies`; the p95 is the nearest rank."""
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]
