"""GitHub (and GitHub Enterprise) pull requests through PyGithub: the `pulls.Host` of one
repository.

PyGithub is synchronous: each call runs in a worker thread. Its own waits are turned off (no
retries, no pause between requests): a failure is mapped at once to the operator's errors and the
reconcile's backoff decides when to try again, paced by GitHub's `Retry-After` (or the reset time
of a spent rate limit) so no reconcile calls GitHub sooner than it asked.

| GitHub says                                  | the RunnerImage says                             |
| -------------------------------------------- | ------------------------------------------------ |
| 401                                          | Stalled `PullRequestAuthFailed`                  |
| 403/429 with a rate limit spent              | `PullRequestHostUnavailable`, retried when asked |
| 403 otherwise                                | Stalled `PullRequestForbidden`                   |
| 404 (GitHub's answer to a private repository | Stalled `PullRequestRepositoryNotFound`          |
|   the token cannot see, too)                 |                                                  |
| 422 "A pull request already exists"          | the existing one is used                         |
| 422 "No commits between"                     | nothing to merge: the base has it all            |
| 422 otherwise                                | Stalled `PullRequestRefused`, GitHub's message   |
| 5xx, unreachable, timed out                  | `PullRequestHostUnavailable`, retried            |

The token never appears in a message: GitHub's messages do not echo it, and URLs are redacted.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import github
import requests
from github import Auth, Github

from controller import errors
from controller.hosting import pulls

T = TypeVar("T")

TIMEOUT = 15
FIELD = "spec.catalog.pullRequest"


def repository_of(url: str) -> str:
    """`owner/name` from a git URL (`https://github.com/owner/name.git`, `git@host:owner/name`);
    `ValueError` when it has fewer than two path segments."""
    path = urllib.parse.urlsplit(url).path if "://" in url else url.partition(":")[2]
    parts = [part for part in path.removesuffix("/").removesuffix(".git").split("/") if part]
    if len(parts) < 2:
        raise ValueError(f"cannot tell the repository (owner/name) of {errors.redact(url)!r}")
    return "/".join(parts[-2:])


def api_url_of(url: str) -> str | None:
    """GitHub's API for a git URL on github.com; None for another host (GitHub Enterprise's is
    `https://<host>/api/v3`: named in the spec)."""
    if "://" in url:
        host = urllib.parse.urlsplit(url).hostname
    else:
        host = url.partition("@")[2].partition(":")[0]
    return "https://api.github.com" if host in ("github.com", "www.github.com") else None


class GitHubRepository:
    """`pulls.Host` for `repository` (`owner/name`) at `api_url`, authenticated by `token`: a
    token, or a GitHub App installation whose tokens PyGithub asks for (and renews)."""

    name = "GitHub"

    def __init__(self, *, api_url: str, repository: str, token: pulls.Credential) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.owner = repository.partition("/")[0]
        auth: Auth.Auth
        if isinstance(token, pulls.GitHubApp):  # installation tokens, renewed before they lapse
            app = Auth.AppAuth(token.app_id, token.private_key)
            auth = app.get_installation_auth(token.installation_id)
        else:
            auth = Auth.Token(token)
        self._client = Github(
            auth=auth,
            base_url=self.api_url,
            timeout=TIMEOUT,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,  # no request until one is needed
        )
        self._repo = self._client.get_repo(repository)

    async def find_open(self, *, head: str, base: str) -> pulls.PullRequest | None:
        def find() -> pulls.PullRequest | None:
            listed = self._repo.get_pulls(state="open", head=f"{self.owner}:{head}", base=base)
            for pull in listed:
                return _pull(pull)
            return None

        return await self._call(find, "list the open pull requests")

    async def get(self, number: int) -> pulls.PullRequest | None:
        def get() -> pulls.PullRequest | None:
            try:
                return _pull(self._repo.get_pull(number))
            except github.UnknownObjectException:
                return None

        return await self._call(get, f"read pull request #{number}", missing_is_none=True)

    async def open(
        self, *, head: str, base: str, title: str, body: str
    ) -> pulls.PullRequest | None:
        def create() -> pulls.PullRequest | None:
            try:
                return _pull(self._repo.create_pull(base=base, head=head, title=title, body=body))
            except github.GithubException as error:
                if error.status != 422:
                    raise
                said = _messages(error.data)
                if "no commits between" in said.lower():
                    return None
                if "already exists" in said.lower():
                    for pull in self._repo.get_pulls(
                        state="open", head=f"{self.owner}:{head}", base=base
                    ):
                        return _pull(pull)
                raise

        return await self._call(create, f"open a pull request from {head!r} into {base!r}")

    async def contents(self, number: int) -> pulls.Contents:
        def read() -> pulls.Contents:
            pull = self._repo.get_pull(number)
            commits = tuple(
                (c.sha, (c.commit.message or "").partition("\n")[0]) for c in pull.get_commits()
            )
            files = tuple(sorted(f.filename for f in pull.get_files()))
            return pulls.Contents(commits, files)

        return await self._call(read, f"read what pull request #{number} holds")

    async def edit(self, number: int, *, title: str, body: str) -> pulls.PullRequest:
        def edit() -> pulls.PullRequest:
            pull = self._repo.get_pull(number)
            pull.edit(title=title, body=body)
            return _pull(pull)

        return await self._call(edit, f"update pull request #{number}")

    async def _call(self, call: Callable[[], T], what: str, *, missing_is_none: bool = False) -> T:
        try:
            return await asyncio.to_thread(call)
        except github.GithubException as error:
            raise self._mapped(error, what) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            raise errors.TransientError(
                "PullRequestHostUnavailable",
                f"cannot {what} on {self._where}: {type(error).__name__}",
            ) from None

    @property
    def _where(self) -> str:
        return f"GitHub {self.repository} ({errors.redact(self.api_url)})"

    def _mapped(self, error: github.GithubException, what: str) -> errors.ReconcileError:
        said = _messages(error.data) or f"HTTP {error.status}"
        headers = {k.lower(): v for k, v in (error.headers or {}).items()}
        where = self._where
        if error.status == 401:
            return errors.StalledError(
                "PullRequestAuthFailed",
                f"{FIELD}: GitHub refused the token ({said}) when asked to {what} on {where}",
            )
        wait = _wait(headers)
        if error.status == 429 or (error.status == 403 and wait is not None):
            return errors.TransientError(
                "PullRequestHostUnavailable",
                f"GitHub's rate limit: cannot {what} on {where} for {wait or 60:.0f} s ({said})",
                retry_after=wait or 60.0,
                paced=True,
            )
        if error.status == 403:
            return errors.StalledError(
                "PullRequestForbidden",
                f"{FIELD}: the token may not {what} on {where} ({said})",
            )
        if error.status == 404:
            return errors.StalledError(
                "PullRequestRepositoryNotFound",
                f"{FIELD}: {where} not found, or the token cannot see it ({said})",
            )
        if error.status == 422:
            return errors.StalledError(
                "PullRequestRefused", f"GitHub refused to {what} on {where}: {said}"
            )
        return errors.TransientError(
            "PullRequestHostUnavailable", f"cannot {what} on {where}: HTTP {error.status} ({said})"
        )


def _pull(pull: Any) -> pulls.PullRequest:
    state: pulls.State = "merged" if pull.merged else "open" if pull.state == "open" else "closed"
    return pulls.PullRequest(
        number=int(pull.number),
        url=str(pull.html_url),
        state=state,
        head_sha=str(pull.head.sha),
        title=str(pull.title or ""),
        body=str(pull.body or ""),
    )


def _messages(data: Any) -> str:
    """GitHub's error text: its `message` and each error's `message` (or field and code)."""
    if not isinstance(data, Mapping):
        return str(data or "")[:300]
    parts = [str(data.get("message") or "")]
    for item in data.get("errors") or []:
        if isinstance(item, Mapping):
            text = item.get("message") or " ".join(
                str(item.get(key)) for key in ("field", "code") if item.get(key)
            )
            parts.append(str(text))
        else:
            parts.append(str(item))
    return errors.redact("; ".join(part for part in parts if part))[:500]


def _wait(headers: Mapping[str, str]) -> float | None:
    """Seconds GitHub asked to wait: `Retry-After`, or until `X-RateLimit-Reset` when the rate
    limit is spent; None when it asked for nothing."""
    after = headers.get("retry-after")
    if after is not None:
        try:
            return max(1.0, float(after))
        except ValueError:
            pass
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
        try:
            reset = float(headers["x-ratelimit-reset"])
        except ValueError:
            return None
        return max(1.0, reset - time.time())
    return None
