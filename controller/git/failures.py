"""git's failures: one family of typed errors, and the one reading of git's output (pure).

`GitError` and its subclasses are what any user of git raises; each is Stalled or Transient as
`controller.errors` means it. Who runs git, its `Purpose` ("source": reading a build source;
"catalog": writing to a catalog repository), decides the condition reason (`REASONS` of each
class: `SourceAuthFailed`, `CatalogAuthFailed`, ...) and a few words of the message; the error
and the classification are the same. `url` is redacted and `detail` is git's own words,
scrubbed (`credentials.scrub`).

git's (LC_ALL=C) output is read here only: `classify` names the error a server's answer means;
`CORRUPT` tells a damaged clone (not the server); `LOST_RACE` a push that lost a race to another
writer of the branch. `from_output` makes the typed error, with its message, from git's stderr.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Literal

from controller import errors
from controller.git import credentials as credentials_
from controller.git import refs
from controller.git.credentials import Credentials

Purpose = Literal["source", "catalog"]


class GitError(errors.ReconcileError):
    """A git operation failed. `url` is redacted; `ref` is the ref (for the catalog, the branch)
    it was about; `detail` is git's own words, scrubbed. The reason is `REASONS[purpose]`; a
    class has reasons only for the purposes that can meet it."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {
        "source": "SourceGitFailed",
        "catalog": "CatalogGitFailed",
    }

    def __init__(
        self, message: str, *, purpose: Purpose, url: str, ref: str, detail: str = ""
    ) -> None:
        super().__init__(self.REASONS[purpose], message)
        self.purpose: Purpose = purpose
        self.url = url
        self.ref = ref
        self.detail = detail

    @property
    def branch(self) -> str:
        """The branch written, for the catalog writer's callers (the same as `ref`)."""
        return self.ref

    def copy(self) -> GitError:
        """The same error as a new object: each submitter of a catalog batch raises its own."""
        return type(self)(
            self.message, purpose=self.purpose, url=self.url, ref=self.ref, detail=self.detail
        )


class AuthFailed(GitError, errors.StalledError):
    """The server refused the credentials, needs some, or lets them read but not push; or the
    SSH host key did not match."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {
        "source": "SourceAuthFailed",
        "catalog": "CatalogAuthFailed",
    }


class RepositoryNotFound(GitError, errors.StalledError):
    """No repository at the URL, or the credentials cannot see it (hosts answer alike)."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {
        "source": "SourceRepositoryNotFound",
        "catalog": "CatalogRepositoryNotFound",
    }


class RefNotFound(GitError, errors.StalledError):
    """No branch or tag of that name, or the commit does not exist on the server (the catalog
    writer's base branch: it never creates one)."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {
        "source": "SourceRefNotFound",
        "catalog": "CatalogBranchNotFound",
    }


class PathNotFound(GitError, errors.StalledError):
    """The commit has no folder at the source's path (missing, or a file)."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {"source": "SourcePathNotFound"}


class TreeRefused(GitError, errors.StalledError):
    """The folder holds something that cannot be materialized safely (a symlink leaving it)."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {"source": "SourceTreeRefused"}


class PushRefused(GitError, errors.StalledError):
    """The server refused the push itself (a protected branch, a hook): retrying cannot help."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {"catalog": "CatalogPushRefused"}


class PushRejected(GitError, errors.TransientError):
    """Every push attempt lost the race to another writer of the branch; retry later."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {"catalog": "CatalogPushRejected"}


class Unavailable(GitError, errors.TransientError):
    """Connection refused or reset, DNS, timeouts, HTTP 5xx, and any failure not recognized:
    retried with backoff, with git's words in the message."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {
        "source": "SourceUnavailable",
        "catalog": "CatalogUnavailable",
    }


THROTTLED_WAIT = 60.0
"""How long a git server that answered 429 is left alone. git does not pass the answer's
Retry-After on, so the operator waits what servers ask for (GitHub: at least a minute for its
secondary rate limits) rather than its usual 5 s backoff."""


class Throttled(Unavailable):
    """The server answered 429 (too many requests): asked again only after `THROTTLED_WAIT`."""

    REASONS: ClassVar[Mapping[Purpose, str]] = {
        "source": "SourceThrottled",
        "catalog": "CatalogThrottled",
    }

    def __init__(
        self, message: str, *, purpose: Purpose, url: str, ref: str, detail: str = ""
    ) -> None:
        super().__init__(message, purpose=purpose, url=url, ref=ref, detail=detail)
        self.retry_after = THROTTLED_WAIT
        self.paced = True


# -- reading git's output ------------------------------------------------------------------------

_PATTERNS: tuple[tuple[str, type[GitError]], ...] = (
    (r"not our ref|couldn't find remote ref|unadvertised object", RefNotFound),
    (
        r"repository '[^']*' not found|repository not found|returned error: 404",
        RepositoryNotFound,
    ),
    (r"does not appear to be a git repository|TF401019", RepositoryNotFound),
    (r"could not be found or you don't have permission", RepositoryNotFound),
    (r"could not read (username|password)|terminal prompts disabled", AuthFailed),
    (r"authentication failed|returned error: 40[13]|access denied", AuthFailed),
    (r"permission denied|permission to \S+ denied", AuthFailed),
    (r"host key verification failed|remote host identification has changed", AuthFailed),
    (r"returned error: 429|HTTP 429", Throttled),
    (r"returned error: 5\d\d|could not resolve|failed to connect", Unavailable),
    (r"couldn't connect|connection (refused|reset|timed out|closed)|timed out", Unavailable),
    (r"early EOF|hung up unexpectedly|RPC failed", Unavailable),
)
_CLASSIFICATION = tuple((re.compile(text, re.IGNORECASE), kind) for text, kind in _PATTERNS)


def classify(stderr: str) -> type[GitError] | None:
    """The error a server's answer (git's stderr) means, first match wins; None when nothing is
    recognized, which `from_output` takes as `Unavailable` (retrying a permanent failure with
    backoff costs little, stalling on a passing one would need a user to notice)."""
    for pattern, kind in _CLASSIFICATION:
        if pattern.search(stderr):
            return kind
    return None


CORRUPT = re.compile(
    r"corrupt|bad object|not a git repository|unable to read|loose object|object file .* empty"
    r"|invalid object|missing (blob|tree|commit)|bad tree|broken link|packed object|index file"
    r"|unknown index entry|bad signature|did not send all necessary objects|could not parse"
    r"|bad (revision|ref)|invalid (sha1|ref)|shallow file|unable to (create|write|lock)",
    re.IGNORECASE,
)
"""Failures that say the clone is damaged (not the server): discard it and clone again."""

LOST_RACE = re.compile(
    r"\[rejected\]|\[remote rejected\] \((failed to (update|lock) ref|cannot lock ref"
    r"|incorrect old value|atomic transaction failed|stale info)",
    re.IGNORECASE,
)
"""A push that lost a race (in a `git push --porcelain` summary): refused by the client (not a
fast-forward, stale lease) or by the server's compare-and-swap of the ref (another push landed
between advertisement and update)."""

_BOILERPLATE = re.compile(
    r"^(hint:|Please make sure you have the correct access rights|and the repository exists)"
)


def error_detail(stderr: str, credentials: Credentials) -> str:
    """git's last few messages, scrubbed, without boilerplate, kept short."""
    lines: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if line and not _BOILERPLATE.match(line) and line not in lines:
            lines.append(line)
    text = credentials_.scrub("; ".join(lines[-4:]), credentials)
    return text if len(text) <= 500 else "..." + text[-497:]


# -- the typed error for git's answer ------------------------------------------------------------


def from_output(
    stderr: str,
    *,
    purpose: Purpose,
    url: str,
    ref: str,
    credentials: Credentials,
    kind: type[GitError] | None = None,
    pushing: bool = False,
) -> GitError:
    """The typed error for git's `stderr` when it talked to `url` about `ref` (the catalog: a
    branch; `pushing` when it pushed): `kind`, else what `classify` reads, else `Unavailable`.
    The message names the URL (redacted) and the ref, says what to check, and ends with git's
    words; nothing in it shows a secret of `credentials`."""
    kind = kind or classify(stderr) or Unavailable
    shown = credentials_.scrub(url, credentials)
    detail = error_detail(stderr, credentials)
    message = _message(
        kind, purpose=purpose, url=shown, ref=ref, credentials=credentials, pushing=pushing
    )
    if detail:
        message += f": {detail}"
    message = credentials_.scrub(message, credentials)
    return kind(message, purpose=purpose, url=shown, ref=ref, detail=detail)


def _message(
    kind: type[GitError],
    *,
    purpose: Purpose,
    url: str,
    ref: str,
    credentials: Credentials,
    pushing: bool,
) -> str:
    if kind is AuthFailed:
        if credentials.secret:
            hint = f"check the credentials in Secret {credentials.secret!r}"
        elif credentials == Credentials():
            hint = "the repository needs credentials"
            hint += ": set secretRef" if purpose == "source" else ""
        else:
            hint = "check the credentials"
        if pushing:
            hint += "; they must allow pushing"
        return f"authentication to {url} failed ({hint})"
    if kind is RepositoryNotFound:
        return f"repository {url} not found, or the credentials cannot read it"
    if kind is RefNotFound and purpose == "catalog":
        return f"branch {ref!r} not found in {url}"
    if kind is RefNotFound:
        message = f"ref {ref!r} not found in {url}"
        if refs.SHORT_SHA.fullmatch(ref):
            message += " (give a commit as its full 40-character sha)"
        return message
    if purpose == "catalog":
        return f"git {'push to' if pushing else 'fetch from'} {url} ({ref!r}) failed"
    return f"git failed on {url} at {ref!r}"
