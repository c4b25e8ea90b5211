"""Why the operator runs the git CLI itself rather than through GitPython: the figures.

GitPython (`import git`) is a synchronous wrapper that starts the same `git` executable; inside
kopf's event loop each of its calls would need a worker thread. Measured here, on a local
repository (no network, so only the wrapper's own costs show):

- the import: seconds and modules `import git` adds to a fresh interpreter (median of 5);
- one short command (`git rev-parse HEAD`), sequentially: through `controller.git.process.run_git`
  (`asyncio.create_subprocess_exec`), through GitPython's `Git.execute`, and through GitPython in
  `asyncio.to_thread` as the operator would have to call it (median per call, ms);
- eight at once: `run_git` gathered, and GitPython in threads (wall-clock of the batch, ms);
- a command that outlives its deadline (a 1 s sleep, 0.1 s timeout): how long after the timeout
  git is still running. `run_git` kills its process group at once; a thread cannot be cancelled,
  so GitPython's git runs to its end.

Skipped when GitPython is not installed (it is not a dependency of the operator). The assertions
are loose bounds that only catch a broken measurement, not noise.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import pytest

from controller.git import process
from controller.git.credentials import Credentials

pytestmark = pytest.mark.benchmark

CALLS = 40
BATCH = 8


def _import_cost(module: str) -> tuple[float, int]:
    """(seconds, modules added) of importing `module` in a fresh interpreter, median of 5."""
    code = (
        "import sys, time; before = len(sys.modules); t = time.perf_counter();"
        f" import {module}; print(time.perf_counter() - t, len(sys.modules) - before)"
    )
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((float(out[0]), int(out[1])))
    return statistics.median(r[0] for r in runs), int(statistics.median(r[1] for r in runs))


def _repository(folder: pathlib.Path, env: dict[str, str]) -> tuple[pathlib.Path, str]:
    """A repository of one commit; (its folder, the commit)."""
    repo = folder / "repo"
    for args in (
        ["init", "--quiet", str(repo)],
        ["-C", str(repo), "commit", "--quiet", "--allow-empty", "-m", "one"],
    ):
        subprocess.run(["git", *args], env=env, check=True)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return repo, head


async def _per_call(call: Callable[[], Awaitable[str]]) -> float:
    """Median milliseconds of one call, after a warm-up."""
    await call()
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _batch(call: Callable[[], Awaitable[str]]) -> float:
    """Milliseconds of `BATCH` calls at once, median of 5 batches."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await asyncio.gather(*(call() for _ in range(BATCH)))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def test_git_cli_against_gitpython(tmp_path: pathlib.Path) -> None:
    gitpython = pytest.importorskip("git")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.test",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.test",
    }
    repo, head = _repository(tmp_path, env)
    runner = gitpython.Git(str(repo))

    async def cli() -> str:
        done = await process.run_git(
            "rev-parse", "HEAD", cwd=repo, env=env, credentials=Credentials()
        )
        return done.stdout.strip()

    def wrapped() -> str:
        return str(runner.execute(["git", "rev-parse", "HEAD"], env=env))

    async def wrapped_sync() -> str:
        return wrapped()  # blocks the event loop while git runs

    async def wrapped_thread() -> str:
        return await asyncio.to_thread(wrapped)

    assert await cli() == await wrapped_sync() == await wrapped_thread() == head
    slow = ["-c", "alias.wait=!sleep 1", "wait"]

    async def cli_slow() -> float:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await process.run_git(*slow, cwd=repo, env=env, credentials=Credentials())
        return time.perf_counter() - started - 0.1  # run_git returns once the group is dead

    async def wrapped_slow() -> float:
        task = asyncio.ensure_future(asyncio.to_thread(runner.execute, ["git", *slow], env=env))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await asyncio.shield(task)
        timed_out = time.perf_counter()
        await task  # the thread, and git, go on regardless
        return time.perf_counter() - timed_out

    seconds, modules = _import_cost("git")
    figures = {
        "run_git": await _per_call(cli),
        "GitPython": await _per_call(wrapped_sync),
        "GitPython in a thread": await _per_call(wrapped_thread),
    }
    batches = {"run_git": await _batch(cli), "GitPython in threads": await _batch(wrapped_thread)}
    version = gitpython.__version__
    print(f"\nimport git (GitPython {version}): {seconds * 1000:.0f} ms, {modules} modules")
    for name, ms in figures.items():
        print(f"git rev-parse HEAD, one call, {name}: {ms:.2f} ms")
    for name, ms in batches.items():
        print(f"git rev-parse HEAD, {BATCH} at once, {name}: {ms:.1f} ms")
    left = {"run_git": await cli_slow(), "GitPython in a thread": await wrapped_slow()}
    for name, after in left.items():
        print(f"a 1 s git past a 0.1 s timeout, {name}: still running {after * 1000:.0f} ms")
    assert 0 < seconds < 30
    assert all(0 < ms < 5000 for ms in [*figures.values(), *batches.values()])
    assert left["run_git"] < 0.5 < left["GitPython in a thread"]
