"""The one family of git errors and the one reading of git's output: the classifier on
stderr samples, the condition reason of each error per purpose, the messages each purpose shows,
and the patterns of a damaged clone and of a push that lost a race."""

from __future__ import annotations

import pytest

from controller import errors
from controller.git import failures
from controller.git.credentials import Credentials

_NOT_READ = (
    "\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct"
)


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        # authentication
        (
            "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
            failures.AuthFailed,
        ),
        (
            "remote: Support for password authentication was removed.\n"
            "fatal: Authentication failed for 'https://github.com/o/r.git/'",
            failures.AuthFailed,
        ),
        (
            "remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'x'",
            failures.AuthFailed,
        ),
        (
            "fatal: unable to access 'x': The requested URL returned error: 403",
            failures.AuthFailed,
        ),
        (
            "remote: Permission to o/r.git denied to bot.\nfatal: unable to access 'x': "
            "The requested URL returned error: 403",
            failures.AuthFailed,
        ),
        ("git@github.com: Permission denied (publickey)." + _NOT_READ, failures.AuthFailed),
        (
            "No ED25519 host key is known for h.example and you have requested strict checking.\n"
            "Host key verification failed." + _NOT_READ,
            failures.AuthFailed,
        ),
        # repository
        (
            "remote: Repository not found.\n"
            "fatal: repository 'https://github.com/o/missing.git/' not found",
            failures.RepositoryNotFound,
        ),
        ("ERROR: Repository not found." + _NOT_READ, failures.RepositoryNotFound),
        (
            "remote: TF401019: The Git repository with name or identifier r does not exist or you"
            " do not have permissions for the operation you are attempting.\n"
            "fatal: repository 'https://dev.azure.com/o/p/_git/r/' not found",
            failures.RepositoryNotFound,
        ),
        (
            "remote: The project you were looking for could not be found or you don't have"
            " permission to view it.\nfatal: repository 'https://gitlab.com/o/r.git/' not found",
            failures.RepositoryNotFound,
        ),
        (
            "fatal: 'o/r.git' does not appear to be a git repository" + _NOT_READ,
            failures.RepositoryNotFound,
        ),
        (
            "fatal: unable to access 'x': The requested URL returned error: 404",
            failures.RepositoryNotFound,
        ),
        # ref
        ("fatal: remote error: upload-pack: not our ref 0123456789abcdef", failures.RefNotFound),
        ("fatal: couldn't find remote ref refs/heads/nope", failures.RefNotFound),
        (
            "error: Server does not allow request for unadvertised object 0123abc",
            failures.RefNotFound,
        ),
        # unavailable
        (
            "fatal: unable to access 'http://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1"
            " port 1 after 0 ms: Couldn't connect to server",
            failures.Unavailable,
        ),
        ("fatal: unable to access 'x': Could not resolve host: h.invalid", failures.Unavailable),
        (
            "fatal: unable to access 'x': The requested URL returned error: 502",
            failures.Unavailable,
        ),
        (
            "fatal: unable to access 'x': The requested URL returned error: 503",
            failures.Unavailable,
        ),
        (
            "fatal: unable to access 'x': The requested URL returned error: 429",
            failures.Throttled,
        ),
        (
            "error: RPC failed; HTTP 429 curl 22 The requested URL returned error: 429",
            failures.Throttled,
        ),
        (
            "ssh: connect to host h.example port 22: Connection refused" + _NOT_READ,
            failures.Unavailable,
        ),
        ("ssh: connect to host h.example port 22: Connection timed out", failures.Unavailable),
        (
            "ssh: Could not resolve hostname h.invalid: Name or service not known",
            failures.Unavailable,
        ),
        ("error: RPC failed; curl 56 Recv failure\nfatal: early EOF", failures.Unavailable),
        ("fatal: the remote end hung up unexpectedly", failures.Unavailable),
        # anything else is not recognized (and retried as `Unavailable`)
        ("fatal: something no one has seen before", None),
        ("", None),
    ],
)
def test_classify(stderr: str, kind: type[failures.GitError] | None) -> None:
    assert failures.classify(stderr) is kind


@pytest.mark.parametrize(
    ("kind", "base", "purpose", "reason"),
    [
        (failures.GitError, errors.ReconcileError, "source", "SourceGitFailed"),
        (failures.GitError, errors.ReconcileError, "catalog", "CatalogGitFailed"),
        (failures.AuthFailed, errors.StalledError, "source", "SourceAuthFailed"),
        (failures.AuthFailed, errors.StalledError, "catalog", "CatalogAuthFailed"),
        (failures.RepositoryNotFound, errors.StalledError, "source", "SourceRepositoryNotFound"),
        (failures.RepositoryNotFound, errors.StalledError, "catalog", "CatalogRepositoryNotFound"),
        (failures.RefNotFound, errors.StalledError, "source", "SourceRefNotFound"),
        (failures.RefNotFound, errors.StalledError, "catalog", "CatalogBranchNotFound"),
        (failures.PathNotFound, errors.StalledError, "source", "SourcePathNotFound"),
        (failures.TreeRefused, errors.StalledError, "source", "SourceTreeRefused"),
        (failures.PushRefused, errors.StalledError, "catalog", "CatalogPushRefused"),
        (failures.PushRejected, errors.TransientError, "catalog", "CatalogPushRejected"),
        (failures.Unavailable, errors.TransientError, "source", "SourceUnavailable"),
        (failures.Unavailable, errors.TransientError, "catalog", "CatalogUnavailable"),
    ],
)
def test_reason_per_purpose(
    kind: type[failures.GitError],
    base: type[errors.ReconcileError],
    purpose: failures.Purpose,
    reason: str,
) -> None:
    error = kind("it failed", purpose=purpose, url="https://h/r.git", ref="main", detail="d")
    assert isinstance(error, base)
    assert error.reason == reason
    assert error.message == str(error) == "it failed"
    assert (error.url, error.ref, error.branch, error.detail) == (
        "https://h/r.git",
        "main",
        "main",
        "d",
    )
    if isinstance(error, errors.TransientError):
        assert error.retry_after is None
    copy = error.copy()
    assert type(copy) is kind
    assert copy is not error
    assert (copy.reason, copy.message, copy.url, copy.ref, copy.detail) == (
        reason,
        "it failed",
        error.url,
        "main",
        "d",
    )


def test_a_purpose_without_a_reason_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        failures.PushRejected("x", purpose="source", url="u", ref="r")


URL = "https://h.example/r.git"
NONE = Credentials()
BASIC = Credentials(username="bot", password="s3cr3t-Pa55", secret="git-creds")


@pytest.mark.parametrize(
    ("stderr", "purpose", "ref", "credentials", "pushing", "kind", "message"),
    [
        (
            "fatal: Authentication failed for 'x'",
            "source",
            "main",
            NONE,
            False,
            failures.AuthFailed,
            f"authentication to {URL} failed (the repository needs credentials: set secretRef)"
            ": fatal: Authentication failed for 'x'",
        ),
        (
            "fatal: Authentication failed for 'x'",
            "catalog",
            "main",
            NONE,
            False,
            failures.AuthFailed,
            f"authentication to {URL} failed (the repository needs credentials)"
            ": fatal: Authentication failed for 'x'",
        ),
        (
            "remote: Permission to o/r.git denied to bot (s3cr3t-Pa55).",
            "catalog",
            "main",
            BASIC,
            True,
            failures.AuthFailed,
            f"authentication to {URL} failed (check the credentials in Secret 'git-creds'; they"
            " must allow pushing): remote: Permission to o/r.git denied to bot (***).",
        ),
        (
            "remote: Repository not found.",
            "source",
            "main",
            NONE,
            False,
            failures.RepositoryNotFound,
            f"repository {URL} not found, or the credentials cannot read it"
            ": remote: Repository not found.",
        ),
        (
            "fatal: couldn't find remote ref refs/heads/rel",
            "catalog",
            "rel",
            NONE,
            False,
            failures.RefNotFound,
            f"branch 'rel' not found in {URL}: fatal: couldn't find remote ref refs/heads/rel",
        ),
        (
            "",
            "source",
            "0123abc",
            NONE,
            False,
            failures.RefNotFound,
            f"ref '0123abc' not found in {URL} (give a commit as its full 40-character sha)",
        ),
        (
            "fatal: the remote end hung up unexpectedly",
            "source",
            "v1",
            NONE,
            False,
            failures.Unavailable,
            f"git failed on {URL} at 'v1': fatal: the remote end hung up unexpectedly",
        ),
        (
            "hint: something\nfatal: no one has seen this",
            "catalog",
            "main",
            NONE,
            True,
            failures.Unavailable,
            f"git push to {URL} ('main') failed: fatal: no one has seen this",
        ),
        (
            "fatal: no one has seen this",
            "catalog",
            "main",
            NONE,
            False,
            failures.Unavailable,
            f"git fetch from {URL} ('main') failed: fatal: no one has seen this",
        ),
    ],
)
def test_from_output_says_it_in_the_words_of_its_purpose(
    stderr: str,
    purpose: failures.Purpose,
    ref: str,
    credentials: Credentials,
    pushing: bool,
    kind: type[failures.GitError],
    message: str,
) -> None:
    error = failures.from_output(
        stderr,
        purpose=purpose,
        url=URL,
        ref=ref,
        credentials=credentials,
        pushing=pushing,
        kind=None if stderr else kind,  # no words of git's: the caller names the error
    )
    assert type(error) is kind
    assert error.message == message
    assert (error.url, error.ref, error.purpose) == (URL, ref, purpose)
    assert "s3cr3t" not in error.detail


@pytest.mark.parametrize(
    ("summary", "lost"),
    [
        ("[rejected] (fetch first)", True),
        ("[rejected] (non-fast-forward)", True),
        ("[rejected] (stale info)", True),
        ("[remote rejected] (failed to update ref)", True),
        ("[remote rejected] (cannot lock ref 'refs/heads/main': is at 1 but expected 2)", True),
        ("[remote rejected] (pre-receive hook declined)", False),
        ("[remote rejected] (protected branch hook declined)", False),
        ("[remote failure] (remote failed to report status)", False),
    ],
)
def test_a_push_that_lost_a_race_is_told_from_a_refusal(summary: str, lost: bool) -> None:
    assert bool(failures.LOST_RACE.search(summary)) is lost


@pytest.mark.parametrize(
    ("stderr", "damaged"),
    [
        ("error: object file .git/objects/ab/cdef is empty", True),
        ("fatal: bad object HEAD", True),
        ("fatal: not a git repository (or any of the parent directories): .git", True),
        ("fatal: Unable to create '/c/.git/index.lock': File exists.", True),
        ("fatal: repository 'https://h/r.git/' not found", False),
        ("fatal: Authentication failed for 'x'", False),
    ],
)
def test_a_damaged_clone_is_told_from_a_server_answer(stderr: str, damaged: bool) -> None:
    assert bool(failures.CORRUPT.search(stderr)) is damaged


@pytest.mark.parametrize("purpose", ["source", "catalog"])
def test_a_throttling_server_is_left_alone_as_servers_ask(purpose: failures.Purpose) -> None:
    """git does not pass a 429's Retry-After on: the wait is what servers ask for (a minute),
    held against every cause of a reconcile (`paced`), and copies keep it."""
    error = failures.from_output(
        "fatal: unable to access 'http://g.example/r.git/': The requested URL returned error: 429",
        purpose=purpose,
        url="http://g.example/r.git",
        ref="main",
        credentials=Credentials(),
    )
    assert isinstance(error, failures.Throttled)
    assert isinstance(error, errors.TransientError)
    assert error.reason == ("SourceThrottled" if purpose == "source" else "CatalogThrottled")
    assert (error.retry_after, error.paced) == (failures.THROTTLED_WAIT, True)
    copied = error.copy()
    assert isinstance(copied, failures.Throttled)
    assert (copied.retry_after, copied.paced) == (60.0, True)
    assert "http://g.example/r.git" in error.message
