"""An Azure DevOps (Azure Repos) REST emulator on loopback, for pull requests, over a real git
server's repositories.

`AzureReposEmulator` answers, at `base_url` (the organization URL
`http://127.0.0.1:PORT/{organization}`, what the official client `azure-devops` takes as
`Connection(base_url=...)`), what that client does to open, find, edit, read and complete pull
requests, api-version 7.1: its discovery first (`OPTIONS {org}/_apis`: the resource locations
served; `GET {org}/_apis/ResourceAreas`: git lives at the organization URL), then get a
repository (by name or GUID); compare two of its versions (`diffs/commits`:
`tests.env.azure_repos_diffs`); list, create, get and update pull requests; list a pull
request's commits, iterations and an iteration's changes. The Azure repository `name` of the
project is the `GitServer` repository `name` (`tests.env.gitserver`), read live with git
(`tests.env.azure_repos_git`); completing a pull request is a real merge in the bare repository.
The pull requests themselves: `tests.env.azure_repos_pulls` (their JSON:
`tests.env.azure_repos_views`); the other bodies and the errors: `tests.env.azure_repos_shapes`;
routes, api-versions, authentication, faults: `tests.env.azure_repos_wire`; the published
description all of it follows, and its validator: `tests.env.azure_repos_spec`.

Authentication: HTTP Basic with any user name and the token (a PAT) as password, or
`Authorization: Bearer <token>`. Otherwise 401 with no body and the `WWW-Authenticate`
challenges (Bearer, Basic, TFS-Federated) the service sends to a client that asks not to be
redirected to a sign-in page (`X-TFS-FedAuthRedirect: Suppress`, which the client sends; a
browser would get 203 and a sign-in page, not emulated). api-version comes in the query or the
`Accept` header; a write without one is refused (400) as the service does, and so is one out of
range or, past the released 7.1, without `-preview`. Errors are the service's WrappedException
bodies with its `X-TFS-ServiceError` header. An unknown path is a 404 HTML page; a known path with
another method, 405.

`fail_next` makes the next requests fail as Azure DevOps's rate limiting does (429, TF400733,
`Retry-After` and `X-RateLimit-*`) or with a 5xx (500 and 503: a WrappedException; 502 and 504:
an HTML page, as from the front door). Every request is recorded in `requests` (method, path,
the description's path template, status, request and response JSON), never with its
credentials. Test helpers that bypass HTTP: `pulls`, `complete`, `abandon`. The lifecycle, the
records, the faults' queue and the HTTP handler are shared with the GitHub emulator
(`tests.env.api_emulator`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import time
import uuid
from collections.abc import Mapping
from typing import Any

from tests.env import api_emulator
from tests.env import azure_repos_spec as spec
from tests.env.api_emulator import parse_json, split_target
from tests.env.azure_repos_diffs import commit_diffs
from tests.env.azure_repos_git import RepoGit
from tests.env.azure_repos_pulls import Pull, PullRequests, now
from tests.env.azure_repos_shapes import AzureError, Site
from tests.env.azure_repos_views import Views
from tests.env.azure_repos_wire import (
    LOCATIONS_TEMPLATE,
    NOT_FOUND_PAGE,
    OPERATIONS,
    RESOURCE_AREAS_TEMPLATE,
    Answer,
    Handler,
    api_version,
    authenticated,
    check_version,
    error_answer,
    fault_answer,
    refusal,
    route,
)
from tests.env.gitserver import GitServer

__all__ = [
    "LOCATIONS_TEMPLATE",
    "RESOURCE_AREAS_TEMPLATE",
    "AzureReposEmulator",
    "Request",
    "running",
]


@dataclasses.dataclass(frozen=True)
class Request(api_emulator.Request):
    """One request as the emulator saw it and answered it (never with its credentials); its
    `path_template` may be a discovery template, its `response_json` None for a body that is not
    JSON (401, the 404 page, 502/504)."""

    accept: str | None = None
    api_version: str | None = None
    """The api-version asked for (query or `Accept`), None if none."""
    response_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


class AzureReposEmulator(api_emulator.Emulator[Request]):
    """The pull request API of Azure Repos for the organization `organization` and its project
    `project` over `git`'s repositories; serves once started (`start()`/`stop()`, or `with`).
    Only `token` is accepted; it belongs to `user`, who creates, closes and merges.
    `synchronous_completion`: answer a completing PATCH with the completed pull request rather
    than, as the service does, with the queued one. `fail_next`: 429 as Azure DevOps's rate
    limiting, a 5xx as a server error."""

    handler = Handler

    def __init__(
        self,
        git: GitServer,
        *,
        token: str,
        organization: str = "org",
        project: str = "proj",
        user: str = "ade-bot",
        synchronous_completion: bool = False,
    ) -> None:
        super().__init__("azure-repos", git, token=token, user=user)
        self.organization = organization
        self.project = project
        self.synchronous_completion = synchronous_completion
        self._created = now()
        self._process = str(uuid.uuid4())
        self._pulls = PullRequests(lambda: self.site, lambda name: RepoGit(self.git, name))
        self._views = Views(self._pulls, self._repository_json)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The organization URL: `http://127.0.0.1:PORT/{organization}`."""
        return f"http://127.0.0.1:{self.port}/{self.organization}"

    @property
    def site(self) -> Site:
        return Site(self.base_url, self.organization, self.project, self.user, self._created)

    # -- test helpers (no HTTP) --------------------------------------------------------------

    def pulls(self, repo: str) -> list[dict[str, Any]]:
        """The pull requests of `repo` as `GET .../pullrequests/{id}` shows them, by id."""
        with self._lock:
            shown = []
            for pull in self._pulls.of(repo):
                self._pulls.refresh(pull)
                shown.append(self._views.json(pull))
            return shown

    def complete(self, repo: str, number: int) -> str:
        """Complete (merge) pull request `number` at its source's head, as a completing PATCH
        does; the merge commit its target moved to. RuntimeError on a conflict."""
        with self._lock:
            pull = self._pulls.find(repo, number)
            self._pulls.refresh(pull)
            self._pulls.complete(pull, pull.source, {})
            if pull.status != "completed" or pull.merge_commit is None:
                raise RuntimeError(f"pull request {number} conflicts with its target")
            return pull.merge_commit

    def abandon(self, repo: str, number: int) -> None:
        with self._lock:
            self._pulls.update(self._pulls.find(repo, number), {"status": "abandoned"})

    # -- HTTP --------------------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """Answer one request (status, body, headers) and record it."""
        arrived = time.monotonic()
        path, query = split_target(target)
        template, params = route(path, self.organization)
        request_json, malformed = parse_json(raw)
        fault = False
        version: str | None = None
        activity = str(uuid.uuid4())
        with self._lock:
            try:
                if not authenticated(headers, self.token):
                    answer = refusal(self.base_url)
                else:
                    taken = self._take_fault()
                    fault = taken is not None
                    version = api_version(query, headers)
                    if taken is not None:
                        answer = fault_answer(taken, activity)
                    else:
                        answer = self._dispatch(
                            method, template, params, query, request_json, version
                        )
            except AzureError as error:
                answer = error_answer(error)
            status, data, out = self._encode(answer, headers, activity, version)
            self._requests.append(
                Request(
                    method=method,
                    path=path,
                    query=query,
                    path_template=template,
                    status=status,
                    request_json=request_json,
                    response_json=answer.body if answer.page is None else None,
                    time=arrived,
                    fault=fault,
                    malformed=malformed,
                    user_agent=headers.get("user-agent"),
                    accept=headers.get("accept"),
                    api_version=version,
                    response_headers=_joined(out),
                )
            )
        return status, data, out

    def _encode(
        self, answer: Answer, headers: Mapping[str, str], activity: str, version: str | None
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        out = [
            ("ActivityId", activity),
            ("X-TFS-ProcessId", self._process),
            ("X-TFS-Session", headers.get("x-tfs-session") or activity),
            ("X-VSS-E2EID", activity),
        ]
        if answer.status != 401:
            out.append(("X-VSS-UserData", f"{self.site.user_id}:{self.user}"))
        if answer.page is not None:
            if answer.page:
                out.append(("Content-Type", "text/html; charset=utf-8"))
            data = answer.page
        else:
            suffix = f"; api-version={version}" if version else ""
            out.append(("Content-Type", f"application/json; charset=utf-8{suffix}"))
            data = json.dumps(answer.body).encode()
        for key, value in answer.headers.items():
            out.extend((key, part) for part in value.split("\n"))
        return answer.status, data, out

    # -- operations --------------------------------------------------------------------------

    def _dispatch(
        self,
        method: str,
        template: str | None,
        params: Mapping[str, str],
        query: Mapping[str, str],
        body: Any,
        version: str | None,
    ) -> Answer:
        if template is None:
            return Answer(404, None, page=NOT_FOUND_PAGE)
        if method not in OPERATIONS[template]:
            raise AzureError.method_not_allowed(method)
        if template == LOCATIONS_TEMPLATE:
            return Answer(200, self.site.locations())
        if template == RESOURCE_AREAS_TEMPLATE:
            return Answer(200, self.site.resource_areas())
        check_version(method, version)
        repo = self._repo(params["project"], params["repositoryId"])
        if template == spec.REPOSITORY:
            return Answer(200, self._repository_json(repo, False, links=True))
        if template == spec.DIFFS:
            return Answer(200, commit_diffs(self.site, RepoGit(self.git, repo), query))
        document = body if isinstance(body, dict) else None
        if template == spec.PULLS:
            if method == "POST":
                pull = self._pulls.create(repo, document or {}, query)
                return Answer(201, self._views.json(pull))
            links = query.get("searchCriteria.includeLinks", "").lower() == "true"
            found = [
                self._views.json(p, brief=True, links=links)
                for p in self._pulls.search(repo, query)
            ]
            return Answer(200, {"count": len(found), "value": found})
        pull = self._pulls.find(repo, params["pullRequestId"])
        if template == spec.PULL:
            return self._pull(pull, method, document, query)
        if template == spec.COMMITS:
            listed, token = self._views.commits(pull, query)
            more = {"x-ms-continuationtoken": token} if token else {}
            return Answer(200, {"count": len(listed), "value": listed}, more)
        if template == spec.ITERATIONS:
            listed = self._views.iterations(pull, query)
            return Answer(200, {"count": len(listed), "value": listed})
        return Answer(200, self._views.changes(pull, params["iterationId"], query))

    def _pull(self, pull: Pull, method: str, body: Any, query: Mapping[str, str]) -> Answer:
        if method == "PATCH":
            if body is None:
                raise AzureError.invalid_argument("The pull request to update was not valid.")
            queued = self._pulls.update(pull, body)
            if queued is not None and not self.synchronous_completion:
                return Answer(200, self._views.json(queued))
        self._pulls.refresh(pull)
        shown = self._views.json(pull)
        if query.get("includeCommits", "").lower() == "true":
            shown["commits"] = self._views.commits(pull, {"$top": "1000000"})[0]
        return Answer(200, shown)

    def _repo(self, project: str, repository: str) -> str:
        site = self.site
        if project.lower() not in (self.project.lower(), site.project_id):
            raise AzureError.project_not_found(project)
        for path in sorted(self.git.folder.glob("*.git")):
            name = path.name.removesuffix(".git")
            if (path / "HEAD").is_file() and repository.lower() in (
                name.lower(),
                site.repo_id(name),
            ):
                return name
        raise AzureError.repository_not_found(repository)

    def _repository_json(self, name: str, brief: bool, *, links: bool = False) -> dict[str, Any]:
        folder = self.git.path(name)
        size = _size(folder / "objects")
        return self.site.repository_json(
            name,
            remote_url=self.git.url(name),
            default_branch=RepoGit(self.git, name).default_branch(),
            size=size,
            brief=brief,
            links=links,
        )


def _joined(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Headers by name, repeated ones joined with ", " (as HTTP allows)."""
    joined: dict[str, str] = {}
    for key, value in headers:
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


running = AzureReposEmulator
"""`with running(git, token=...) as emulator`: a started emulator over `git`'s repositories,
stopped on exit (the emulator is its own context manager)."""


def _size(folder: pathlib.Path) -> int:
    """Bytes under `folder`, read while git may be writing there: a push's quarantine folder
    (`tmp_objdir-incoming-*`) and loose objects come and go between listing and reading."""
    total = 0
    for root, _, names in os.walk(folder):  # a folder gone meanwhile is skipped, not raised
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_size
    return total
