"""How git's stderr becomes a typed error, and what each error type tells the reconciler."""

from __future__ import annotations

import pathlib

import pytest

from controller import errors
from controller.sources import git

_NOT_READ = (
    "\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct"
)


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        # authentication
        (
            "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
            git.GitAuthFailed,
        ),
        (
            "remote: Support for password authentication was removed.\n"
            "fatal: Authentication failed for 'https://github.com/o/r.git/'",
            git.GitAuthFailed,
        ),
        (
            "remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'x'",
            git.GitAuthFailed,
        ),
        (
            "fatal: unable to access 'x': The requested URL returned error: 403",
            git.GitAuthFailed,
        ),
        (
            "remote: Permission to o/r.git denied to bot.\nfatal: unable to access 'x': "
            "The requested URL returned error: 403",
            git.GitAuthFailed,
        ),
        ("git@github.com: Permission denied (publickey)." + _NOT_READ, git.GitAuthFailed),
        (
            "No ED25519 host key is known for h.example and you have requested strict checking.\n"
            "Host key verification failed." + _NOT_READ,
            git.GitAuthFailed,
        ),
        # repository
        (
            "remote: Repository not found.\n"
            "fatal: repository 'https://github.com/o/missing.git/' not found",
            git.GitRepositoryNotFound,
        ),
        ("ERROR: Repository not found." + _NOT_READ, git.GitRepositoryNotFound),
        (
            "remote: TF401019: The Git repository with name or identifier r does not exist or you"
            " do not have permissions for the operation you are attempting.\n"
            "fatal: repository 'https://dev.azure.com/o/p/_git/r/' not found",
            git.GitRepositoryNotFound,
        ),
        (
            "remote: The project you were looking for could not be found or you don't have"
            " permission to view it.\nfatal: repository 'https://gitlab.com/o/r.git/' not found",
            git.GitRepositoryNotFound,
        ),
        (
            "fatal: 'o/r.git' does not appear to be a git repository" + _NOT_READ,
            git.GitRepositoryNotFound,
        ),
        (
            "fatal: unable to access 'x': The requested URL returned error: 404",
            git.GitRepositoryNotFound,
        ),
        # ref
        ("fatal: remote error: upload-pack: not our ref 0123456789abcdef", git.GitRefNotFound),
        ("fatal: couldn't find remote ref refs/heads/nope", git.GitRefNotFound),
        (
            "error: Server does not allow request for unadvertised object 0123abc",
            git.GitRefNotFound,
        ),
        # unavailable
        (
            "fatal: unable to access 'http://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1"
            " port 1 after 0 ms: Couldn't connect to server",
            git.GitUnavailable,
        ),
        ("fatal: unable to access 'x': Could not resolve host: h.invalid", git.GitUnavailable),
        ("fatal: unable to access 'x': The requested URL returned error: 502", git.GitUnavailable),
        ("fatal: unable to access 'x': The requested URL returned error: 503", git.GitUnavailable),
        ("fatal: unable to access 'x': The requested URL returned error: 429", git.GitUnavailable),
        (
            "ssh: connect to host h.example port 22: Connection refused" + _NOT_READ,
            git.GitUnavailable,
        ),
        ("ssh: connect to host h.example port 22: Connection timed out", git.GitUnavailable),
        (
            "ssh: Could not resolve hostname h.invalid: Name or service not known",
            git.GitUnavailable,
        ),
        ("error: RPC failed; curl 56 Recv failure\nfatal: early EOF", git.GitUnavailable),
        ("fatal: the remote end hung up unexpectedly", git.GitUnavailable),
        # anything else is retried
        ("fatal: something no one has seen before", git.GitUnavailable),
        ("", git.GitUnavailable),
    ],
)
def test_classify(stderr: str, kind: type[git.GitError]) -> None:
    assert git.classify(stderr) is kind


@pytest.mark.parametrize(
    ("kind", "base", "reason"),
    [
        (git.GitAuthFailed, errors.StalledError, "SourceAuthFailed"),
        (git.GitRepositoryNotFound, errors.StalledError, "SourceRepositoryNotFound"),
        (git.GitRefNotFound, errors.StalledError, "SourceRefNotFound"),
        (git.GitPathNotFound, errors.StalledError, "SourcePathNotFound"),
        (git.GitTreeRefused, errors.StalledError, "SourceTreeRefused"),
        (git.GitUnavailable, errors.TransientError, "SourceUnavailable"),
    ],
)
def test_error_types(
    kind: type[git.GitError], base: type[errors.ReconcileError], reason: str
) -> None:
    error = kind("the message", url="https://h.example/r.git", ref="main", detail="fatal: x")
    assert isinstance(error, base)
    assert isinstance(error, git.GitError)
    assert error.reason == reason
    assert error.message == str(error) == "the message"
    assert (error.url, error.ref, error.detail) == ("https://h.example/r.git", "main", "fatal: x")
    if isinstance(error, errors.TransientError):
        assert error.retry_after is None


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/repo.git",
        "git://h.example/r.git",
        "ext::sh -c touch% /tmp/pwned",
        "-uhttps://h.example/r.git",
        "/srv/repo.git",
        "https://alice:secret@h.example/r.git",
        "https://token@h.example/r.git",
    ],
)
async def test_refused_urls_never_reach_git(url: str) -> None:
    with pytest.raises(ValueError, match="URL") as caught:
        await git.ls_remote(url=url, ref="main", timeout=5)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("revision", "path"),
    [
        ("main", "."),
        ("0123abc", "."),
        ("a" * 40, "../up"),
        ("a" * 40, "/abs"),
        ("a" * 40, "x/../.."),
    ],
)
async def test_fetch_tree_refuses_bad_arguments_before_any_git(
    revision: str, path: str, tmp_path: pathlib.Path
) -> None:
    with pytest.raises(ValueError, match=r"revision|path"):
        await git.fetch_tree(
            url="https://h.example/r.git", revision=revision, path=path, dest=tmp_path / "d"
        )
