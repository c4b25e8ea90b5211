"""The catalog writer under contention that does not depend on machine speed.

The competitor lives in the git server (`tests.env.contention`): a `pre-receive` hook that moves
the branch before the writer's push can, for exactly the pushes it is told to beat. So every
assertion is about outcomes: each change lands exactly once, nothing of the competitor is lost,
a round of lost races is reported while the change stays queued, and it lands as soon as the
competitor lets go; never about how fast any of it ran (the figures are in
`tests/benchmarks/test_catalog_contention_figures.py`).
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from controller.catalog import repository
from controller.catalog.repository import CatalogWriter, Change, CloneCache, Edit, GitOperation
from controller.git.credentials import Credentials
from tests.env import contention, gitserver

pytestmark = pytest.mark.e2e

PASSWORD = "c0ntend-pässw0rd"
ALICE = Credentials(username="alice", password=PASSWORD, secret="catalog-creds")
FILES = 4


def _path(index: int) -> str:
    return f"Environments/env-{index}/environment.yaml"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path_factory.mktemp("contention"), {"alice": PASSWORD}) as running:
        yield running


@pytest.fixture
def repo(server: gitserver.GitServer) -> str:
    name = f"catalog-{uuid.uuid4().hex[:8]}"
    files = {_path(i): f"name: env-{i}\nrunner: core:latest  # the runner\n" for i in range(FILES)}
    server.create_repo(name, {**files, "README.md": "catalog\n"})
    return name


def _set_runner(path: str, image: str) -> Edit:
    def apply(worktree: pathlib.Path) -> list[str]:
        target = worktree / path
        text = target.read_text()
        new = re.sub(r"(?m)^runner: \S+", f"runner: {image}", text)
        if new == text:
            return []
        target.write_text(new)
        return [path]

    return apply


def _change(server: gitserver.GitServer, repo: str, index: int, image: str) -> Change:
    """A change of one file that says what it depends on (so a lost race replays its commit)."""
    path = _path(index)
    depends_on: Callable[[str], bool] = lambda other: other == path  # noqa: E731
    return Change(
        url=server.url(repo),
        branch="main",
        credentials=ALICE,
        message=f"Use {image} in env-{index}",
        author_name="ADE Operator",
        author_email="ade@example.test",
        apply=_set_runner(path, image),
        depends_on=depends_on,
    )


def _bare(server: gitserver.GitServer, repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(server.path(repo)), *args],
        env=gitserver.git_env(server.folder),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def _assert_landed_once(server: gitserver.GitServer, repo: str, index: int, image: str) -> None:
    """The file holds `image`, and exactly one commit besides the initial one touched it."""
    assert f"runner: {image} " in _bare(server, repo, "show", f"main:{_path(index)}")
    assert len(_bare(server, repo, "log", "--format=%H", "main", "--", _path(index)).split()) == 2


def _assert_competitor_kept(
    server: gitserver.GitServer, repo: str, rival: contention.Contention
) -> None:
    history = {commit.sha for commit in server.log(repo)}
    assert rival.commits(), "the competitor never moved the branch"
    assert set(rival.commits()) <= history
    assert sum(c.subject.startswith("Competitor ") for c in server.log(repo)) == rival.beaten()


async def test_pushes_beaten_by_a_competitor_are_retried_and_land_once(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    """The first three pushes lose (the competitor moved the branch in between): the batch is
    replayed on each new head and lands on the fourth push, in one commit, nothing lost."""
    rival = contention.Contention(server, repo, beat=3)
    events: list[GitOperation] = []
    writer = CatalogWriter(cache=CloneCache(tmp_path / "cache"), metrics=events.append)
    try:
        results = await asyncio.gather(
            *(writer.submit(_change(server, repo, i, f"r.test/env-{i}:v2")) for i in range(3))
        )
    finally:
        await writer.aclose()
    for index in range(3):
        _assert_landed_once(server, repo, index, f"r.test/env-{index}:v2")
    _assert_competitor_kept(server, repo, rival)
    assert rival.beaten() == 3
    assert {result.commit for result in results} == {server.head(repo)}
    pushes = [(e.outcome, e.attempt) for e in events if e.operation == "push"]
    assert pushes == [("rejected", 1), ("rejected", 2), ("rejected", 3), ("ok", 4)]
    assert [c.subject for c in server.log(repo)][:4] == [
        "Apply 3 catalog changes",
        "Competitor 3",
        "Competitor 2",
        "Competitor 1",
    ]


async def test_contention_outlasting_a_round_is_reported_and_the_change_stays_queued(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    """While every push loses, each round of attempts ends in `CatalogPushRejected` for whoever
    waits (what status shows), but the change is never dropped: released, it lands once."""
    rival = contention.Contention(server, repo)
    rival.hold()
    events: list[GitOperation] = []
    writer = CatalogWriter(
        cache=CloneCache(tmp_path / "cache"), max_attempts=3, metrics=events.append
    )
    try:
        ticket = writer.enqueue(_change(server, repo, 0, "r.test/env-0:v3"))
        for _ in range(2):  # two rounds lost, each reported
            with pytest.raises(repository.CatalogPushRejected) as lost:
                await asyncio.wait_for(ticket.wait(), timeout=120)
            assert lost.value.reason == "CatalogPushRejected"
            assert "stays queued" in str(lost.value)
            assert not ticket.done()
        assert "r.test/env-0:v3" not in _bare(server, repo, "show", f"main:{_path(0)}")
        rival.release()
        result = await asyncio.wait_for(ticket.wait(), timeout=120)
    finally:
        await writer.aclose()
    assert result.changed
    assert result.commit == server.head(repo)
    _assert_landed_once(server, repo, 0, "r.test/env-0:v3")
    _assert_competitor_kept(server, repo, rival)
    pushes = [e.outcome for e in events if e.operation == "push"]
    assert pushes[-1] == "ok"
    assert pushes[:-1] == ["rejected"] * rival.beaten()
    assert rival.beaten() >= 6


async def test_a_submitter_gives_up_after_a_round_and_its_change_is_withdrawn(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    """`submit` (no ticket kept) raises after one round of lost races and takes its change
    back: nothing lands later, and the competitor's commits all stay."""
    rival = contention.Contention(server, repo)
    rival.hold()
    events: list[GitOperation] = []
    writer = CatalogWriter(
        cache=CloneCache(tmp_path / "cache"), max_attempts=4, metrics=events.append
    )
    try:
        with pytest.raises(repository.CatalogPushRejected):
            await writer.submit(_change(server, repo, 1, "r.test/env-1:v4"))
        rival.release()
    finally:
        await writer.aclose()
    assert [e.outcome for e in events if e.operation == "push"] == ["rejected"] * 4
    assert "r.test/env-1:v4" not in _bare(server, repo, "show", f"main:{_path(1)}")
    _assert_competitor_kept(server, repo, rival)
