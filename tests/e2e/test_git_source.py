"""`controller.sources.git` against a real git server (git http-backend behind Basic auth).

Resolving branches, tags and shas; the typed errors a reconcile step sees (auth, missing
repository or ref, server down, timeout), with no secret in any message or log; materializing a
folder of a commit byte for byte with its modes; and pushes through the server, which catalog
write-back will rely on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator

import pytest

from controller import errors
from controller.git.credentials import Credentials, CredentialsInvalid
from controller.sources import git
from tests.env import gitserver

pytestmark = pytest.mark.e2e

PASSWORD = "pa:ss@w0rd/ünï-7Q"
TOKEN = "tok-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ALICE = Credentials(username="alice", password=PASSWORD, secret="git-creds")

DOCKERFILE = "FROM mcr.microsoft.com/deployment-environments/runners/core:latest\n"
DEPLOY = "#!/bin/bash\nset -euo pipefail\necho deploy\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gitserver.GitServer]:
    folder = tmp_path_factory.mktemp("git-server")
    with gitserver.running(folder, {"alice": PASSWORD}, tokens={TOKEN: "bot"}) as running:
        yield running


@pytest.fixture
def repo(server: gitserver.GitServer) -> str:
    """A fresh repository with an ADE runner folder, a shared folder and a tag-worthy history."""
    name = f"runners-{uuid.uuid4().hex[:8]}"
    server.create_repo(
        name,
        {
            "bicep/Dockerfile": DOCKERFILE,
            "bicep/scripts/deploy.sh": DEPLOY,
            "bicep/scripts/delete.sh": "#!/bin/bash\necho delete\n",
            "bicep/.gitattributes": "*.sh text eol=crlf\nDockerfile export-ignore\n",
            "README.md": "runners\n",
        },
        executable={"bicep/scripts/deploy.sh", "bicep/scripts/delete.sh"},
    )
    return name


@pytest.fixture
def scratch(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Where the module makes its scratch directories, to check they are all removed."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _git(*args: str, cwd: pathlib.Path) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=gitserver.git_env(cwd),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"git {args[0]}: {result.stderr}"
    return result.stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- ls_remote ---------------------------------------------------------------------------------


async def test_branch_resolves_to_its_head(
    server: gitserver.GitServer, repo: str, scratch: pathlib.Path
) -> None:
    sha = await git.ls_remote(url=server.url(repo), ref="main", credentials=ALICE, timeout=30)
    assert sha == server.head(repo, "main")
    assert [r.user for r in server.requests_for(repo) if r.status == 200] != []
    assert all(r.user == "alice" for r in server.requests_for(repo) if r.status == 200)
    assert list(scratch.iterdir()) == []


async def test_a_new_commit_changes_the_revision(server: gitserver.GitServer, repo: str) -> None:
    before = await git.ls_remote(url=server.url(repo), ref="main", credentials=ALICE, timeout=30)
    after_commit = server.commit(repo, {"bicep/scripts/deploy.sh": DEPLOY + "echo v2\n"}, "v2")
    after = await git.ls_remote(url=server.url(repo), ref="main", credentials=ALICE, timeout=30)
    assert after == after_commit != before


async def test_tags_lightweight_and_annotated_resolve_to_the_commit(
    server: gitserver.GitServer, repo: str
) -> None:
    first = server.head(repo)
    server.tag(repo, "v1.0.0")
    server.tag(repo, "v1.0.1", message="annotated release")
    server.commit(repo, {"README.md": "later\n"}, "later")
    for tag in ("v1.0.0", "v1.0.1", "refs/tags/v1.0.1"):
        assert await git.ls_remote(
            url=server.url(repo), ref=tag, credentials=ALICE, timeout=30
        ) == (first), tag
    tag_object = _git("--git-dir", str(server.path(repo)), "rev-parse", "v1.0.1", cwd=server.folder)
    assert tag_object != first  # an annotated tag has its own object: it was peeled


async def test_a_branch_wins_over_a_tag_of_the_same_name(
    server: gitserver.GitServer, repo: str
) -> None:
    tagged = server.head(repo)
    server.tag(repo, "release")
    branch_head = server.commit(repo, {"README.md": "release branch\n"}, "r", branch="release")
    found = await git.ls_remote(url=server.url(repo), ref="release", credentials=ALICE, timeout=30)
    assert found == branch_head != tagged
    by_ref = await git.ls_remote(
        url=server.url(repo), ref="refs/tags/release", credentials=ALICE, timeout=30
    )
    assert by_ref == tagged


async def test_a_full_sha_is_checked_on_the_server(
    server: gitserver.GitServer, repo: str, scratch: pathlib.Path
) -> None:
    old = server.head(repo)
    server.commit(repo, {"README.md": "newer\n"}, "newer")
    found = await git.ls_remote(
        url=server.url(repo), ref=old.upper(), credentials=ALICE, timeout=30
    )
    assert found == old
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(git.GitRefNotFound) as caught:
        await git.ls_remote(url=server.url(repo), ref=missing, credentials=ALICE, timeout=30)
    assert missing in caught.value.message
    with pytest.raises(git.GitRefNotFound, match="full 40-character sha"):
        await git.ls_remote(url=server.url(repo), ref=old[:12], credentials=ALICE, timeout=30)
    assert list(scratch.iterdir()) == []


async def test_bearer_token(server: gitserver.GitServer, repo: str) -> None:
    creds = Credentials(bearer_token=TOKEN)
    sha = await git.ls_remote(url=server.url(repo), ref="main", credentials=creds, timeout=30)
    assert sha == server.head(repo)
    assert any(r.user == "bot" for r in server.requests_for(repo))


# -- errors ------------------------------------------------------------------------------------


def _everything_shown(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), repr(error.args), *traceback.format_exception(error)]
        + [str(value) for value in vars(error).values()]
    )


async def test_wrong_password_is_auth_failed_and_the_password_shows_nowhere(
    server: gitserver.GitServer, repo: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng:pa$$w0rd@hunter2"
    creds = Credentials(username="alice", password=wrong, secret="git-creds")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(git.GitAuthFailed) as caught:
        await git.ls_remote(url=server.url(repo), ref="main", credentials=creds, timeout=30)
    error = caught.value
    assert isinstance(error, errors.StalledError)
    assert error.reason == "SourceAuthFailed"
    assert server.url(repo) in error.message
    assert "Secret 'git-creds'" in error.message
    assert error.ref == "main"
    shown = _everything_shown(error) + caplog.text + server.backend_log.read_text()
    shown += repr(server.requests)
    assert caplog.text  # the module did log its commands
    for secret in (wrong, base64.b64encode(f"alice:{wrong}".encode()).decode(), PASSWORD):
        assert secret not in shown
    assert not [r for r in server.requests_for(repo) if r.status == 200 and r.user is None]


async def test_no_credentials_says_to_set_a_secret(server: gitserver.GitServer, repo: str) -> None:
    with pytest.raises(git.GitAuthFailed, match="set secretRef"):
        await git.ls_remote(url=server.url(repo), ref="main", timeout=30)


async def test_missing_repository(server: gitserver.GitServer) -> None:
    url = server.url("no-such-repo")
    with pytest.raises(git.GitRepositoryNotFound) as caught:
        await git.ls_remote(url=url, ref="main", credentials=ALICE, timeout=30)
    assert isinstance(caught.value, errors.StalledError)
    assert caught.value.reason == "SourceRepositoryNotFound"
    assert url in caught.value.message
    assert PASSWORD not in _everything_shown(caught.value)


async def test_missing_branch(server: gitserver.GitServer, repo: str) -> None:
    with pytest.raises(git.GitRefNotFound) as caught:
        await git.ls_remote(
            url=server.url(repo), ref="no-such-branch", credentials=ALICE, timeout=30
        )
    error = caught.value
    assert isinstance(error, errors.StalledError)
    assert error.reason == "SourceRefNotFound"
    assert error.message == f"ref 'no-such-branch' not found in {server.url(repo)}"
    assert (error.url, error.ref) == (server.url(repo), "no-such-branch")


async def test_server_down_is_transient(tmp_path: pathlib.Path) -> None:
    with gitserver.running(tmp_path / "gone", {"alice": PASSWORD}) as stopped:
        stopped.create_repo("r", {"a": "b"})
        url = stopped.url("r")
        assert await git.ls_remote(url=url, ref="main", credentials=ALICE, timeout=30)
    with pytest.raises(git.GitUnavailable) as caught:
        await git.ls_remote(url=url, ref="main", credentials=ALICE, timeout=30)
    error = caught.value
    assert isinstance(error, errors.TransientError)
    assert error.reason == "SourceUnavailable"
    assert url in error.message
    assert "Couldn't connect" in error.detail or "Failed to connect" in error.detail


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_timeout_is_transient_and_leaves_no_process(scratch: pathlib.Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/never.git"
        started = time.monotonic()
        with pytest.raises(git.GitUnavailable, match=r"timed out after 1s") as caught:
            await git.ls_remote(url=url, ref="main", credentials=ALICE, timeout=1)
        assert time.monotonic() - started < 10
    assert caught.value.url == url
    assert _processes_mentioning(url) == []
    assert list(scratch.iterdir()) == []


async def test_cancellation_kills_git(scratch: pathlib.Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/never.git"
        task = asyncio.create_task(git.ls_remote(url=url, ref="main", timeout=60))
        deadline = time.monotonic() + 10
        while not _processes_mentioning(url):
            assert time.monotonic() < deadline, "git never started"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert _processes_mentioning(url) == []
    assert list(scratch.iterdir()) == []


async def test_ssh_is_wired_to_a_real_ssh_client(scratch: pathlib.Path) -> None:
    """No SSH server here: a refused connection proves ssh accepted every option given."""
    url = f"ssh://git@127.0.0.1:{_free_port()}/org/repo.git"
    creds = Credentials(
        identity=b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        known_hosts=b"127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5\n",
    )
    with pytest.raises(git.GitUnavailable, match="Connection refused"):
        await git.ls_remote(url=url, ref="main", credentials=creds, timeout=30)
    assert list(scratch.iterdir()) == []


async def test_a_secret_of_the_wrong_kind_is_named(server: gitserver.GitServer, repo: str) -> None:
    with pytest.raises(CredentialsInvalid, match="key 'username' is required"):
        await git.ls_remote(
            url=server.url(repo), ref="main", credentials=Credentials(password="x"), timeout=30
        )


# -- fetch_tree --------------------------------------------------------------------------------


def _modes(folder: pathlib.Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): oct(path.lstat().st_mode & 0o777)
        for path in sorted(folder.rglob("*"))
    }


async def test_fetch_tree_writes_the_folder_byte_for_byte_with_modes(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path, scratch: pathlib.Path
) -> None:
    sha = server.commit(repo, {}, "links", symlinks={"bicep/scripts/current.sh": "deploy.sh"})
    dest = tmp_path / "context"
    epoch = await git.fetch_tree(
        url=server.url(repo), revision=sha, path="bicep", dest=dest, credentials=ALICE, timeout=60
    )
    # the commit's time: what a reproducible build stamps
    assert epoch == server.commit_time(repo, sha) > 0
    assert _modes(dest) == {
        ".gitattributes": "0o644",
        "Dockerfile": "0o644",  # export-ignore does not apply: the build needs it
        "scripts": "0o755",
        "scripts/current.sh": "0o777",
        "scripts/delete.sh": "0o755",
        "scripts/deploy.sh": "0o755",
    }
    assert (dest / "scripts" / "deploy.sh").read_bytes() == DEPLOY.encode()  # LF kept, no CRLF
    assert (dest / "Dockerfile").read_text() == DOCKERFILE
    assert os.readlink(dest / "scripts" / "current.sh") == "deploy.sh"
    assert not (dest / "README.md").exists()
    assert list(scratch.iterdir()) == []


async def test_fetch_tree_of_the_root_and_of_an_older_commit(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    old = server.head(repo)
    server.commit(repo, {"README.md": "new\n", "bicep/Dockerfile": None}, "drop the Dockerfile")
    await git.fetch_tree(
        url=server.url(repo), revision=old, path=".", dest=tmp_path / "root", credentials=ALICE
    )
    assert (tmp_path / "root" / "README.md").read_text() == "runners\n"
    assert (tmp_path / "root" / "bicep" / "Dockerfile").exists()
    assert not (tmp_path / "root" / ".git").exists()


async def test_fetch_tree_refuses_a_symlink_leaving_the_folder(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    sha = server.commit(
        repo,
        {},
        "escape",
        symlinks={"bicep/readme": "../README.md", "bicep/passwd": "/etc/passwd"},
    )
    dest = tmp_path / "context"
    with pytest.raises(git.GitTreeRefused) as caught:
        await git.fetch_tree(
            url=server.url(repo), revision=sha, path="bicep", dest=dest, credentials=ALICE
        )
    assert isinstance(caught.value, errors.StalledError)
    assert "bicep/" in caught.value.message
    assert "leaves the folder 'bicep'" in caught.value.message
    assert list(dest.iterdir()) == []
    # the same links are fine when the folder fetched contains their targets... but not /etc
    with pytest.raises(git.GitTreeRefused, match="/etc/passwd"):
        await git.fetch_tree(
            url=server.url(repo), revision=sha, path=".", dest=tmp_path / "root", credentials=ALICE
        )


async def test_fetch_tree_missing_folder_or_a_file(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    sha = server.head(repo)
    for path in ("terraform", "README.md"):
        with pytest.raises(git.GitPathNotFound) as caught:
            await git.fetch_tree(
                url=server.url(repo),
                revision=sha,
                path=path,
                dest=tmp_path / path,
                credentials=ALICE,
            )
        assert caught.value.reason == "SourcePathNotFound"
        assert f"folder {path!r} not found" in caught.value.message


async def test_fetch_tree_of_a_commit_the_server_does_not_have(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    with pytest.raises(git.GitRefNotFound):
        await git.fetch_tree(
            url=server.url(repo),
            revision="0123456789abcdef0123456789abcdef01234567",
            path="bicep",
            dest=tmp_path / "context",
            credentials=ALICE,
        )


# -- the server itself: pushes (catalog write-back), gzip and chunked bodies -------------------


def test_push_through_the_server(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    work = tmp_path / "work"
    _git("clone", "--quiet", server.url_with_user(repo), str(work), cwd=tmp_path)
    (work / "Environments").mkdir()
    (work / "Environments" / "environment.yaml").write_text("runner: contoso.azurecr.io/ade:1\n")
    (work / "blob.bin").write_bytes(os.urandom(2 * 1024 * 1024))  # > http.postBuffer: chunked
    _git("add", "-A", cwd=work)
    _git("commit", "--quiet", "-m", "Use runner image contoso.azurecr.io/ade:1", cwd=work)
    _git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    pushed = _git("rev-parse", "HEAD", cwd=work)
    assert server.head(repo) == pushed
    assert server.log(repo)[0] == gitserver.Commit(
        pushed, "Use runner image contoso.azurecr.io/ade:1"
    )
    receive = [r for r in server.requests_for(repo) if r.path.endswith("/git-receive-pack")]
    assert receive
    assert {r.user for r in receive} == {"alice"}
    assert any(r.chunked for r in receive)
    assert all(r.status == 200 for r in receive)


def test_a_push_without_credentials_is_refused(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    work = tmp_path / "work"
    _git("clone", "--quiet", server.url_with_user(repo), str(work), cwd=tmp_path)
    _git("commit", "--quiet", "--allow-empty", "-m", "sneaky", cwd=work)
    before = server.head(repo)
    result = subprocess.run(
        ["git", "push", server.url(repo), "HEAD:main"],
        cwd=work,
        env=gitserver.git_env(work),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "terminal prompts disabled" in result.stderr
    assert server.head(repo) == before


def test_gzip_request_bodies(
    server: gitserver.GitServer, repo: str, tmp_path: pathlib.Path
) -> None:
    """git gzips an upload-pack request over 1 KiB: forty distinct branch tips make one."""
    work = tmp_path / "work"
    _git("clone", "--quiet", server.url_with_user(repo), str(work), cwd=tmp_path)
    for index in range(40):
        _git("checkout", "--quiet", "-B", f"feature-{index}", "origin/main", cwd=work)
        _git("commit", "--quiet", "--allow-empty", "-m", f"feature {index}", cwd=work)
    _git("push", "--quiet", "origin", "--all", cwd=work)
    copy = tmp_path / "copy"
    _git("clone", "--quiet", "--mirror", server.url_with_user(repo), str(copy), cwd=tmp_path)
    assert len(_git("for-each-ref", "refs/heads", cwd=copy).splitlines()) == 41
    assert any(r.content_encoding == "gzip" and r.status == 200 for r in server.requests_for(repo))
