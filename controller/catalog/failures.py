"""The catalog writer's failures: typed errors, and the git output that tells them apart.

Errors are typed (`CatalogError` subclasses, with condition reasons `Catalog*`, Stalled or
Transient as `controller.errors` means it); `url` is redacted and `detail` is git's own words,
scrubbed (`credentials.scrub`). `KINDS` maps the classification of `controller.sources.git` onto
them. Two patterns read git's output: `CORRUPT`, a damaged clone (not the server), which the
driver raises as `Damaged` and answers by discarding the clone and cloning again; `LOST_RACE`, a
push that lost a race to another writer of the branch, which the writer retries.
"""

from __future__ import annotations

import re
from typing import ClassVar

from controller import errors
from controller.sources import git as git_


class CatalogError(errors.ReconcileError):
    """Writing to the catalog repository failed. `url` is redacted; `detail` is git's own words,
    scrubbed; `branch` is the branch written (the push branch when there is one)."""

    REASON: ClassVar[str] = "CatalogGitFailed"

    def __init__(self, message: str, *, url: str, branch: str, detail: str = "") -> None:
        super().__init__(self.REASON, message)
        self.url = url
        self.branch = branch
        self.detail = detail

    def copy(self) -> CatalogError:
        """The same error as a new object: each submitter of a batch raises its own."""
        return type(self)(self.message, url=self.url, branch=self.branch, detail=self.detail)


class CatalogAuthFailed(CatalogError, errors.StalledError):
    """The server refused the credentials, needs some, or lets them read but not push."""

    REASON = "CatalogAuthFailed"


class CatalogRepositoryNotFound(CatalogError, errors.StalledError):
    """No repository at the URL, or the credentials cannot see it (hosts answer alike)."""

    REASON = "CatalogRepositoryNotFound"


class CatalogBranchNotFound(CatalogError, errors.StalledError):
    """The base branch does not exist (the writer never creates a base branch)."""

    REASON = "CatalogBranchNotFound"


class CatalogPushRefused(CatalogError, errors.StalledError):
    """The server refused the push itself (a protected branch, a hook): retrying cannot help."""

    REASON = "CatalogPushRefused"


class CatalogPushRejected(CatalogError, errors.TransientError):
    """Every push attempt lost the race to another writer of the branch; retry later."""

    REASON = "CatalogPushRejected"


class CatalogUnavailable(CatalogError, errors.TransientError):
    """Network, server, time-out or any failure not recognized; retry with backoff."""

    REASON = "CatalogUnavailable"


KINDS: dict[type[git_.GitError], type[CatalogError]] = {
    git_.GitAuthFailed: CatalogAuthFailed,
    git_.GitRepositoryNotFound: CatalogRepositoryNotFound,
    git_.GitRefNotFound: CatalogBranchNotFound,
}

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
"""A push that lost a race: refused by the client (not a fast-forward, stale lease) or by the
server's compare-and-swap of the ref (another push landed between advertisement and update)."""


class Damaged(Exception):
    """The clone is damaged; raised inside `Git` only, and answered by recloning once."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
