"""A GitHub REST API emulator on loopback, for pull requests, over a real git server's repositories.

`GitHubEmulator` answers, at `base_url` (`http://127.0.0.1:PORT/api/v3`, GitHub Enterprise's
layout, which PyGithub takes as `base_url`), the calls the operator makes with PyGithub to open,
update, read and merge pull requests: get a repository; list, create, get and update pull
requests; list a pull request's commits and files; merge it. The GitHub repository
`{owner}/{name}` is the `GitServer` repository `name` (`tests.env.gitserver`): branches, commits
and diffs are read live from the bare repository on disk with git, and a merge is a real merge
(`merge`, `squash` or `rebase`) whose commit `refs/heads/<base>` is moved to with
`git update-ref` (`tests.env.github_git`). Pull requests are kept in memory, numbered from 1 in
each repository; this module holds their state and what each operation does to it.

Bodies and errors are shaped as GitHub's published OpenAPI description says
(`tests.env.github_shapes`; `tests.env.github_openapi` holds the subset and validates against
it). Every answer carries `Content-Type: application/json; charset=utf-8`,
`X-GitHub-Request-Id` and the `X-RateLimit-*` headers; lists are paginated with
`page`/`per_page` and a `Link` header. `fail_next` makes the next requests fail as GitHub's
secondary rate limit does (403 or 429, `Retry-After`) or with a 5xx.

Every request is recorded in `requests` (method, path, the description's path template, status,
request and response JSON), never with its token, so that a test can validate all of them. Test
helpers that bypass HTTP: `pulls`, `merge`, `close`. The lifecycle, the records, the faults'
queue and the HTTP handler are shared with the Azure Repos emulator (`tests.env.api_emulator`).

Imports go one way: this module -> `tests.env.github_shapes` -> `tests.env.github_git`.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tests.env import api_emulator, github_apps
from tests.env import github_shapes as shapes
from tests.env.api_emulator import Request, parse_json, split_target
from tests.env.bare_repo import identity_env
from tests.env.github_git import EMPTY_TREE, GitHubRepo
from tests.env.github_shapes import (
    API_PREFIX,
    HOST,
    HTML_ROOT,
    GitHubError,
    Pull,
    doc_url,
    fault_error,
    validation_failed,
)
from tests.env.gitserver import GitServer

__all__ = [
    "API_PREFIX",
    "HTML_ROOT",
    "GitHubEmulator",
    "MergeMethod",
    "Request",
    "running",
]

RATE_LIMIT = 5000
MergeMethod = Literal["merge", "squash", "rebase"]

_OPERATIONS: Mapping[str, frozenset[str]] = {
    "/repos/{owner}/{repo}": frozenset({"GET"}),
    "/repos/{owner}/{repo}/pulls": frozenset({"GET", "POST"}),
    "/repos/{owner}/{repo}/pulls/{pull_number}": frozenset({"GET", "PATCH"}),
    "/repos/{owner}/{repo}/pulls/{pull_number}/commits": frozenset({"GET"}),
    "/repos/{owner}/{repo}/pulls/{pull_number}/files": frozenset({"GET"}),
    "/repos/{owner}/{repo}/pulls/{pull_number}/merge": frozenset({"PUT"}),
    github_apps.ACCESS_TOKENS: frozenset({"POST"}),
}
"""What is served: path template (as GitHub's description spells it) -> methods."""
_ROUTES = [
    (re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)), template)
    for template in _OPERATIONS
]


@dataclasses.dataclass(frozen=True)
class _Answer:
    status: int
    body: Any
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


class GitHubEmulator(api_emulator.Emulator[Request]):
    """The pull request API of GitHub (Enterprise layout) over `git`'s repositories; serves once
    started (`start()`/`stop()`, or `with`). Only `token` is accepted, as `Authorization: token
    <t>` or `Bearer <t>`; it belongs to the user `user`, who authors what is created.
    `fail_next`: 403 or 429 as GitHub's secondary rate limit, else GitHub's error body for that
    status (a 5xx: a server error)."""

    handler = api_emulator.Handler

    def __init__(
        self,
        git: GitServer,
        *,
        token: str,
        owner: str = "org",
        user: str = "ade-bot",
    ) -> None:
        super().__init__("github", git, token=token, user=user)
        self.owner = owner
        self._pulls: dict[str, list[Pull]] = {}
        self._used = 0
        self._reset = int(time.time()) + 3600
        self.apps = github_apps.Apps()
        """GitHub Apps installed here (`install_app`), and the installation tokens they got."""

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """PyGithub's `base_url`: `http://127.0.0.1:PORT/api/v3`."""
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    def html_url(self, repo: str) -> str:
        return shapes.html_url(self.owner, repo)

    # -- test helpers (no HTTP) --------------------------------------------------------------

    def install_app(self, app_id: int, installation_id: int, public_key: bytes) -> None:
        """Install GitHub App `app_id` (its PEM public key) as `installation_id`: its JWTs get
        installation tokens, which are then accepted as `token` is."""
        self.apps.install(app_id, installation_id, public_key)

    def pulls(self, repo: str) -> list[dict[str, Any]]:
        """The pull requests of `repo` as `GET .../pulls/{number}` shows them, by number."""
        with self._lock:
            return [self._pull_json(pull) for pull in self._pulls.get(repo, [])]

    def merge(
        self,
        repo: str,
        number: int,
        *,
        method: MergeMethod = "merge",
        commit_title: str | None = None,
        commit_message: str | None = None,
    ) -> str:
        """Merge pull request `number` as `PUT .../merge` does; the sha `base` moved to."""
        with self._lock:
            pull = self._find(repo, number, "/repos/{owner}/{repo}/pulls/{pull_number}/merge")
            return self._merge(pull, method, commit_title, commit_message, None)

    def close(self, repo: str, number: int) -> None:
        """Close pull request `number` without merging it."""
        with self._lock:
            pull = self._find(repo, number, "/repos/{owner}/{repo}/pulls/{pull_number}")
            self._set_state(
                pull, "closed", doc_url("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}")
            )

    # -- HTTP --------------------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """Answer one request (status, JSON body, headers) and record it."""
        arrived = time.monotonic()
        path, query = split_target(target)
        template, params = _route(path)
        if template is not None and method not in _OPERATIONS[template]:
            template, params = None, {}  # GitHub has no such operation: 404 below
        request_json: Any = None
        malformed = False
        fault = False
        request_id = "{:04X}:{:04X}:{:06X}:{:06X}:{:08X}".format(
            *(secrets.randbelow(16**n) for n in (4, 4, 6, 6, 8))
        )
        with self._lock:
            # an App asking for an installation token signs in with its own JWT
            app_asks = template == github_apps.ACCESS_TOKENS
            try:
                if not app_asks and not self._authenticated(headers):
                    message = "Bad credentials" if headers.get("authorization") else None
                    raise GitHubError(401, message or "Requires authentication")
                self._used += 1
                taken = self._take_fault()
                fault = taken is not None
                request_json, malformed = parse_json(raw)
                if taken is not None:
                    raise fault_error(taken.status, taken.retry_after, request_id)
                if malformed:
                    raise GitHubError(
                        400, "Problems parsing JSON", documentation_url=doc_url(method, template)
                    )
                if template is None:
                    raise GitHubError(404, "Not Found")
                if app_asks:
                    authorization = headers.get("authorization", "")
                    answer = _Answer(201, self.apps.issue(authorization, params["installation_id"]))
                else:
                    answer = self._dispatch(method, template, params, query, request_json, path)
            except GitHubError as error:
                answer = _Answer(error.status, error.body, error.headers)
            out_headers = {
                "Content-Type": "application/json; charset=utf-8",
                **self._rate_headers(),
                "X-GitHub-Request-Id": request_id,
                "X-GitHub-Media-Type": "github.v3; format=json",
                "X-GitHub-Api-Version-Selected": "2022-11-28",
                **answer.headers,
            }
            self._requests.append(
                Request(
                    method=method,
                    path=path,
                    query=query,
                    path_template=template,
                    status=answer.status,
                    request_json=request_json,
                    response_json=answer.body,
                    time=arrived,
                    fault=fault,
                    malformed=malformed,
                    user_agent=headers.get("user-agent"),
                )
            )
        return answer.status, json.dumps(answer.body).encode(), list(out_headers.items())

    def _authenticated(self, headers: Mapping[str, str]) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        given = value.strip()
        return hmac.compare_digest(given.encode(), self.token.encode()) or self.apps.accepts(given)

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(max(RATE_LIMIT - self._used, 0)),
            "X-RateLimit-Reset": str(self._reset),
            "X-RateLimit-Used": str(self._used),
            "X-RateLimit-Resource": "core",
        }

    def _dispatch(
        self,
        method: str,
        template: str,
        params: Mapping[str, str],
        query: Mapping[str, str],
        body: Any,
        path: str,
    ) -> _Answer:
        doc = doc_url(method, template)
        repo = self._repo(params["owner"], params["repo"], doc)
        if template == "/repos/{owner}/{repo}":
            return _Answer(200, self._repository_json(repo, full=True))
        if template == "/repos/{owner}/{repo}/pulls":
            if method == "GET":
                return self._list_pulls(repo, query, path)
            return self._create_pull(repo, _object_body(body, doc), doc)
        pull = self._find(repo, params["pull_number"], template)
        if template == "/repos/{owner}/{repo}/pulls/{pull_number}":
            if method == "PATCH":
                self._update_pull(pull, _object_body(body, doc), doc)
            return _Answer(200, self._pull_json(pull))
        if template.endswith("/commits"):
            base_sha, head_sha = self._shas(pull)
            shas = self._bare(repo).rev_list(base_sha, head_sha)
            items, link = shapes.page(shas, query, path, self.base_url)
            return _Answer(200, self._commits_json(repo, items), link)
        if template.endswith("/files"):
            base_sha, head_sha = self._shas(pull)
            entries = self._bare(repo).diff(base_sha, head_sha)
            page, link = shapes.page(entries, query, path, self.base_url)
            files = [
                shapes.diff_entry_json(self.base_url, self.owner, repo, entry, head_sha)
                for entry in page
            ]
            return _Answer(200, files, link)
        return self._merge_request(pull, _object_body(body, doc), doc)

    # -- repositories ------------------------------------------------------------------------

    def _bare(self, repo: str) -> GitHubRepo:
        """The `GitServer` repository `repo`, for git."""
        return GitHubRepo(self.git, repo)

    def _repo(self, owner: str, name: str, doc: str) -> str:
        if owner.lower() != self.owner.lower() or not self._bare(name).exists():
            raise GitHubError(404, "Not Found", documentation_url=doc)
        return name

    def _repository_json(self, name: str, *, full: bool) -> dict[str, Any]:
        bare = self._bare(name)
        created = shapes.timestamp(bare.created())
        default = bare.default_branch()
        pushed = bare.branch_sha(default)
        return shapes.repository_json(
            self.base_url,
            self.owner,
            name,
            clone_url=self.git.url(name),
            default_branch=default,
            created_at=created,
            pushed_at=shapes.timestamp(bare.commit_time(pushed)) if pushed else created,
            open_issues=sum(p.state == "open" for p in self._pulls.get(name, [])),
            full=full,
        )

    # -- pull requests -----------------------------------------------------------------------

    def _find(self, repo: str, number: str | int, template: str) -> Pull:
        for pull in self._pulls.get(repo, []):
            if str(pull.number) == str(number):
                return pull
        raise GitHubError(404, "Not Found", documentation_url=doc_url("GET", template))

    def _shas(self, pull: Pull) -> tuple[str, str]:
        """(base sha, head sha): live from the branches while open."""
        if pull.frozen is not None:
            return pull.frozen
        base = self._bare(pull.repo).branch_sha(pull.base)
        head = self._bare(pull.repo).branch_sha(pull.head)
        return base or EMPTY_TREE, head or EMPTY_TREE

    def _list_pulls(self, repo: str, query: Mapping[str, str], path: str) -> _Answer:
        doc = doc_url("GET", "/repos/{owner}/{repo}/pulls")
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "state", "code": "invalid"}
            )
        pulls = [p for p in self._pulls.get(repo, []) if state in ("all", p.state)]
        head = query.get("head", "")
        if ":" in head:  # GitHub ignores a `head` without its `owner:` (a common surprise)
            owner, _, branch = head.partition(":")
            same_owner = owner.lower() == self.owner.lower()
            pulls = [p for p in pulls if same_owner and p.head == branch]
        if "base" in query:
            pulls = [p for p in pulls if p.base == query["base"]]
        sort = query.get("sort", "created")
        descending = query.get("direction", "desc" if sort == "created" else "asc") == "desc"
        key = (
            (lambda p: (p.updated_at, p.number))
            if sort == "updated"
            else (lambda p: (p.created_at, p.number))
        )
        pulls.sort(key=key, reverse=descending)
        page, link = shapes.page(pulls, query, path, self.base_url)
        return _Answer(200, [self._pull_json(p, simple=True) for p in page], link)

    def _create_pull(self, repo: str, body: Mapping[str, Any], doc: str) -> _Answer:
        _check_types(
            body,
            {"title": str, "head": str, "base": str, "body": str, "draft": bool,
             "maintainer_can_modify": bool, "head_repo": str, "issue": int},
            doc,
        )  # fmt: skip
        for field in ("head", "base"):
            if field not in body:
                raise validation_failed(
                    doc, {"resource": "PullRequest", "field": field, "code": "missing_field"}
                )
        if "issue" in body:
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "issue", "code": "invalid"}
            )
        if not body.get("title"):
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "title", "code": "missing_field"}
            )
        owner, _, head = str(body["head"]).rpartition(":")
        base = str(body["base"])
        head_repo = body.get("head_repo")
        if (owner and owner.lower() != self.owner.lower()) or (
            head_repo is not None and head_repo.lower() != f"{self.owner}/{repo}".lower()
        ):
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "head", "code": "invalid"}
            )
        head_sha = self._bare(repo).branch_sha(head)
        if head_sha is None:
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "head", "code": "invalid"}
            )
        base_sha = self._bare(repo).branch_sha(base)
        if base_sha is None:
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "base", "code": "invalid"}
            )
        self._refuse_duplicate(repo, head, base, doc)
        if not self._bare(repo).rev_list(base_sha, head_sha):
            raise validation_failed(
                doc,
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {head}",
                },
            )
        pulls = self._pulls.setdefault(repo, [])
        number = len(pulls) + 1
        now = shapes.now()
        pull = Pull(
            repo=repo,
            number=number,
            id=shapes.number_id("pull", self.owner, repo, number),
            title=str(body["title"]),
            body=body.get("body"),
            head=head,
            base=base,
            draft=bool(body.get("draft", False)),
            user=self.user,
            created_at=now,
            updated_at=now,
        )
        pulls.append(pull)
        url = f"{self.base_url}/repos/{self.owner}/{repo}/pulls/{number}"
        return _Answer(201, self._pull_json(pull), {"Location": url})

    def _refuse_duplicate(self, repo: str, head: str, base: str, doc: str) -> None:
        for other in self._pulls.get(repo, []):
            if other.state == "open" and other.head == head and other.base == base:
                raise validation_failed(
                    doc,
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {self.owner}:{head}.",
                    },
                )

    def _update_pull(self, pull: Pull, body: Mapping[str, Any], doc: str) -> None:
        _check_types(
            body,
            {"title": str, "body": str, "state": str, "base": str, "maintainer_can_modify": bool},
            doc,
        )
        changes_base = "base" in body and body["base"] != pull.base
        if changes_base and (
            pull.state != "open" or self._bare(pull.repo).branch_sha(body["base"]) is None
        ):
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "base", "code": "invalid"}
            )
        if "state" in body:
            if body["state"] not in ("open", "closed") or (
                body["state"] == "open" and pull.merged_at is not None
            ):
                raise validation_failed(
                    doc, {"resource": "PullRequest", "field": "state", "code": "invalid"}
                )
            self._set_state(pull, body["state"], doc)
        if "title" in body:
            pull.title = body["title"]
        if "body" in body:
            pull.body = body["body"]
        if "base" in body:
            pull.base = body["base"]
        pull.updated_at = shapes.now()

    def _set_state(self, pull: Pull, state: str, doc: str) -> None:
        if state == pull.state:
            return
        if state == "closed":
            pull.frozen = self._shas(pull)
            pull.state = "closed"
            pull.closed_at = pull.updated_at = shapes.now()
            return
        if self._bare(pull.repo).branch_sha(pull.head) is None:
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "head", "code": "invalid"}
            )
        self._refuse_duplicate(pull.repo, pull.head, pull.base, doc)
        pull.frozen = None
        pull.state = "open"
        pull.closed_at = None
        pull.updated_at = shapes.now()

    def _merge_request(self, pull: Pull, body: Mapping[str, Any], doc: str) -> _Answer:
        _check_types(
            body, {"commit_title": str, "commit_message": str, "sha": str, "merge_method": str}, doc
        )
        method = body.get("merge_method", "merge")
        if method not in ("merge", "squash", "rebase"):
            raise validation_failed(
                doc, {"resource": "PullRequest", "field": "merge_method", "code": "invalid"}
            )
        sha = self._merge(
            pull, method, body.get("commit_title"), body.get("commit_message"), body.get("sha")
        )
        return _Answer(
            200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
        )

    def _merge(
        self,
        pull: Pull,
        method: str,
        title: str | None,
        message: str | None,
        expected_head: str | None,
    ) -> str:
        doc = doc_url("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge")
        if pull.state != "open":
            raise GitHubError(405, "Pull Request is not mergeable", documentation_url=doc)
        if pull.draft:
            raise GitHubError(405, "Pull Request is still a draft", documentation_url=doc)
        base_sha, head_sha = self._shas(pull)
        if expected_head is not None and expected_head != head_sha:
            raise GitHubError(
                409,
                "Head branch was modified. Review and try the merge again.",
                documentation_url=doc,
            )
        bare = self._bare(pull.repo)
        commits = bare.rev_list(base_sha, head_sha)
        committer = identity_env(("GitHub", f"noreply@{HOST}"))
        author = identity_env(
            ("GitHub", f"noreply@{HOST}"), (self.user, f"{self.user}@users.noreply.{HOST}")
        )
        if method == "rebase":
            merged = bare.rebase(base_sha, head_sha, committer)
        else:
            tree = bare.merge_tree(base_sha, head_sha)
            if tree is None:
                merged = None
            elif method == "merge":
                subject = (
                    title or f"Merge pull request #{pull.number} from {self.owner}/{pull.head}"
                )
                text = f"{subject}\n\n{pull.title if message is None else message}".strip()
                merged = bare.commit_tree(tree, [base_sha, head_sha], text, author)
            else:
                subjects = "\n\n".join(f"* {bare.subject(sha)}" for sha in commits)
                subject = title or f"{pull.title} (#{pull.number})"
                text = f"{subject}\n\n{subjects if message is None else message}".strip()
                merged = bare.commit_tree(tree, [base_sha], text, author)
        if merged is None:
            raise GitHubError(405, "Pull Request is not mergeable", documentation_url=doc)
        reason = f"merge pull request #{pull.number}"
        moved = bare.move(f"refs/heads/{pull.base}", merged, base_sha, reason)
        if not moved:
            raise GitHubError(
                405,
                "Base branch was modified. Review and try the merge again.",
                documentation_url=doc,
            )
        now = shapes.now()
        pull.frozen = (base_sha, head_sha)
        pull.state = "closed"
        pull.merged_at = pull.closed_at = pull.updated_at = now
        pull.merge_commit_sha = merged
        pull.merged_by = self.user
        return merged

    def _pull_json(self, pull: Pull, *, simple: bool = False) -> dict[str, Any]:
        """`pull` as `GET .../pulls/{number}` shows it; `simple`: as a list does."""
        base_sha, head_sha = self._shas(pull)
        data = shapes.pull_json(
            self.base_url,
            self.owner,
            pull,
            base_sha=base_sha,
            head_sha=head_sha,
            repository=self._repository_json(pull.repo, full=False),
        )
        if simple:
            return data
        bare = self._bare(pull.repo)
        entries = bare.diff(base_sha, head_sha)
        mergeable: bool | None = None
        if pull.state == "open":
            mergeable = bare.merge_tree(base_sha, head_sha) is not None
        details = shapes.pull_details_json(
            self.base_url,
            pull,
            mergeable=mergeable,
            commits=len(bare.rev_list(base_sha, head_sha)),
            entries=entries,
        )
        data.update(details)
        return data

    def _commits_json(self, repo: str, shas: Sequence[str]) -> list[dict[str, Any]]:
        bare = self._bare(repo)
        return [
            shapes.commit_json(self.base_url, self.owner, repo, sha, bare.commit_text(sha))
            for sha in shas
        ]


# -- routing and request bodies ----------------------------------------------------------------


def _route(path: str) -> tuple[str | None, dict[str, str]]:
    if not path.startswith(API_PREFIX + "/"):
        return None, {}
    rest = urllib.parse.unquote(path[len(API_PREFIX) :]).rstrip("/")
    for pattern, template in _ROUTES:
        match = pattern.fullmatch(rest)
        if match:
            return template, match.groupdict()
    return None, {}


def _object_body(body: Any, doc: str) -> Mapping[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise GitHubError(400, "Body should be a JSON object", documentation_url=doc)
    return body


def _check_types(body: Mapping[str, Any], types: Mapping[str, type], doc: str) -> None:
    """GitHub's schema check of a request body: a member of the wrong JSON type is a 422."""
    names: Mapping[type, str] = {str: "string", bool: "boolean", int: "integer"}
    for field, kind in types.items():
        if field not in body:
            continue
        value = body[field]
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if wrong:
            shown = json.dumps(value)
            raise GitHubError(
                422,
                f"Invalid request.\n\nFor 'properties/{field}', {shown} is not a {names[kind]}.",
                documentation_url=doc,
            )


running = GitHubEmulator
"""`with running(git, token=...) as emulator`: a started emulator over `git`'s repositories,
stopped on exit (the emulator is its own context manager)."""
