"""The catalog writer's short retry against a real git server: a lost push race replayed.

When another writer's commits land between the writer's fetch and its push, and they touch
nothing the batch's edits depend on (`Change.depends_on`), the batch's commit is replayed on the
new head: the edits do not run again, the commit keeps its message and author, and the other
writer's commits stay. When they touch a file the batch changed, a path an edit depends on, or a
symbolic link, the edits run again on the new head (so a human's edit of the same file is kept and
the selection is redone). Each test makes the race happen deterministically: the first run of an
edit lands another commit on the branch, so that attempt's push is rejected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import pytest

from controller.catalog import freshness
from controller.catalog.repository import CatalogWriter, Change, CloneCache, GitOperation
from controller.git import process as git_process
from controller.git.credentials import Credentials
from tests.env import gitserver

pytestmark = pytest.mark.e2e

USER, PASSWORD = "replayer", "r3play-Pässword"
MANIFESTS = {f"envs/{name}/environment.yaml": name for name in ("web", "db", "queue")}


def _manifest(name: str, runner: str = "mcr.microsoft.com/ade/core:latest") -> str:
    return f"name: {name}\n# the runner image\nrunner: {runner}\ntemplatePath: main.bicep\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path_factory.mktemp("replay-server"), {USER: PASSWORD}) as running:
        yield running


@pytest.fixture
def repo(server: gitserver.GitServer) -> str:
    name = f"replay-{uuid.uuid4().hex[:8]}"
    server.create_repo(name, {path: _manifest(env) for path, env in MANIFESTS.items()})
    return name


@pytest.fixture
async def writer(tmp_path: pathlib.Path) -> AsyncIterator[tuple[CatalogWriter, list[GitOperation]]]:
    events: list[GitOperation] = []
    writer = CatalogWriter(cache=CloneCache(tmp_path / "cache"), window=0.05, metrics=events.append)
    yield writer, events
    await writer.aclose()


@pytest.fixture
async def fetching_writer(
    tmp_path: pathlib.Path,
) -> AsyncIterator[tuple[CatalogWriter, list[GitOperation]]]:
    """A writer that always asks the server for the head before a push (`trust_seen_head=0`):
    what it does under contention, or when the head it saw is old."""
    events: list[GitOperation] = []
    writer = CatalogWriter(
        cache=CloneCache(tmp_path / "cache"),
        window=0.05,
        metrics=events.append,
        trust_seen_head=0,
    )
    yield writer, events
    await writer.aclose()


@dataclasses.dataclass
class RacedEdit:
    """Sets `runner:` in `path`; its first run first lands `interference` (another writer's
    commit) on the branch, so the push of that attempt loses the race. `runs` counts its runs."""

    server: gitserver.GitServer
    repo: str
    path: str
    runner: str
    interference: Mapping[str, str | None]
    links: Mapping[str, str] = dataclasses.field(default_factory=dict)
    runs: int = 0
    other: str = ""

    def __call__(self, worktree: pathlib.Path) -> list[str]:
        self.runs += 1
        if not self.other:
            self.other = self.server.commit(
                self.repo, self.interference, "Another writer", symlinks=self.links
            )
        target = worktree / self.path
        lines = target.read_text().splitlines(keepends=True)
        edited = [f"runner: {self.runner}\n" if x.startswith("runner:") else x for x in lines]
        if edited == lines:
            return []
        target.write_text("".join(edited))
        return [self.path]


def _change(
    server: gitserver.GitServer, repo: str, edit: RacedEdit, depends_on: Callable[[str], bool]
) -> Change:
    return Change(
        url=server.url(repo),
        branch="main",
        apply=edit,
        message=f"Use {edit.runner}\n\nBuilt and verified.",
        author_name="ADE Operator",
        author_email="ade-operator@example.test",
        credentials=Credentials(username=USER, password=PASSWORD),
        depends_on=depends_on,
    )


def _under_envs(path: str) -> bool:
    """What an edit selecting `envs/*/environment.yaml` depends on."""
    parts = path.split("/")
    return len(parts) == 3 and parts[0] == "envs" and parts[2] == "environment.yaml"


def _file(server: gitserver.GitServer, repo: str, path: str) -> str:
    return server.show(repo, f"main:{path}")


def _pushes(events: list[GitOperation]) -> list[str]:
    return [event.outcome for event in events if event.operation == "push"]


async def test_a_race_lost_to_unrelated_commits_is_replayed_without_running_the_edit(
    server: gitserver.GitServer, repo: str, writer: tuple[CatalogWriter, list[GitOperation]]
) -> None:
    catalog, events = writer
    path = "envs/web/environment.yaml"
    edit = RacedEdit(server, repo, path, "r.test/web:2", {"docs/notes.md": "unrelated\n"})
    result = await catalog.submit(_change(server, repo, edit, _under_envs))

    assert edit.runs == 1  # replayed: the edit did not run on the new head
    assert _pushes(events) == ["rejected", "ok"]
    assert result.commit == server.head(repo)
    assert result.files == (path,)
    assert result.changed
    assert [c.subject for c in server.log(repo)] == [
        "Use r.test/web:2",
        "Another writer",
        "Initial commit",
    ]
    assert server.log(repo)[1].sha == edit.other  # on top of the other writer's commit
    shown = server.show(repo)
    assert "Author: ADE Operator <ade-operator@example.test>" in shown
    assert "Built and verified." in shown
    assert "runner: r.test/web:2\n" in _file(server, repo, path)
    assert _file(server, repo, "docs/notes.md") == "unrelated"
    for other in ("db", "queue"):  # the rest of the tree is the new head's
        assert "core:latest" in _file(server, repo, f"envs/{other}/environment.yaml")


async def test_a_human_edit_of_the_same_file_runs_the_edit_again_and_is_kept(
    server: gitserver.GitServer, repo: str, writer: tuple[CatalogWriter, list[GitOperation]]
) -> None:
    catalog, events = writer
    path = "envs/web/environment.yaml"
    human = _manifest("web").replace("templatePath: main.bicep", "templatePath: web.bicep")
    edit = RacedEdit(server, repo, path, "r.test/web:3", {path: human})
    await catalog.submit(_change(server, repo, edit, _under_envs))

    assert edit.runs == 2
    assert _pushes(events) == ["rejected", "ok"]
    text = _file(server, repo, path)
    assert "templatePath: web.bicep" in text
    assert "runner: r.test/web:3" in text


@pytest.mark.parametrize(
    ("interference", "links"),
    [
        pytest.param({"envs/cache/environment.yaml": _manifest("cache")}, {}, id="a-new-match"),
        pytest.param({"envs/db/environment.yaml": None}, {}, id="a-match-deleted"),
        pytest.param({}, {"docs/link.yaml": "../envs/db/environment.yaml"}, id="a-symlink"),
    ],
)
async def test_a_race_lost_to_what_the_edit_depends_on_runs_the_edit_again(
    server: gitserver.GitServer,
    repo: str,
    writer: tuple[CatalogWriter, list[GitOperation]],
    interference: dict[str, str | None],
    links: dict[str, str],
) -> None:
    catalog, events = writer
    path = "envs/web/environment.yaml"
    edit = RacedEdit(server, repo, path, "r.test/web:4", interference, links)
    await catalog.submit(_change(server, repo, edit, _under_envs))

    assert edit.runs == 2
    assert _pushes(events) == ["rejected", "ok"]
    assert "runner: r.test/web:4" in _file(server, repo, path)
    assert server.log(repo)[1].sha == edit.other


async def test_a_change_submitted_during_a_replay_waits_for_the_next_batch(
    server: gitserver.GitServer, repo: str, writer: tuple[CatalogWriter, list[GitOperation]]
) -> None:
    catalog, events = writer
    first = RacedEdit(server, repo, "envs/web/environment.yaml", "r.test/web:5", {"a.txt": "a\n"})
    late = RacedEdit(server, repo, "envs/db/environment.yaml", "r.test/db:5", {}, other="none")
    submitted = asyncio.Event()
    original = first.__call__

    def and_then_submit(worktree: pathlib.Path) -> list[str]:
        changed = original(worktree)
        submitted.set()  # the late change arrives while the first batch is in flight
        return changed

    async def late_submit() -> None:
        await submitted.wait()
        await catalog.submit(_change(server, repo, late, _under_envs))

    change = dataclasses.replace(_change(server, repo, first, _under_envs), apply=and_then_submit)
    await asyncio.gather(catalog.submit(change), late_submit())

    assert (first.runs, late.runs) == (1, 1)
    assert _pushes(events) == ["rejected", "ok", "ok"]
    assert [c.subject for c in server.log(repo)][:3] == [
        "Use r.test/db:5",
        "Use r.test/web:5",
        "Another writer",
    ]


async def test_without_depends_on_the_edits_always_run_again(
    server: gitserver.GitServer, repo: str, writer: tuple[CatalogWriter, list[GitOperation]]
) -> None:
    catalog, events = writer
    edit = RacedEdit(server, repo, "envs/web/environment.yaml", "r.test/web:6", {"b.txt": "b\n"})
    change = dataclasses.replace(_change(server, repo, edit, _under_envs), depends_on=None)
    await catalog.submit(change)
    assert edit.runs == 2
    assert _pushes(events) == ["rejected", "ok"]


async def test_on_a_known_clone_the_edits_run_before_the_fetch_and_lose_no_race(
    server: gitserver.GitServer,
    repo: str,
    fetching_writer: tuple[CatalogWriter, list[GitOperation]],
) -> None:
    """A clone fetched before: the edits run on the head it knows, then the server is asked;
    a commit that landed meanwhile is built upon by replaying, before any push."""
    catalog, events = fetching_writer
    warm = RacedEdit(server, repo, "envs/db/environment.yaml", "r.test/db:7", {}, other="none")
    await catalog.submit(_change(server, repo, warm, _under_envs))
    events.clear()
    edit = RacedEdit(server, repo, "envs/web/environment.yaml", "r.test/web:7", {"c.txt": "c\n"})
    result = await catalog.submit(_change(server, repo, edit, _under_envs))

    assert edit.runs == 1
    assert _pushes(events) == ["ok"]  # no race lost: the other commit was seen before the push
    assert result.commit == server.head(repo)
    assert [c.subject for c in server.log(repo)][:3] == [
        "Use r.test/web:7",
        "Another writer",
        "Use r.test/db:7",
    ]


async def test_on_a_known_clone_new_commits_touching_a_dependency_run_the_edits_again(
    server: gitserver.GitServer,
    repo: str,
    fetching_writer: tuple[CatalogWriter, list[GitOperation]],
) -> None:
    catalog, events = fetching_writer
    warm = RacedEdit(server, repo, "envs/db/environment.yaml", "r.test/db:8", {}, other="none")
    await catalog.submit(_change(server, repo, warm, _under_envs))
    events.clear()
    path = "envs/web/environment.yaml"
    human = _manifest("web").replace("templatePath: main.bicep", "templatePath: web.bicep")
    edit = RacedEdit(server, repo, path, "r.test/web:8", {path: human})
    await catalog.submit(_change(server, repo, edit, _under_envs))

    assert edit.runs == 2  # on the known head, then on the server's
    assert _pushes(events) == ["ok"]
    text = _file(server, repo, path)
    assert "templatePath: web.bicep" in text
    assert "runner: r.test/web:8" in text


# -- a head seen moments ago: pushed on without a fetch, as a compare-and-swap -----------------


def _operations(events: list[GitOperation]) -> list[tuple[str, str]]:
    return [(event.operation, event.outcome) for event in events]


async def _write(
    catalog: CatalogWriter, server: gitserver.GitServer, repo: str, path: str, runner: str
) -> str:
    """Set `runner:` in `path` with no other writer about; the commit."""
    edit = RacedEdit(server, repo, path, runner, {}, other="none")
    return (await catalog.submit(_change(server, repo, edit, _under_envs))).commit


async def test_a_head_seen_moments_ago_is_pushed_on_without_a_fetch(
    server: gitserver.GitServer, repo: str, writer: tuple[CatalogWriter, list[GitOperation]]
) -> None:
    catalog, events = writer
    await _write(catalog, server, repo, "envs/db/environment.yaml", "r.test/db:9")
    events.clear()
    commit = await _write(catalog, server, repo, "envs/web/environment.yaml", "r.test/web:9")

    assert _operations(events) == [("push", "ok")]  # the head our last push left: no fetch
    assert commit == server.head(repo)
    assert [c.subject for c in server.log(repo)][:2] == ["Use r.test/web:9", "Use r.test/db:9"]


async def test_a_head_that_moved_since_it_was_seen_costs_one_rejected_push_then_fetches_first(
    server: gitserver.GitServer, repo: str, writer: tuple[CatalogWriter, list[GitOperation]]
) -> None:
    catalog, events = writer
    await _write(catalog, server, repo, "envs/db/environment.yaml", "r.test/db:10")
    events.clear()
    path = "envs/web/environment.yaml"
    edit = RacedEdit(server, repo, path, "r.test/web:10", {"docs/notes.md": "theirs\n"})
    await catalog.submit(_change(server, repo, edit, _under_envs))

    assert edit.runs == 1  # replayed on the moved head
    assert _operations(events) == [("push", "rejected"), ("fetch", "ok"), ("push", "ok")]
    assert [c.subject for c in server.log(repo)][:3] == [
        "Use r.test/web:10",
        "Another writer",
        "Use r.test/db:10",
    ]
    events.clear()  # a race was lost here lately: the next write asks the server first
    await _write(catalog, server, repo, "envs/queue/environment.yaml", "r.test/q:10")
    assert _operations(events) == [("fetch", "ok"), ("push", "ok")]


async def test_a_branch_moved_back_is_never_fast_forwarded_over(
    server: gitserver.GitServer, repo: str, writer: tuple[CatalogWriter, list[GitOperation]]
) -> None:
    """Someone force-pushes the branch back to an older commit (dropping ours): the next push,
    a child of the head the clone saw, would be a fast-forward of that older commit and bring
    the dropped commit back. The compare-and-swap refuses it; the commit is replayed on the
    branch as it is now."""
    catalog, events = writer
    initial = server.head(repo)
    await _write(catalog, server, repo, "envs/db/environment.yaml", "r.test/db:11")
    server.move_branch(repo, initial)
    events.clear()
    path = "envs/web/environment.yaml"
    await _write(catalog, server, repo, path, "r.test/web:11")

    assert _pushes(events) == ["rejected", "ok"]
    assert [c.subject for c in server.log(repo)] == ["Use r.test/web:11", "Initial commit"]
    assert "core:latest" in _file(server, repo, "envs/db/environment.yaml")
    assert "runner: r.test/web:11" in _file(server, repo, path)


async def test_a_branch_expected_to_change_is_fetched_ahead_and_the_write_needs_no_fetch(
    server: gitserver.GitServer, repo: str, writer: tuple[CatalogWriter, list[GitOperation]]
) -> None:
    """`expect` (a build started whose change will come here) fetches the branch in the
    background: a commit another writer pushed before that is already under the write, which
    then pushes at once and loses no race."""
    catalog, events = writer
    await _write(catalog, server, repo, "envs/db/environment.yaml", "r.test/db:12")
    other = server.commit(repo, {"docs/notes.md": "theirs\n"}, "Another writer")
    await asyncio.sleep(freshness.PREFETCH_AFTER_SECONDS)  # a head seen just now is not fetched
    events.clear()
    catalog.expect("ns/web", url=server.url(repo), branch="main")
    deadline = asyncio.get_running_loop().time() + 30
    while ("fetch", "ok") not in _operations(events):
        assert asyncio.get_running_loop().time() < deadline, "no prefetch within 30 s"
        await asyncio.sleep(0.02)
    await _write(catalog, server, repo, "envs/web/environment.yaml", "r.test/web:12")

    assert _operations(events) == [("fetch", "ok"), ("push", "ok")]
    assert server.log(repo)[1].sha == other


async def test_a_tree_our_last_write_left_clean_is_not_checked_out_again(
    server: gitserver.GitServer,
    repo: str,
    writer: tuple[CatalogWriter, list[GitOperation]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a landed push the clone's tree is exactly the branch head: the next write edits it
    as it is (no checkout, no clean). An edit that failed halfway leaves no such knowledge: the
    write after it checks out and cleans, and what the failed edit left is in no commit."""
    catalog, _ = writer
    await _write(catalog, server, repo, "envs/db/environment.yaml", "r.test/db:13")
    commands: list[str] = []
    real = git_process.run_git

    async def recording(*args: str, **kwargs: Any) -> git_process.Completed:
        commands.append(next(a for a in args if not a.startswith("-") and "/" not in a))
        return await real(*args, **kwargs)

    monkeypatch.setattr(git_process, "run_git", recording)
    await _write(catalog, server, repo, "envs/web/environment.yaml", "r.test/web:13")
    assert "checkout" not in commands
    assert "clean" not in commands
    assert "push" in commands

    def half_written(worktree: pathlib.Path) -> list[str]:
        (worktree / "envs" / "stray.yaml").write_text("left by a failed edit\n")
        raise ValueError("the edit failed halfway")

    failing = dataclasses.replace(
        _change(server, repo, RacedEdit(server, repo, "", "", {}, other="none"), _under_envs),
        apply=half_written,
    )
    with pytest.raises(ValueError, match="halfway"):
        await catalog.submit(failing)
    commands.clear()
    commit = await _write(catalog, server, repo, "envs/queue/environment.yaml", "r.test/q:13")
    assert "checkout" in commands
    assert "clean" in commands
    assert commit == server.head(repo)
    assert "envs/stray.yaml" not in server.changes(repo)
    assert "runner: r.test/q:13" in _file(server, repo, "envs/queue/environment.yaml")
