"""`controller.catalog.repository` against a real git server (git http-backend behind Basic auth).

A change lands as one commit authored as asked; edits that change nothing make no commit; changes
submitted together share one commit and one push, while different repositories stay independent;
the typed errors (credentials, repository, branch, a refused push) carry no secret; a failing edit
fails only itself; the push-branch mode rebuilds its branch on the moving base; a damaged cache is
recloned and the cache stays within its budget. Then staggered changes and a burst (the latencies
printed). Contention with another writer: `test_catalog_contention.py` (deterministic) and
against a writer that never fetches here.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import pathlib
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from controller import errors
from controller.catalog import repository
from controller.catalog.repository import (
    CatalogWriter,
    Change,
    CloneCache,
    Edit,
    GitOperation,
    Result,
)
from controller.git import process as git_
from controller.git.credentials import Credentials, CredentialsInvalid
from tests.e2e.catalogs import Pusher as _Pusher
from tests.e2e.catalogs import (
    assert_nothing_of_the_pusher_lost as _assert_nothing_of_the_pusher_lost,
)
from tests.e2e.catalogs import figures as _figures
from tests.env import gitserver

pytestmark = pytest.mark.e2e

PASSWORD = "c4t:al@g/pässw0rd-Xq"
ALICE = Credentials(username="alice", password=PASSWORD, secret="catalog-creds")
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
AUTHOR = ("ADE Operator", "ade-operator@example.test")
DEFINITIONS = 4


def _definition(index: int, image: str = "mcr.microsoft.com/ade/core:latest") -> str:
    return (
        f"# environment {index}\n"
        f"name: env-{index}\n"
        f"runner: {image}  # the runner image\n"
        "templatePath: main.bicep\n"
    )


def _path(index: int) -> str:
    return f"Environments/env-{index}/environment.yaml"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gitserver.GitServer]:
    folder = tmp_path_factory.mktemp("catalog-server")
    with gitserver.running(folder, {"alice": PASSWORD}) as running:
        yield running


def _new_repo(server: gitserver.GitServer, definitions: int = DEFINITIONS) -> str:
    name = f"catalog-{uuid.uuid4().hex[:8]}"
    files = {_path(i): _definition(i) for i in range(definitions)}
    server.create_repo(name, {**files, "README.md": "catalog\n"})
    return name


@pytest.fixture
def repo(server: gitserver.GitServer) -> str:
    return _new_repo(server)


@pytest.fixture
def events() -> list[GitOperation]:
    return []


@pytest.fixture
async def writer(
    tmp_path: pathlib.Path, events: list[GitOperation]
) -> AsyncIterator[CatalogWriter]:
    writer = CatalogWriter(cache=CloneCache(tmp_path / "cache"), window=0.1, metrics=events.append)
    yield writer
    await writer.aclose()


def set_runner(path: str, image: str) -> Edit:
    """The edit a reconcile step would pass: point `runner:` of one definition at `image`."""

    def apply(worktree: pathlib.Path) -> list[str]:
        target = worktree / path
        text = target.read_text()
        new = re.sub(r"(?m)^runner: \S+", f"runner: {image}", text)
        if new == text:
            return []
        target.write_text(new)
        return [path]

    return apply


def _change(
    server: gitserver.GitServer,
    repo: str,
    apply: Edit,
    message: str = "Use a new runner image",
    *,
    branch: str = "main",
    push_branch: str = "",
    credentials: Credentials | None = ALICE,
    author: tuple[str, str] = AUTHOR,
) -> Change:
    return Change(
        url=server.url(repo),
        branch=branch,
        push_branch=push_branch,
        credentials=credentials,
        message=message,
        author_name=author[0],
        author_email=author[1],
        apply=apply,
    )


def _git(server: gitserver.GitServer, repo: str, *args: str) -> str:
    result = subprocess.run(
        ["git", "--git-dir", str(server.path(repo)), *args],
        env=gitserver.git_env(server.folder),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"git {args}: {result.stderr}"
    return result.stdout


def _show(server: gitserver.GitServer, repo: str, ref: str, path: str) -> str:
    return _git(server, repo, "show", f"{ref}:{path}")


def _pushes(server: gitserver.GitServer, repo: str) -> int:
    return sum(
        1
        for r in server.requests_for(repo)
        if r.method == "POST" and r.path.endswith("/git-receive-pack") and r.status == 200
    )


def _secrets_in(folder: pathlib.Path) -> list[str]:
    """Files under `folder` holding the password or the Basic header."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if PASSWORD.encode() in data or BASIC.encode() in data:
                found.append(str(path))
    return found


# -- one change, no change, batches ---------------------------------------------------------------


async def test_a_change_lands_as_one_commit_authored_as_asked(
    server: gitserver.GitServer,
    repo: str,
    writer: CatalogWriter,
    events: list[GitOperation],
    tmp_path: pathlib.Path,
) -> None:
    before = server.log(repo)
    image = "contoso.azurecr.io/ade/bicep:a1b2c3-d4e5f6"
    result = await writer.submit(
        _change(server, repo, set_runner(_path(1), image), f"Use runner image {image}")
    )
    assert result == Result(server.head(repo), "refs/heads/main", (_path(1),), True)
    after = server.log(repo)
    assert len(after) == len(before) + 1
    assert after[1:] == before
    shown = _git(server, repo, "log", "-1", "--format=%an|%ae|%cn|%ce|%P|%B", "main")
    name, email, committer, committer_email, parent, body = shown.split("|", 5)
    assert (name, email, committer, committer_email) == (*AUTHOR, *AUTHOR)
    assert parent == before[0].sha
    assert body.strip() == f"Use runner image {image}"
    assert f"runner: {image}  # the runner image" in _show(server, repo, "main", _path(1))
    assert _git(server, repo, "diff", "--name-only", "main~1", "main").split() == [_path(1)]
    assert [(e.operation, e.outcome) for e in events] == [("clone", "ok"), ("push", "ok")]
    assert _secrets_in(tmp_path / "cache") == []


async def test_an_edit_that_changes_nothing_makes_no_commit(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter, events: list[GitOperation]
) -> None:
    head = server.head(repo)
    result = await writer.submit(
        _change(server, repo, set_runner(_path(0), "mcr.microsoft.com/ade/core:latest"))
    )
    assert result == Result(head, "refs/heads/main", (), False)
    assert server.head(repo) == head
    assert _pushes(server, repo) == 0
    assert [e.operation for e in events] == ["clone"]
    # a second write reuses the clone: a fetch, not a clone
    await writer.submit(_change(server, repo, set_runner(_path(0), "x.test/ade/core:2")))
    assert [e.operation for e in events] == ["clone", "fetch", "push"]


async def test_changes_submitted_together_make_one_commit_and_one_push(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    before = len(server.log(repo))
    first, second = await asyncio.gather(
        writer.submit(_change(server, repo, set_runner(_path(0), "r.test/a:1"), "Use a:1")),
        writer.submit(
            _change(
                server,
                repo,
                set_runner(_path(2), "r.test/b:1"),
                "Use b:1",
                author=("Other Bot", "other@example.test"),
            )
        ),
    )
    assert first.commit == second.commit == server.head(repo)
    assert (first.files, second.files) == ((_path(0),), (_path(2),))
    assert first.changed
    assert second.changed
    assert len(server.log(repo)) == before + 1
    assert _pushes(server, repo) == 1
    body = _git(server, repo, "log", "-1", "--format=%an|%B", "main")
    assert body.startswith("ADE Operator|Apply 2 catalog changes\n\n- Use a:1\n- Use b:1\n")
    assert "Co-authored-by: Other Bot <other@example.test>" in body
    assert "r.test/a:1" in _show(server, repo, "main", _path(0))
    assert "r.test/b:1" in _show(server, repo, "main", _path(2))


async def test_a_change_that_changes_nothing_rides_along_without_an_empty_commit(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    same = set_runner(_path(0), "mcr.microsoft.com/ade/core:latest")
    unchanged, changed = await asyncio.gather(
        writer.submit(_change(server, repo, same)),
        writer.submit(_change(server, repo, set_runner(_path(3), "r.test/c:3"))),
    )
    assert not unchanged.changed
    assert unchanged.files == ()
    assert changed.changed
    assert unchanged.commit == changed.commit == server.head(repo)


async def test_different_repositories_are_written_independently(
    server: gitserver.GitServer, writer: CatalogWriter
) -> None:
    one, two = _new_repo(server), _new_repo(server)
    results = await asyncio.gather(
        writer.submit(_change(server, one, set_runner(_path(0), "r.test/one:1"))),
        writer.submit(_change(server, two, set_runner(_path(0), "r.test/two:1"))),
    )
    assert [r.commit for r in results] == [server.head(one), server.head(two)]
    assert len(server.log(one)) == len(server.log(two)) == 2
    assert "r.test/one:1" in _show(server, one, "main", _path(0))
    assert "r.test/two:1" in _show(server, two, "main", _path(0))


# -- errors ------------------------------------------------------------------------------------


async def test_a_wrong_password_is_auth_failed_and_the_password_shows_nowhere(
    server: gitserver.GitServer,
    repo: str,
    writer: CatalogWriter,
    caplog: pytest.LogCaptureFixture,
    tmp_path: pathlib.Path,
) -> None:
    caplog.set_level(logging.DEBUG, logger="controller")
    wrong = Credentials(username="alice", password=PASSWORD[::-1] + "!", secret="catalog-creds")
    with pytest.raises(repository.CatalogAuthFailed) as raised:
        await writer.submit(_change(server, repo, set_runner(_path(0), "r/x:1"), credentials=wrong))
    error = raised.value
    assert isinstance(error, errors.StalledError)
    assert error.reason == "CatalogAuthFailed"
    assert "catalog-creds" in error.message
    assert server.url(repo) in error.message
    for secret in (PASSWORD[::-1] + "!", PASSWORD, BASIC):
        assert secret not in str(error)
        assert secret not in caplog.text
    assert "running git" in caplog.text  # the commands were logged, scrubbed
    assert _secrets_in(tmp_path / "cache") == []
    assert list((tmp_path / "cache").iterdir()) == []  # no empty clone left behind


async def test_credentials_reach_git_only_through_its_environment(
    server: gitserver.GitServer,
    repo: str,
    writer: CatalogWriter,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
) -> None:
    seen: list[tuple[tuple[str, ...], dict[str, str]]] = []
    real = git_.run_git

    async def recording(*args: str, **kwargs: Any) -> git_.Completed:
        seen.append((args, dict(kwargs["env"])))
        return await real(*args, **kwargs)

    monkeypatch.setattr(git_, "run_git", recording)
    leaky = f"Use r.test/a:1 (pushed with {PASSWORD})"
    await writer.submit(_change(server, repo, set_runner(_path(0), "r.test/a:1"), leaky))
    assert seen
    for args, env in seen:
        assert not any(PASSWORD in arg or BASIC in arg for arg in args)
        holders = [key for key, value in env.items() if PASSWORD in value or BASIC in value]
        assert all(key.startswith("GIT_CONFIG_VALUE_") for key in holders)
    message = _git(server, repo, "log", "-1", "--format=%B", "main")
    assert PASSWORD not in message
    assert "(pushed with ***)" in message
    assert _secrets_in(tmp_path / "cache") == []


async def test_no_credentials_for_a_private_repository_is_auth_failed(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    with pytest.raises(repository.CatalogAuthFailed, match="needs credentials"):
        await writer.submit(_change(server, repo, set_runner(_path(0), "r/x:1"), credentials=None))


async def test_a_missing_repository(server: gitserver.GitServer, writer: CatalogWriter) -> None:
    with pytest.raises(repository.CatalogRepositoryNotFound) as raised:
        await writer.submit(_change(server, "nowhere", set_runner(_path(0), "r/x:1")))
    assert isinstance(raised.value, errors.StalledError)
    assert raised.value.reason == "CatalogRepositoryNotFound"


async def test_a_missing_branch(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    with pytest.raises(repository.CatalogBranchNotFound, match="'release'") as raised:
        await writer.submit(_change(server, repo, set_runner(_path(0), "r/x:1"), branch="release"))
    assert isinstance(raised.value, errors.StalledError)
    assert raised.value.reason == "CatalogBranchNotFound"
    assert [b.subject for b in server.log(repo)] == ["Initial commit"]


async def test_a_push_the_server_refuses_is_stalled_not_retried(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter, events: list[GitOperation]
) -> None:
    hook = server.path(repo) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(repository.CatalogPushRefused, match="declined") as raised:
        await writer.submit(_change(server, repo, set_runner(_path(0), "r/x:1")))
    assert isinstance(raised.value, errors.StalledError)
    assert [e.outcome for e in events if e.operation == "push"] == ["failed"]


async def test_a_failing_edit_fails_only_its_own_change(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    def broken(worktree: pathlib.Path) -> list[str]:
        (worktree / _path(1)).write_text("half-written: [")
        (worktree / "stray.yaml").write_text("left behind\n")
        raise errors.StalledError("InvalidManifest", f"{_path(1)}: cannot parse the YAML")

    good, bad, also_good = await asyncio.gather(
        writer.submit(_change(server, repo, set_runner(_path(0), "r.test/a:2"), "a")),
        writer.submit(_change(server, repo, broken, "broken")),
        writer.submit(_change(server, repo, set_runner(_path(2), "r.test/c:2"), "c")),
        return_exceptions=True,
    )
    assert isinstance(bad, errors.StalledError)
    assert bad.reason == "InvalidManifest"
    assert isinstance(good, Result)
    assert isinstance(also_good, Result)
    assert good.commit == also_good.commit == server.head(repo)
    assert _git(server, repo, "diff", "--name-only", "main~1", "main").split() == [
        _path(0),
        _path(2),
    ]
    assert _show(server, repo, "main", _path(1)) == _definition(1)
    assert len(server.log(repo)) == 2


async def test_a_malformed_change_is_refused_at_once(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    change = _change(server, repo, set_runner(_path(0), "r/x:1"), branch="bad..name")
    with pytest.raises(ValueError, match="branch"):
        await writer.submit(change)


# -- push branch ---------------------------------------------------------------------------------


async def test_a_push_branch_is_created_from_base_and_rebuilt_when_base_moves(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    pushes = "ade/runner-updates"
    base_before = server.head(repo)

    first = await writer.submit(
        _change(server, repo, set_runner(_path(0), "r.test/a:1"), "Use a:1", push_branch=pushes)
    )
    assert first.ref == f"refs/heads/{pushes}"
    assert first.commit == server.head(repo, pushes)
    assert server.head(repo) == base_before  # base untouched
    assert _git(server, repo, "rev-parse", f"{pushes}~1").strip() == base_before

    # the base moves (a human commit); the next write rebuilds the branch on it
    human = server.commit(repo, {"README.md": "catalog, edited by a human\n"}, "Human edit")
    second = await writer.submit(
        _change(server, repo, set_runner(_path(1), "r.test/b:1"), "Use b:1", push_branch=pushes)
    )
    assert second.commit == server.head(repo, pushes)
    assert server.head(repo) == human  # base untouched
    assert [c.subject for c in server.log(repo, pushes)] == [
        "Use b:1",
        "Use a:1",
        "Human edit",
        "Initial commit",
    ]
    assert "r.test/a:1" in _show(server, repo, pushes, _path(0))  # the earlier commit replayed
    assert "r.test/b:1" in _show(server, repo, pushes, _path(1))
    assert _show(server, repo, pushes, "README.md") == "catalog, edited by a human\n"

    # nothing to change, base unchanged: no push at all
    pushed = _pushes(server, repo)
    third = await writer.submit(
        _change(server, repo, set_runner(_path(1), "r.test/b:1"), push_branch=pushes)
    )
    assert third == Result(second.commit, f"refs/heads/{pushes}", (), False)
    assert _pushes(server, repo) == pushed

    # once the branch is merged into base, the next write starts again from base
    _git(server, repo, "update-ref", "refs/heads/main", second.commit)
    fourth = await writer.submit(
        _change(server, repo, set_runner(_path(2), "r.test/c:1"), "Use c:1", push_branch=pushes)
    )
    assert [c.subject for c in server.log(repo, pushes)][:2] == ["Use c:1", "Use b:1"]
    assert fourth.commit == server.head(repo, pushes)
    assert server.head(repo) == second.commit


async def test_a_push_branch_conflicting_with_base_restarts_from_base(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    pushes = "ade/runner-updates"
    await writer.submit(
        _change(server, repo, set_runner(_path(0), "r.test/a:1"), "Use a:1", push_branch=pushes)
    )
    human = server.commit(repo, {_path(0): _definition(0, "human.test/pinned:9")}, "Pin env-0")
    result = await writer.submit(
        _change(server, repo, set_runner(_path(1), "r.test/b:1"), "Use b:1", push_branch=pushes)
    )
    assert result.changed
    assert _git(server, repo, "rev-parse", f"{pushes}~1").strip() == human
    assert "human.test/pinned:9" in _show(server, repo, pushes, _path(0))
    assert server.head(repo) == human


# -- the cache ----------------------------------------------------------------------------------


def _damage_head(git_dir: pathlib.Path) -> None:
    (git_dir / "HEAD").write_text("garbage\n")


def _damage_objects(git_dir: pathlib.Path) -> None:
    for child in (git_dir / "objects").iterdir():
        if child.name not in ("info", "pack"):
            shutil.rmtree(child)
    for pack in (git_dir / "objects" / "pack").iterdir():
        pack.unlink()


def _damage_index(git_dir: pathlib.Path) -> None:
    (git_dir / "index").write_bytes(b"DIRC\x00\x00\x00\x02garbage")


def _damage_config(git_dir: pathlib.Path) -> None:
    (git_dir / "config").write_text("[core\nthis is not git config\n")


def _remove_git_dir(git_dir: pathlib.Path) -> None:
    shutil.rmtree(git_dir)


@pytest.mark.parametrize(
    ("damage", "recovery"),
    [
        (_damage_head, {"clone"}),
        (_damage_objects, {"clone", "fetch"}),  # a fetch may bring the objects back by itself
        (_damage_index, {"clone"}),
        (_damage_config, {"clone"}),
        (_remove_git_dir, {"clone"}),
    ],
    ids=["HEAD", "objects", "index", "config", "no .git"],
)
async def test_a_damaged_clone_is_recloned_transparently(
    server: gitserver.GitServer,
    repo: str,
    writer: CatalogWriter,
    events: list[GitOperation],
    damage: Callable[[pathlib.Path], None],
    recovery: set[str],
) -> None:
    await writer.submit(_change(server, repo, set_runner(_path(0), "r.test/a:1")))
    clone = writer.cache.path(url=server.url(repo), branch="main")
    damage(clone / ".git")
    (clone / "leftover.txt").write_text("from before\n")
    result = await writer.submit(_change(server, repo, set_runner(_path(1), "r.test/b:1")))
    assert result.changed
    assert result.commit == server.head(repo)
    assert "r.test/a:1" in _show(server, repo, "main", _path(0))
    assert "r.test/b:1" in _show(server, repo, "main", _path(1))
    assert _git(server, repo, "ls-tree", "--name-only", "main").split() == [
        "Environments",
        "README.md",
    ]
    syncs = [(e.operation, e.outcome) for e in events if e.operation != "push"]
    assert syncs[0] == ("clone", "ok")
    assert syncs[1][0] in recovery
    assert syncs[1:] == [(syncs[1][0], "ok")]
    assert [
        c.name for c in writer.cache.path(url=server.url(repo), branch="main").parent.iterdir()
    ] == [clone.name]


async def test_the_cache_is_bounded_in_clones_and_bytes(
    server: gitserver.GitServer, tmp_path: pathlib.Path
) -> None:
    events: list[GitOperation] = []
    cache = CloneCache(tmp_path / "cache", max_clones=2, max_bytes=None)
    writer = CatalogWriter(cache=cache, window=0.01, metrics=events.append)
    repos = [_new_repo(server) for _ in range(4)]
    try:
        for number, name in enumerate(repos):
            await writer.submit(_change(server, name, set_runner(_path(0), f"r.test/n:{number}")))
            on_disk = sorted(p.name for p in cache.folder.iterdir())
            assert len(on_disk) == min(number + 1, 2)
            assert sorted(c.name for c in cache.clones()) == on_disk
        expected = sorted(cache.path(url=server.url(n), branch="main").name for n in repos[2:])
        assert sorted(p.name for p in cache.folder.iterdir()) == expected

        # an evicted repository is simply cloned again
        await writer.submit(_change(server, repos[0], set_runner(_path(0), "r.test/again:1")))
        assert [e.operation for e in events if e.operation != "push"][-1] == "clone"
        assert len(list(cache.folder.iterdir())) == 2

        # a byte budget smaller than one clone keeps only the clone just used
        cache.max_bytes = 1
        await writer.submit(_change(server, repos[3], set_runner(_path(0), "r.test/last:1")))
        assert [p.name for p in cache.folder.iterdir()] == [
            cache.path(url=server.url(repos[3]), branch="main").name
        ]
        assert next(c.size for c in cache.clones()) > 1

        # a restarted process finds the clone it left
        reborn = CloneCache(tmp_path / "cache", max_clones=2, max_bytes=None)
        again = CatalogWriter(cache=reborn, window=0.01, metrics=events.append)
        await again.submit(_change(server, repos[3], set_runner(_path(1), "r.test/reborn:1")))
        assert events[-2].operation == "fetch"
        await again.aclose()
    finally:
        await writer.aclose()


# -- a push that loses a race is retried in-process ----------------------------------------------


def _interfering(
    server: gitserver.GitServer, repo: str, edit: Edit, branch: str = "main"
) -> tuple[Edit, list[str]]:
    """`edit`, which on its first run lands another writer's commit on `branch` (so the push of
    that attempt is rejected); the shas of those commits."""
    others: list[str] = []

    def apply(worktree: pathlib.Path) -> list[str]:
        if not others:
            others.append(server.commit(repo, {"other.txt": "another writer\n"}, "Other", branch))
        return edit(worktree)

    return apply, others


async def test_a_rejected_push_is_retried_at_once_on_the_new_head(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter, events: list[GitOperation]
) -> None:
    runs: list[int] = []
    first, others = _interfering(server, repo, set_runner(_path(0), "r.test/a:9"))

    def counted(worktree: pathlib.Path) -> list[str]:
        runs.append(1)
        return set_runner(_path(1), "r.test/b:9")(worktree)

    one, two = await asyncio.gather(
        writer.submit(_change(server, repo, first, "a")),
        writer.submit(_change(server, repo, counted, "b")),
    )
    assert one.commit == two.commit == server.head(repo)
    assert len(runs) == 2  # every edit of the batch ran again on the new head
    assert _git(server, repo, "rev-parse", "main~1").strip() == others[0]
    assert [c.subject for c in server.log(repo)] == [
        "Apply 2 catalog changes",
        "Other",
        "Initial commit",
    ]
    pushes = [(e.outcome, e.attempt, e.changes) for e in events if e.operation == "push"]
    assert pushes == [("rejected", 1, 2), ("ok", 2, 2)]


async def test_a_push_branch_moved_by_someone_else_is_retried_with_a_fresh_lease(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter, events: list[GitOperation]
) -> None:
    pushes = "ade/runner-updates"
    await writer.submit(
        _change(server, repo, set_runner(_path(0), "r.test/a:1"), "Use a:1", push_branch=pushes)
    )
    edit, others = _interfering(server, repo, set_runner(_path(1), "r.test/b:1"), pushes)
    result = await writer.submit(_change(server, repo, edit, "Use b:1", push_branch=pushes))
    assert result.commit == server.head(repo, pushes)
    assert [c.subject for c in server.log(repo, pushes)] == [
        "Use b:1",
        "Other",  # the other writer's commit on the branch is kept (replayed), not overwritten
        "Use a:1",
        "Initial commit",
    ]
    assert others[0] in {c.sha for c in server.log(repo, pushes)}  # on top of base already
    outcomes = [e.outcome for e in events if e.operation == "push"]
    assert outcomes == ["ok", "rejected", "ok"]
    assert server.log(repo)[0].subject == "Initial commit"


# -- the race: another writer pushes to the same branch several times a second --------

RACE_CHANGES = 20
STAGGER = 0.1  # the 20 changes are submitted over two seconds
BURST = 100


async def _submit_staggered(
    writer: CatalogWriter, server: gitserver.GitServer, repo: str
) -> list[tuple[float, Result]]:
    """Submit RACE_CHANGES changes, one every STAGGER seconds, each to its own file; each one's
    time from submit to result."""

    async def one(index: int) -> tuple[float, Result]:
        await asyncio.sleep(index * STAGGER)
        edit = set_runner(_path(index), f"r.test/env-{index}:v2")
        started = time.perf_counter()
        result = await writer.submit(_change(server, repo, edit, f"Use env-{index}:v2"))
        return time.perf_counter() - started, result

    return await asyncio.gather(*(one(index) for index in range(RACE_CHANGES)))


def _assert_every_edit_landed(server: gitserver.GitServer, repo: str, count: int) -> None:
    for index in range(count):
        assert f"runner: r.test/env-{index}:v2 " in _show(server, repo, "main", _path(index))


async def test_staggered_changes_and_a_burst_take_few_commits(
    server: gitserver.GitServer, tmp_path: pathlib.Path
) -> None:
    """Changes submitted one every STAGGER seconds, then BURST at once, all land; the burst in
    a commit or three. (Contention: `test_catalog_contention.py`, deterministic, and the figure
    of `tests/benchmarks/test_catalog_contention_figures.py`; the latencies here are printed,
    not asserted: they measure the machine.)"""
    writer = CatalogWriter(cache=CloneCache(tmp_path / "cache"))
    try:
        quiet = _new_repo(server, RACE_CHANGES)
        calm = await _submit_staggered(writer, server, quiet)
        _assert_every_edit_landed(server, quiet, RACE_CHANGES)
        calm_commits = len(server.log(quiet)) - 1

        # a burst: BURST changes submitted at once
        burst_repo = _new_repo(server, BURST)
        started = time.perf_counter()
        burst = await asyncio.gather(
            *(
                writer.submit(
                    _change(server, burst_repo, set_runner(_path(i), f"r.test/env-{i}:v2"))
                )
                for i in range(BURST)
            )
        )
        burst_seconds = time.perf_counter() - started
        _assert_every_edit_landed(server, burst_repo, BURST)
        burst_commits = len(server.log(burst_repo)) - 1
        assert all(result.changed for result in burst)
    finally:
        await writer.aclose()

    calm_median, calm_p95 = _figures([seconds for seconds, _ in calm])
    print(
        f"\n[catalog] {RACE_CHANGES} changes, one every {STAGGER * 1000:.0f} ms, window 200 ms:"
        f" submit->result median {calm_median * 1000:.0f} ms,"
        f" p95 {calm_p95 * 1000:.0f} ms; {calm_commits} commits"
        f"\n  burst of {BURST} changes at once: {burst_commits} commit(s) in"
        f" {burst_seconds * 1000:.0f} ms"
    )
    assert 1 <= calm_commits <= RACE_CHANGES
    assert 1 <= burst_commits <= 3


async def test_race_against_a_pusher_that_never_fetches(
    server: gitserver.GitServer, tmp_path: pathlib.Path
) -> None:
    """Against a writer faster than any fetch-then-push round trip, the batch either lands or,
    after its attempts, fails with the Transient `CatalogPushRejected`; never by force."""
    events: list[GitOperation] = []
    writer = CatalogWriter(
        cache=CloneCache(tmp_path / "cache"), max_attempts=4, metrics=events.append
    )
    repo = _new_repo(server)
    outcome: Result | BaseException
    try:
        async with _Pusher(server, repo, tmp_path / "pusher", sync_first=False) as pusher:
            try:
                outcome = await writer.submit(
                    _change(server, repo, set_runner(_path(0), "r.test/env-0:v2"))
                )
            except repository.CatalogPushRejected as error:
                outcome = error
    finally:
        await writer.aclose()
    _assert_nothing_of_the_pusher_lost(server, repo, pusher)
    pushes = [e for e in events if e.operation == "push"]
    if isinstance(outcome, Result):
        _assert_every_edit_landed(server, repo, 1)
    else:
        assert isinstance(outcome, errors.TransientError)
        assert outcome.reason == "CatalogPushRejected"
        assert [e.outcome for e in pushes] == ["rejected"] * 4
        assert "r.test/env-0:v2" not in _show(server, repo, "main", _path(0))
    print(
        f"\n[catalog] against a pusher that never fetches ({len(pusher.landed)} commits landed):"
        f" {'landed' if isinstance(outcome, Result) else 'CatalogPushRejected'} after"
        f" {len(pushes)} push attempts"
    )


async def test_a_clone_is_garbage_collected_every_so_many_uses(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    cache = CloneCache(tmp_path / "cache", gc_every=3)
    writer = CatalogWriter(cache=cache, window=0.01)
    try:
        clone = cache.path(url=server.url(repo), branch="main")
        packs = []
        for number in range(4):
            if number:  # another writer moved the branch: the fetch brings something
                server.commit(repo, {f"other-{number}.txt": f"{number}\n"}, f"Other {number}")
            await writer.submit(_change(server, repo, set_runner(_path(0), f"r.test/gc:{number}")))
            packs.append(len(list((clone / ".git" / "objects" / "pack").glob("*.pack"))))
    finally:
        await writer.aclose()
    # each fetch leaves a pack; the third reuse of the clone first folds them (and drops what
    # is unreachable since the shallow history moved on) into one
    assert packs == [1, 2, 3, 2]
    assert _show(server, repo, "main", _path(0)).count("r.test/gc:3") == 1


async def test_a_cancelled_submitter_withdraws_its_change(
    server: gitserver.GitServer, repo: str, writer: CatalogWriter
) -> None:
    withdrawn = asyncio.create_task(
        writer.submit(_change(server, repo, set_runner(_path(0), "r.test/gone:1"), "gone"))
    )
    kept = asyncio.create_task(
        writer.submit(_change(server, repo, set_runner(_path(1), "r.test/kept:1"), "kept"))
    )
    await asyncio.sleep(0)  # both are queued, their batch waits for the window
    withdrawn.cancel()
    result = await kept
    with pytest.raises(asyncio.CancelledError):
        await withdrawn
    assert result.files == (_path(1),)
    assert _show(server, repo, "main", _path(0)) == _definition(0)
    assert server.log(repo)[0].subject == "kept"


async def test_an_ssh_url_without_a_key_is_refused_as_invalid_credentials(
    writer: CatalogWriter,
) -> None:
    change = Change(
        url="ssh://git@127.0.0.1:1/catalog.git",
        branch="main",
        apply=set_runner(_path(0), "r/x:1"),
        message="m",
        author_name=AUTHOR[0],
        author_email=AUTHOR[1],
    )
    with pytest.raises(CredentialsInvalid, match="identity") as raised:
        await writer.submit(change)
    assert isinstance(raised.value, errors.StalledError)
