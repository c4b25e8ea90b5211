"""Azure Repos pull requests through Microsoft's `azure-devops` client: the `pulls.Host` of one
repository in one project.

The client is synchronous: each call runs in a worker thread, and so does the client's first
request (it asks the organization where the git area lives). Its own retries are turned off and
its timeout is `TIMEOUT`; the reconcile's backoff decides when to try again, paced by Azure
DevOps' `Retry-After`. The client does not keep the status code or the headers of a failure, so
a response hook notes them (per thread) for the mapping:

| Azure DevOps says                                 | the RunnerImage says                       |
| ------------------------------------------------- | ------------------------------------------ |
| 401, 203 (a sign-in page: the token is not valid) | Stalled `PullRequestAuthFailed`            |
| 403                                               | Stalled `PullRequestForbidden`             |
| 404 for the repository or project                 | Stalled `PullRequestRepositoryNotFound`    |
| 409 TF401179 (an active pull request exists)      | the existing one is used                   |
| 429, 5xx, unreachable, timed out                  | `PullRequestHostUnavailable`, retried      |
| 400 and other refusals                            | Stalled `PullRequestRefused`, its message  |

A pull request's state: active -> open, completed -> merged, abandoned -> closed; its head is
`lastMergeSourceCommit`. Its URL is the web page (`<organization>/<project>/_git/<repository>/
pullrequest/<id>`). The token (a PAT, sent as Basic with an empty user) never appears in a message.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsClientRequestError
from azure.devops.v7_1.git import models
from msrest.authentication import BasicAuthentication
from msrest.exceptions import ClientRequestError

from controller import errors
from controller.hosting import pulls

T = TypeVar("T")

TIMEOUT = 15
FIELD = "spec.catalog.pullRequest"
_STATES: dict[str, pulls.State] = {"active": "open", "completed": "merged", "abandoned": "closed"}


def location_of(url: str) -> tuple[str, str, str] | None:
    """(organization URL, project, repository) of an Azure Repos git URL: `https://dev.azure.com/
    ORG/PROJECT/_git/REPO`, `https://ORG.visualstudio.com/PROJECT/_git/REPO` or
    `git@ssh.dev.azure.com:v3/ORG/PROJECT/REPO`; None for another host."""
    if url.startswith("git@ssh.dev.azure.com:v3/"):
        parts = url.removeprefix("git@ssh.dev.azure.com:v3/").split("/")
        if len(parts) == 3:
            return f"https://dev.azure.com/{parts[0]}", parts[1], parts[2]
        return None
    split = urllib.parse.urlsplit(url)
    segments = [urllib.parse.unquote(part) for part in split.path.split("/") if part]
    host = (split.hostname or "").lower()
    if "_git" not in segments:
        return None
    at = segments.index("_git")
    if host == "dev.azure.com" and at == 2 and len(segments) == 4:
        return f"https://dev.azure.com/{segments[0]}", segments[1], segments[3]
    if host.endswith(".visualstudio.com") and at == 1 and len(segments) == 3:
        return f"https://{host}", segments[0], segments[2]
    return None


class _Noted(threading.local):
    status: int | None = None
    retry_after: str | None = None


class AzureReposRepository:
    """`pulls.Host` for `repository` in `project` of the organization at `organization_url`."""

    name = "Azure Repos"

    def __init__(self, *, organization_url: str, project: str, repository: str, token: str) -> None:
        self.organization_url = organization_url.rstrip("/")
        self.project = project
        self.repository = repository
        self._connection = Connection(
            base_url=self.organization_url, creds=BasicAuthentication("", token)
        )
        self._client: Any = None
        self._lock = threading.Lock()
        self._noted = _Noted()

    def _git(self) -> Any:
        """The git client, made on first use (in a worker thread: it asks the organization)."""
        with self._lock:
            if self._client is None:
                client = self._connection.clients_v7_1.get_git_client()
                client.config.retry_policy.retries = 0
                client.config.connection.timeout = TIMEOUT
                client.config.hooks.append(self._note)
                self._client = client
            return self._client

    def _note(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self._noted.status = response.status_code
        self._noted.retry_after = response.headers.get("Retry-After")

    def _web(self, number: int) -> str:
        project = urllib.parse.quote(self.project, safe="")
        repository = urllib.parse.quote(self.repository, safe="")
        return f"{self.organization_url}/{project}/_git/{repository}/pullrequest/{number}"

    def _pull(self, pull: Any) -> pulls.PullRequest:
        source = pull.last_merge_source_commit
        return pulls.PullRequest(
            number=int(pull.pull_request_id),
            url=self._web(int(pull.pull_request_id)),
            state=_STATES.get(str(pull.status), "open"),
            head_sha=str(getattr(source, "commit_id", "") or ""),
            title=str(pull.title or ""),
            body=str(pull.description or ""),
        )

    async def find_open(self, *, head: str, base: str) -> pulls.PullRequest | None:
        def find() -> pulls.PullRequest | None:
            criteria = models.GitPullRequestSearchCriteria(
                source_ref_name=f"refs/heads/{head}",
                target_ref_name=f"refs/heads/{base}",
                status="active",
            )
            found = self._git().get_pull_requests(self.repository, criteria, project=self.project)
            return self._pull(found[0]) if found else None

        return await self._call(find, "list the active pull requests")

    async def get(self, number: int) -> pulls.PullRequest | None:
        def get() -> pulls.PullRequest | None:
            try:
                pull = self._git().get_pull_request(self.repository, number, project=self.project)
            except AzureDevOpsClientRequestError as error:
                if self._noted.status == 404 and "TF401180" in _text_of(error):
                    return None  # that pull request does not exist (the repository does)
                raise
            return self._pull(pull)

        return await self._call(get, f"read pull request {number}")

    async def open(
        self, *, head: str, base: str, title: str, body: str
    ) -> pulls.PullRequest | None:
        def create() -> pulls.PullRequest | None:
            git = self._git()
            source, target = f"refs/heads/{head}", f"refs/heads/{base}"
            # (the client sends only the descriptors' base_/target_ fields)
            if not git.get_commit_diffs(
                self.repository,
                project=self.project,
                base_version_descriptor=models.GitBaseVersionDescriptor(
                    base_version=base, base_version_type="branch"
                ),
                target_version_descriptor=models.GitTargetVersionDescriptor(
                    target_version=head, target_version_type="branch"
                ),
            ).ahead_count:
                return None  # nothing the base lacks: no pull request to open
            wanted = models.GitPullRequest(
                source_ref_name=source, target_ref_name=target, title=title, description=body
            )
            try:
                created = git.create_pull_request(wanted, self.repository, project=self.project)
            except AzureDevOpsClientRequestError as error:
                if self._noted.status == 409 and "TF401179" in _text_of(error):
                    criteria = models.GitPullRequestSearchCriteria(
                        source_ref_name=source, target_ref_name=target, status="active"
                    )
                    found = git.get_pull_requests(self.repository, criteria, project=self.project)
                    if found:
                        return self._pull(found[0])
                raise
            return self._pull(created)

        return await self._call(create, f"open a pull request from {head!r} into {base!r}")

    async def contents(self, number: int) -> pulls.Contents:
        def read() -> pulls.Contents:
            git = self._git()
            commits = git.get_pull_request_commits(self.repository, number, project=self.project)
            listed = tuple(
                (str(c.commit_id), str(c.comment or "").partition("\n")[0])
                for c in reversed(list(commits or []))  # newest first on the wire
            )
            iterations = git.get_pull_request_iterations(
                self.repository, number, project=self.project
            )
            files: tuple[str, ...] = ()
            if iterations:
                last = max(int(i.id) for i in iterations)
                changes = git.get_pull_request_iteration_changes(
                    self.repository, number, last, project=self.project
                )
                files = tuple(sorted(_path_of(entry) for entry in changes.change_entries or []))
            return pulls.Contents(listed, files)

        return await self._call(read, f"read what pull request {number} holds")

    async def edit(self, number: int, *, title: str, body: str) -> pulls.PullRequest:
        def edit() -> pulls.PullRequest:
            change = models.GitPullRequest(title=title, description=body)
            updated = self._git().update_pull_request(
                change, self.repository, number, project=self.project
            )
            return self._pull(updated)

        return await self._call(edit, f"update pull request {number}")

    @property
    def _where(self) -> str:
        return (
            f"Azure Repos {self.project}/{self.repository} ({errors.redact(self.organization_url)})"
        )

    async def _call(self, call: Callable[[], T], what: str) -> T:
        def noted() -> T:
            self._noted.status, self._noted.retry_after = None, None
            try:
                return call()
            except (AzureDevOpsAuthenticationError, AzureDevOpsClientRequestError) as error:
                raise self._mapped(error, what) from None
            except (requests.ConnectionError, requests.Timeout, ClientRequestError) as error:
                raise errors.TransientError(
                    "PullRequestHostUnavailable",
                    f"cannot {what} on {self._where}: {type(error).__name__}",
                ) from None

        return await asyncio.to_thread(noted)

    def _mapped(self, error: Exception, what: str) -> errors.ReconcileError:
        status, said, where = self._noted.status, _text_of(error), self._where
        if isinstance(error, AzureDevOpsAuthenticationError) or status in (401, 203):
            return errors.StalledError(
                "PullRequestAuthFailed",
                f"{FIELD}: Azure DevOps refused the token when asked to {what} on {where}",
            )
        if status == 429 or (status is not None and status >= 500):
            wait = _seconds(self._noted.retry_after)
            return errors.TransientError(
                "PullRequestHostUnavailable",
                f"cannot {what} on {where}: HTTP {status} ({said})",
                retry_after=wait,
                paced=wait is not None,
            )
        if status == 403:
            return errors.StalledError(
                "PullRequestForbidden", f"{FIELD}: the token may not {what} on {where} ({said})"
            )
        if status == 404:
            return errors.StalledError(
                "PullRequestRepositoryNotFound",
                f"{FIELD}: {where} not found, or the token cannot see it ({said})",
            )
        return errors.StalledError(
            "PullRequestRefused", f"Azure DevOps refused to {what} on {where}: {said}"
        )


def _path_of(entry: Any) -> str:
    """A changed file's path, without its leading "/". The client's change model declares none
    of its fields (its base class was lost): the item is among its additional properties."""
    extra = getattr(entry, "additional_properties", None) or {}
    item = extra.get("item") or {}
    return str(item.get("path") or "").lstrip("/")


def _text_of(error: object) -> str:
    text = getattr(error, "message", None) or str(error)
    return errors.redact(str(text))[:500]


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(1.0, float(value))
    except ValueError:
        return None
