"""The JSON the GitHub emulator (`tests.env.github`) answers with: users, repositories, pull
requests, commits, diff entries, errors and pagination, as pure functions of what they show.

Bodies are shaped as GitHub's published OpenAPI description says (`tests.env.github_openapi`
holds the subset and validates against it), and so are its errors (`GitHubError`): 401
`Bad credentials`, 404 `Not Found`, 422 `Validation Failed` with GitHub's `errors` (a pull
request that already exists, no commits between the branches, a branch that does not exist),
405 `Pull Request is not mergeable`, 409 `Head branch was modified. Review and try the merge
again.`, 400 `Problems parsing JSON`, and the secondary rate limit (403 or 429, `Retry-After`)
or a 5xx that `fault_error` makes. Lists are paginated with `page`/`per_page` and a `Link`
header (`page`). URLs are GitHub Enterprise's (`{base_url}` = `http://127.0.0.1:PORT/api/v3`);
`html_url`s point at `HTML_ROOT`, where nothing serves.

Imports only `tests.env.github_git`, for the `DiffEntry` it shapes.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import http
import re
import urllib.parse
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from tests.env.github_git import DiffEntry

__all__ = [
    "API_PREFIX",
    "DOCS",
    "HOST",
    "HTML_ROOT",
    "SECONDARY_RATE_LIMIT",
    "GitHubError",
    "Pull",
    "commit_json",
    "diff_entry_json",
    "doc_url",
    "fault_error",
    "html_url",
    "node_id",
    "now",
    "number_id",
    "page",
    "pull_details_json",
    "pull_json",
    "repository_json",
    "timestamp",
    "user_json",
    "validation_failed",
]

API_PREFIX = "/api/v3"
HOST = "github.example"
HTML_ROOT = f"https://{HOST}"
"""Where `html_url`s point (no server there: nothing follows them)."""
DOCS = "https://docs.github.com/rest"
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {request_id}."
)

_DOC = {
    "/repos/{owner}/{repo}": "repos/repos#get-a-repository",
    "GET /repos/{owner}/{repo}/pulls": "pulls/pulls#list-pull-requests",
    "POST /repos/{owner}/{repo}/pulls": "pulls/pulls#create-a-pull-request",
    "GET /repos/{owner}/{repo}/pulls/{pull_number}": "pulls/pulls#get-a-pull-request",
    "PATCH /repos/{owner}/{repo}/pulls/{pull_number}": "pulls/pulls#update-a-pull-request",
    "/repos/{owner}/{repo}/pulls/{pull_number}/commits": (
        "pulls/pulls#list-commits-on-a-pull-request"
    ),
    "/repos/{owner}/{repo}/pulls/{pull_number}/files": "pulls/pulls#list-pull-requests-files",
    "/repos/{owner}/{repo}/pulls/{pull_number}/merge": "pulls/pulls#merge-a-pull-request",
}
"""Each operation's documentation page: `METHOD template` or, for every method, `template`."""


# -- values ------------------------------------------------------------------------------------


def timestamp(epoch: float) -> str:
    """GitHub's time format (`2024-01-02T03:04:05Z`) of seconds since the epoch."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def number_id(*parts: object) -> int:
    """A stable positive id for a thing (GitHub's ids are positive integers)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) % 900_000_000 + 100_000


def node_id(kind: str, value: object) -> str:
    return f"{kind}_" + base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def html_url(owner: str, repo: str) -> str:
    return f"{HTML_ROOT}/{owner}/{repo}"


# -- errors ------------------------------------------------------------------------------------


def doc_url(method: str, template: str | None) -> str:
    """The `documentation_url` of an error answering `method` on the path `template`."""
    if template is None:
        return DOCS
    anchor = _DOC.get(f"{method} {template}") or _DOC.get(template)
    return f"{DOCS}/{anchor}" if anchor else DOCS


class GitHubError(Exception):
    """An error answer: `status` and GitHub's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        documentation_url: str = DOCS,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.body: dict[str, Any] = {"message": message}
        if errors is not None:
            self.body["errors"] = [dict(error) for error in errors]
        self.body["documentation_url"] = documentation_url
        self.body["status"] = str(status)
        self.headers = dict(headers or {})


def validation_failed(doc: str, *errors: Mapping[str, Any]) -> GitHubError:
    """422 `Validation Failed` with GitHub's `errors`."""
    return GitHubError(422, "Validation Failed", documentation_url=doc, errors=errors)


def fault_error(status: int, retry_after: int | None, request_id: str) -> GitHubError:
    """An injected failure: 403 or 429 as GitHub's secondary rate limit (with `Retry-After`
    when given), else GitHub's error body for `status` (a 5xx: a server error)."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    if status in (403, 429):
        return GitHubError(
            status,
            SECONDARY_RATE_LIMIT.format(request_id=request_id),
            documentation_url=(
                "https://docs.github.com/rest/using-the-rest-api/"
                "rate-limits-for-the-rest-api#about-secondary-rate-limits"
            ),
            headers=headers,
        )
    phrase = "Server Error" if status in (500, 502) else http.HTTPStatus(status).phrase
    return GitHubError(status, phrase, headers=headers)


# -- users and repositories --------------------------------------------------------------------


def user_json(base_url: str, login: str, kind: str = "User") -> dict[str, Any]:
    """A user (`kind` `User`) or organization (`Organization`), as `simple-user` is shaped."""
    api = f"{base_url}/users/{login}"
    return {
        "login": login,
        "id": number_id("user", login),
        "node_id": node_id("U" if kind == "User" else "O", login),
        "avatar_url": f"{HTML_ROOT}/avatars/{login}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{HTML_ROOT}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def repository_json(
    base_url: str,
    owner: str,
    name: str,
    *,
    clone_url: str,
    default_branch: str,
    created_at: str,
    pushed_at: str,
    open_issues: int,
    full: bool,
) -> dict[str, Any]:
    """The repository `owner/name` (private, the token's user may push); `full`: as
    `GET /repos/{owner}/{repo}` shows it, else as a pull request's `head.repo` and `base.repo`."""
    api = f"{base_url}/repos/{owner}/{name}"
    html = html_url(owner, name)
    repository: dict[str, Any] = {
        "id": number_id("repo", owner, name),
        "node_id": node_id("R", f"{owner}/{name}"),
        "name": name,
        "full_name": f"{owner}/{name}",
        "private": True,
        "owner": user_json(base_url, owner, "Organization"),
        "html_url": html,
        "description": None,
        "fork": False,
        "url": api,
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "assignees_url": f"{api}/assignees{{/user}}",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "comments_url": f"{api}/comments{{/number}}",
        "commits_url": f"{api}/commits{{/sha}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "contributors_url": f"{api}/contributors",
        "deployments_url": f"{api}/deployments",
        "downloads_url": f"{api}/downloads",
        "events_url": f"{api}/events",
        "forks_url": f"{api}/forks",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_url": f"git://{HOST}/{owner}/{name}.git",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "issues_url": f"{api}/issues{{/number}}",
        "keys_url": f"{api}/keys{{/key_id}}",
        "labels_url": f"{api}/labels{{/name}}",
        "languages_url": f"{api}/languages",
        "merges_url": f"{api}/merges",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "releases_url": f"{api}/releases{{/id}}",
        "ssh_url": f"git@{HOST}:{owner}/{name}.git",
        "stargazers_url": f"{api}/stargazers",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "tags_url": f"{api}/tags",
        "teams_url": f"{api}/teams",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "clone_url": clone_url,
        "mirror_url": None,
        "hooks_url": f"{api}/hooks",
        "svn_url": html,
        "homepage": None,
        "language": None,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "size": 0,
        "default_branch": default_branch,
        "open_issues_count": open_issues,
        "is_template": False,
        "topics": [],
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": True,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "visibility": "private",
        "pushed_at": pushed_at,
        "created_at": created_at,
        "updated_at": created_at,
        "permissions": {
            "admin": False,
            "maintain": False,
            "push": True,
            "triage": True,
            "pull": True,
        },
        "allow_forking": False,
        "web_commit_signoff_required": False,
        "license": None,
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
    }
    if full:
        repository.update(
            {
                "allow_merge_commit": True,
                "allow_squash_merge": True,
                "allow_rebase_merge": True,
                "allow_auto_merge": False,
                "delete_branch_on_merge": False,
                "allow_update_branch": False,
                "network_count": 0,
                "subscribers_count": 0,
                "organization": user_json(base_url, owner, "Organization"),
            }
        )
    return repository


# -- pull requests -----------------------------------------------------------------------------


@dataclasses.dataclass
class Pull:
    """A pull request as the emulator keeps it (in memory), the record `pull_json` shows."""

    repo: str
    number: int
    id: int
    title: str
    body: str | None
    head: str
    base: str
    draft: bool
    user: str
    created_at: str
    updated_at: str
    state: str = "open"
    closed_at: str | None = None
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    merged_by: str | None = None
    frozen: tuple[str, str] | None = None
    """(base sha, head sha) once closed: a closed pull request no longer follows its branches."""


def pull_json(
    base_url: str,
    owner: str,
    pull: Pull,
    *,
    base_sha: str,
    head_sha: str,
    repository: Mapping[str, Any],
) -> dict[str, Any]:
    """`pull` as a list shows it (`pull-request-simple`); `pull_details_json` adds the rest of
    `GET .../pulls/{number}`'s shape. `repository`: its (not full) `repository_json`."""
    repo = pull.repo
    api = f"{base_url}/repos/{owner}/{repo}"
    url = f"{api}/pulls/{pull.number}"
    html = f"{html_url(owner, repo)}/pull/{pull.number}"
    org = user_json(base_url, owner, "Organization")
    author = user_json(base_url, pull.user)
    return {
        "url": url,
        "id": pull.id,
        "node_id": node_id("PR", pull.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{api}/issues/{pull.number}",
        "number": pull.number,
        "state": pull.state,
        "locked": False,
        "title": pull.title,
        "user": author,
        "body": pull.body,
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "merged_at": pull.merged_at,
        "merge_commit_sha": pull.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "labels": [],
        "milestone": None,
        "draft": pull.draft,
        "commits_url": f"{url}/commits",
        "review_comments_url": f"{url}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{pull.number}/comments",
        "statuses_url": f"{api}/statuses/{head_sha}",
        "head": {
            "label": f"{owner}:{pull.head}",
            "ref": pull.head,
            "sha": head_sha,
            "user": org,
            "repo": repository,
        },
        "base": {
            "label": f"{owner}:{pull.base}",
            "ref": pull.base,
            "sha": base_sha,
            "user": org,
            "repo": repository,
        },
        "_links": {
            "self": {"href": url},
            "html": {"href": html},
            "issue": {"href": f"{api}/issues/{pull.number}"},
            "comments": {"href": f"{api}/issues/{pull.number}/comments"},
            "review_comments": {"href": f"{url}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{url}/commits"},
            "statuses": {"href": f"{api}/statuses/{head_sha}"},
        },
        "author_association": "MEMBER",
        "auto_merge": None,
        "active_lock_reason": None,
    }


def pull_details_json(
    base_url: str,
    pull: Pull,
    *,
    mergeable: bool | None,
    commits: int,
    entries: Sequence[DiffEntry],
) -> dict[str, Any]:
    """What a full pull request (`pull-request`) has beyond `pull_json`'s simple shape:
    `mergeable` (None once closed), the number of `commits`, the changed files' `entries`."""
    state = "unknown"
    if pull.state == "open":
        state = "draft" if pull.draft else ("clean" if mergeable else "dirty")
    return {
        "merged": pull.merged_at is not None,
        "mergeable": mergeable,
        "rebaseable": mergeable,
        "mergeable_state": state,
        "merged_by": None if pull.merged_by is None else user_json(base_url, pull.merged_by),
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": commits,
        "additions": sum(e.additions for e in entries),
        "deletions": sum(e.deletions for e in entries),
        "changed_files": len(entries),
    }


# -- commits and files -------------------------------------------------------------------------


def diff_entry_json(
    base_url: str, owner: str, repo: str, entry: DiffEntry, head_sha: str
) -> dict[str, Any]:
    """One file of `GET .../pulls/{number}/files` (`diff-entry`)."""
    html = html_url(owner, repo)
    quoted = urllib.parse.quote(entry.filename)
    data: dict[str, Any] = {
        "sha": entry.sha,
        "filename": entry.filename,
        "status": entry.status,
        "additions": entry.additions,
        "deletions": entry.deletions,
        "changes": entry.additions + entry.deletions,
        "blob_url": f"{html}/blob/{head_sha}/{quoted}",
        "raw_url": f"{html}/raw/{head_sha}/{quoted}",
        "contents_url": f"{base_url}/repos/{owner}/{repo}/contents/{quoted}?ref={head_sha}",
    }
    if entry.patch is not None:
        data["patch"] = entry.patch
    if entry.previous_filename is not None:
        data["previous_filename"] = entry.previous_filename
    return data


def commit_json(base_url: str, owner: str, repo: str, sha: str, raw: str) -> dict[str, Any]:
    """One commit of `GET .../pulls/{number}/commits` (`commit`), from its raw text (`git
    cat-file commit`): never verified, no GitHub accounts for its author and committer."""
    api = f"{base_url}/repos/{owner}/{repo}"
    html = html_url(owner, repo)
    head, _, message = raw.partition("\n\n")
    fields: dict[str, list[str]] = {}
    signature: list[str] = []
    in_signature = False
    for line in head.split("\n"):
        if line.startswith(" ") and in_signature:
            signature.append(line[1:])
            continue
        key, _, value = line.partition(" ")
        in_signature = key == "gpgsig"
        if in_signature:
            signature.append(value)
        else:
            fields.setdefault(key, []).append(value)

    def person(value: str) -> dict[str, str]:
        match = re.fullmatch(r"(.*) <(.*)> (\d+) ([+-]\d{4})", value)
        assert match is not None, value
        name, email, stamp, _zone = match.groups()
        return {"name": name, "email": email, "date": timestamp(int(stamp))}

    tree = fields["tree"][0]
    return {
        "url": f"{api}/commits/{sha}",
        "sha": sha,
        "node_id": node_id("C", sha),
        "html_url": f"{html}/commit/{sha}",
        "comments_url": f"{api}/commits/{sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{sha}",
            "author": person(fields["author"][0]),
            "committer": person(fields["committer"][0]),
            "message": message.rstrip("\n"),
            "comment_count": 0,
            "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
            "verification": {
                "verified": False,
                "reason": "unknown_key" if signature else "unsigned",
                "signature": "\n".join(signature) if signature else None,
                "payload": None,
                "verified_at": None,
            },
        },
        "author": None,  # GitHub maps the e-mail to an account: none here
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
            for p in fields.get("parent", [])
        ],
    }


# -- pagination --------------------------------------------------------------------------------


def page(
    items: Sequence[Any], query: Mapping[str, str], path: str, base_url: str
) -> tuple[Sequence[Any], dict[str, str]]:
    """One page of `items` per `page`/`per_page` (GitHub's defaults: 1, 30; at most 100) and
    the `Link` header GitHub sends with it (none when everything fits in one page)."""
    try:
        per_page = min(max(int(query.get("per_page", "30")), 1), 100)
    except ValueError:
        per_page = 30
    try:
        number = max(int(query.get("page", "1")), 1)
    except ValueError:
        number = 1
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(number - 1) * per_page : number * per_page]
    if last == 1 and number == 1:
        return chunk, {}
    root = base_url.removesuffix(API_PREFIX)

    def link(to: int, rel: str) -> str:
        params = {**query, "per_page": str(per_page), "page": str(to)}
        if "per_page" not in query:
            del params["per_page"]
        return f'<{root}{path}?{urllib.parse.urlencode(params)}>; rel="{rel}"'

    links = []
    if number > 1:
        links.append(link(min(number - 1, last), "prev"))
    if number < last:
        links.append(link(number + 1, "next"))
        links.append(link(last, "last"))
    if number > 1:
        links.append(link(1, "first"))
    return chunk, {"Link": ", ".join(links)}
