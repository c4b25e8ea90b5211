"""The sender side of the webhook receivers' tests: deliveries shaped as GitHub, Azure Repos and
Azure Container Registry send them, plus our own generic format, and a plain HTTP POST of them.

Everything here is built from the hosts' documentation, not from the operator's parser (nothing
under `controller` is imported), so that a receiver test checks the operator against the hosts
rather than against itself. The shapes come from:

- GitHub `push` and `ping`: the delivery headers and the example delivery in "Webhook events and
  payloads" (https://docs.github.com/webhooks/webhook-events-and-payloads, github/docs
  `content/webhooks/webhook-events-and-payloads.md`): `X-GitHub-Event`, `X-GitHub-Delivery` (a
  GUID), `X-GitHub-Hook-ID`, `X-GitHub-Hook-Installation-Target-ID`/`-Type`, `X-Hub-Signature`
  (HMAC-SHA1 hex of the body) and `X-Hub-Signature-256` (HMAC-SHA256 hex), a `User-Agent` of
  `GitHub-Hookshot/...` and, on GitHub Enterprise, `X-GitHub-Enterprise-Host`/`-Version`. The
  bodies follow GitHub's published examples (octokit/webhooks `payload-examples/api.github.com/
  push/with-new-branch.payload.json`, `.../push/payload.json` for a deletion, `.../ping/
  payload.json`) and the push schema's required keys (after, base_ref, before, commits, compare,
  created, deleted, forced, head_commit, pusher, ref, repository, sender), including the push
  payload's quirks: `repository.url` is the HTML URL, `created_at`/`pushed_at` are epoch
  seconds, the owner carries `name` and `email`. The signature rule and its test vector are from
  "Validating webhook deliveries" (https://docs.github.com/webhooks/using-webhooks/
  validating-webhook-deliveries). The form content type ("application/x-www-form-urlencoded will
  send the JSON payload as a form parameter called `payload`") is from "Creating webhooks"
  (https://docs.github.com/webhooks/using-webhooks/creating-webhooks); GitHub signs the request
  body as sent, i.e. the form (bloomberg/python-github-webhook#23).
- Azure Repos `git.push` through the Web Hooks consumer: the "Code pushed" sample payload in
  "Service hooks events" (https://learn.microsoft.com/azure/devops/service-hooks/events#git.push,
  MicrosoftDocs/azure-devops-docs `docs/service-hooks/events.md`), with the envelope's
  `subscriptionId` and `notificationId` of the current page; the consumer's settings (`url`,
  `httpHeaders` "Key:value" per line, `basicAuthUsername`, `basicAuthPassword`) from "Service hook
  consumers" (https://learn.microsoft.com/azure/devops/service-hooks/consumers#webhooks), hence
  `Authorization: Basic`. Dates carry seven fractional digits, as in the samples.
- Azure Container Registry `push`: "Azure Container Registry webhook reference"
  (https://learn.microsoft.com/azure/container-registry/container-registry-webhook-reference):
  `Content-Type: application/json` and no other header than the custom ones configured on the
  webhook (we configure `Authorization: Bearer <token>`); body `id`, `timestamp` (nine fractional
  digits in the example), `action`, `target` {mediaType, size, digest, length, repository, tag},
  `request` {id, host, method, useragent}. The `ping` action is the ARM `Webhooks - Ping`
  operation; the reference page shows no ping body, so a ping here keeps the push shape with
  `action: "ping"`.
- Generic: our own format (`generic`), signed like GitHub's `X-Hub-Signature-256` but in
  `X-Signature`.

`with_header` and `with_body` make altered copies of a signed delivery for the negative tests;
`post` sends one and answers (status, body) whatever the status.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import itertools
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ZERO_SHA",
    "Delivery",
    "acr_push",
    "azure_repos_push",
    "generic",
    "github_ping",
    "github_push",
    "hub_signature",
    "post",
    "with_body",
    "with_header",
]

ZERO_SHA = "0" * 40
"""The object id GitHub and Azure Repos send for "no commit" (a created or deleted ref)."""

_HOOKSHOT = "GitHub-Hookshot/044aadd"
"""The user agent of the documentation's example delivery."""
_ENTERPRISE_VERSION = "3.14.0"
_PUSHER = "ade-author"
_PUSHER_ID = 583231
_ZEN = "Anything added dilutes everything else."
_HOOK_URL = "https://operator.example/webhooks/github"
_COMMIT_MESSAGE = "Rebuild the runner image \u2014 bump the tools"
"""Non-ASCII on purpose: GitHub's docs warn that payloads carry unicode (signed as UTF-8)."""
_COMMIT_OFFSET = datetime.timezone(datetime.timedelta(hours=2))
"""GitHub stamps commits with the committer's offset, not UTC."""
_ACR_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_ACR_SIZE = 524
_ACR_USER_AGENT = (
    "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-1025-azure os/linux arch/amd64"
    " UpstreamClient(Docker-Client/24.0.7 \\(linux\\))"
)
_AZURE_NAMESPACE = uuid.UUID("9d6c3e0a-2f7b-4d55-8a8e-5b0f6f1c2a71")
_AZURE_PUSHER = "Jamal Hartnett"
_AZURE_PUSHER_EMAIL = "jamal@fabrikam.example"
_notifications = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One webhook request as the host sends it: its headers and the exact bytes of its body."""

    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header `name` (case-insensitive), or None."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def payload(self) -> Any:
        """The JSON the body carries (from the `payload` field of a form-encoded body)."""
        content_type = self.header("Content-Type") or ""
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = urllib.parse.parse_qs(self.body.decode("ascii"), strict_parsing=True)
            return json.loads(form["payload"][0])
        return json.loads(self.body)


def hub_signature(secret: str, body: bytes, *, digest: str = "sha256") -> str:
    """`digest=` + the hex HMAC of `body` keyed with `secret` (GitHub's `X-Hub-Signature-256`
    with sha256, `X-Hub-Signature` with sha1; also our `X-Signature`)."""
    mac = hmac.new(secret.encode("utf-8"), body, digest).hexdigest()
    return f"{digest}={mac}"


def github_push(
    *,
    secret: str,
    clone_url: str,
    ref: str,
    after: str,
    before: str = ZERO_SHA,
    default_branch: str = "main",
    deleted: bool = False,
    form: bool = False,
    delivery: str | None = None,
) -> Delivery:
    """A signed `push` delivery of the repository at `clone_url` (`https://HOST/OWNER/NAME.git`;
    any host other than github.com is GitHub Enterprise): `ref` moved from `before` to `after`
    with one commit, `after` (a `before` of forty zeros is a created ref). `deleted=True` is a
    deleted ref: then `after` must be `ZERO_SHA` (as GitHub sends it), `before` is the commit the
    ref pointed at, and there are no commits. `form=True` sends the JSON url-encoded in a
    `payload` form field; the signatures are over the form body then."""
    if deleted and after != ZERO_SHA:
        raise ValueError("a deleted ref's `after` is ZERO_SHA (GitHub sends forty zeros)")
    repo = _GitHubRepo.parse(clone_url)
    now = datetime.datetime.now(datetime.UTC)
    created = not deleted and before == ZERO_SHA
    commits: list[dict[str, Any]] = [] if deleted else [_github_commit(repo, after, now)]
    if created:
        compare = f"{repo.html_url}/commit/{after}"
    else:
        compare = f"{repo.html_url}/compare/{before[:12]}...{after[:12]}"
    owner = {
        "name": repo.owner,
        "email": f"{repo.owner}@users.noreply.{repo.hostname}",
        **_github_user(repo.api_root, repo.html_root, repo.owner, _number(repo.owner)),
    }
    payload = {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": repo.json(owner, default_branch=default_branch, pushed_at=now),
        "pusher": {"name": _PUSHER, "email": f"{_PUSHER}@users.noreply.{repo.hostname}"},
        "sender": _github_user(repo.api_root, repo.html_root, _PUSHER, _PUSHER_ID),
        "created": created,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": compare,
        "commits": commits,
        "head_commit": commits[-1] if commits else None,
    }
    return _github_delivery(
        "push",
        payload,
        secret=secret,
        form=form,
        delivery=delivery,
        hook_id=_number(f"{repo.full_name}#hook"),
        target_id=repo.id,
        enterprise_host=repo.enterprise_host,
    )


def github_ping(*, secret: str, delivery: str | None = None) -> Delivery:
    """A signed `ping` delivery, as GitHub sends when a webhook is created (`zen`, `hook_id`,
    `hook` with its configuration)."""
    hook_id = _number("ping#hook")
    stamp = _seconds(datetime.datetime.now(datetime.UTC))
    api = f"https://api.github.com/repos/{_PUSHER}/runner-images/hooks/{hook_id}"
    payload = {
        "zen": _ZEN,
        "hook_id": hook_id,
        "hook": {
            "type": "Repository",
            "id": hook_id,
            "name": "web",
            "active": True,
            "events": ["push"],
            "config": {"content_type": "json", "insecure_ssl": "0", "url": _HOOK_URL},
            "updated_at": stamp,
            "created_at": stamp,
            "url": api,
            "test_url": f"{api}/test",
            "ping_url": f"{api}/pings",
            "deliveries_url": f"{api}/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None},
        },
        "sender": _github_user("https://api.github.com", "https://github.com", _PUSHER, _PUSHER_ID),
    }
    return _github_delivery(
        "ping",
        payload,
        secret=secret,
        form=False,
        delivery=delivery,
        hook_id=hook_id,
        target_id=_number("ping#repository"),
        enterprise_host=None,
    )


def azure_repos_push(
    *,
    username: str,
    password: str,
    remote_url: str,
    ref: str,
    new_object_id: str,
    old_object_id: str = ZERO_SHA,
    default_branch: str = "refs/heads/main",
    event_id: str | None = None,
    created: datetime.datetime | None = None,
) -> Delivery:
    """A `git.push` service hook event of the repository at `remote_url` (sent as is:
    `https://dev.azure.com/ORG/PROJECT/_git/REPO`, `https://ORG@dev.azure.com/...`,
    `https://ORG.visualstudio.com/PROJECT/_git/REPO`, or another host with the same path), posted
    by the Web Hooks consumer with basic authentication. `ref` moved from `old_object_id` to
    `new_object_id` (forty zeros: created or deleted) with one commit unless deleted."""
    repo = _AzureRepo.parse(remote_url)
    when = _utc(created) if created is not None else datetime.datetime.now(datetime.UTC)
    branch = ref.removeprefix("refs/heads/")
    commits: list[dict[str, Any]] = []
    if new_object_id != ZERO_SHA:
        identity = {"name": _AZURE_PUSHER, "email": _AZURE_PUSHER_EMAIL, "date": _seconds(when)}
        commits.append(
            {
                "commitId": new_object_id,
                "author": identity,
                "committer": identity,
                "comment": _COMMIT_MESSAGE,
                "url": f"{repo.web_url}/commit/{new_object_id}",
            }
        )
    pusher_id = str(uuid.uuid5(_AZURE_NAMESPACE, f"user:{_AZURE_PUSHER_EMAIL}"))
    push_id = _number(f"{remote_url}:{new_object_id}") % 100_000
    summary = f"{_AZURE_PUSHER} pushed updates to {repo.name}:{branch}."
    details = summary
    if commits:
        details = (
            f"{_AZURE_PUSHER} pushed a commit to {repo.name}:{branch}.\n"
            f" - {_COMMIT_MESSAGE} {new_object_id[:8]}"
        )
    payload = {
        "subscriptionId": str(uuid.uuid5(_AZURE_NAMESPACE, f"subscription:{remote_url}")),
        "notificationId": next(_notifications),
        "id": event_id or str(uuid.uuid4()),
        "eventType": "git.push",
        "publisherId": "tfs",
        "message": {"text": summary, "html": summary, "markdown": summary},
        "detailedMessage": {"text": details, "html": details, "markdown": details},
        "resource": {
            "commits": commits,
            "refUpdates": [
                {"name": ref, "oldObjectId": old_object_id, "newObjectId": new_object_id}
            ],
            "repository": repo.json(remote_url, default_branch=default_branch),
            "pushedBy": {
                "displayName": _AZURE_PUSHER,
                "url": f"{repo.base_url}/_apis/Identities/{pusher_id}",
                "id": pusher_id,
                "uniqueName": _AZURE_PUSHER_EMAIL,
                "imageUrl": f"{repo.base_url}/_api/_common/identityImage?id={pusher_id}",
                "descriptor": "aad." + base64.b64encode(pusher_id.encode()).decode().rstrip("="),
            },
            "pushId": push_id,
            "date": _ticks(when),
            "url": f"{repo.api_url}/pushes/{push_id}",
        },
        "resourceVersion": "1.0",
        "resourceContainers": {
            "collection": {"id": repo.collection_id, "baseUrl": f"{repo.base_url}/"},
            "account": {"id": repo.account_id, "baseUrl": f"{repo.base_url}/"},
            "project": {"id": repo.project_id, "baseUrl": f"{repo.base_url}/"},
        },
        "createdDate": _ticks(when),
    }
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return Delivery(
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"Basic {credentials}",
        },
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
    )


def acr_push(
    *,
    token: str,
    host: str,
    repository: str,
    tag: str,
    digest: str,
    event_id: str | None = None,
    timestamp: datetime.datetime | None = None,
    action: str = "push",
) -> Delivery:
    """An Azure Container Registry webhook event (`push`, or `action="ping"`) for `repository:tag`
    at `digest` on the registry `host` (`myregistry.azurecr.io`), with the custom header
    `Authorization: Bearer <token>`."""
    when = _utc(timestamp) if timestamp is not None else datetime.datetime.now(datetime.UTC)
    payload = {
        "id": event_id or str(uuid.uuid4()),
        "timestamp": _nanos(when),
        "action": action,
        "target": {
            "mediaType": _ACR_MEDIA_TYPE,
            "size": _ACR_SIZE,
            "digest": digest,
            "length": _ACR_SIZE,
            "repository": repository,
            "tag": tag,
        },
        "request": {
            "id": str(uuid.uuid4()),
            "host": host,
            "method": "PUT",
            "useragent": _ACR_USER_AGENT,
        },
    }
    return Delivery(
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        body=json.dumps(payload).encode("utf-8"),
    )


def generic(
    *,
    secret: str,
    source: Mapping[str, str] | None = None,
    image: Mapping[str, str] | None = None,
    event_id: str | None = None,
    timestamp: datetime.datetime | None = None,
) -> Delivery:
    """Our own format: `{"id", "timestamp" (RFC 3339, UTC, "Z"), "source"?: {url, ref,
    revision}, "image"?: {reference, digest}}`, with `X-Signature: sha256=<hex HMAC-SHA256 of the
    body>`. `source` and `image` are sent as given (a test may send malformed ones)."""
    when = _utc(timestamp) if timestamp is not None else datetime.datetime.now(datetime.UTC)
    payload: dict[str, Any] = {"id": event_id or str(uuid.uuid4()), "timestamp": _seconds(when)}
    if source is not None:
        payload["source"] = dict(source)
    if image is not None:
        payload["image"] = dict(image)
    body = json.dumps(payload).encode("utf-8")
    return Delivery(
        headers={"Content-Type": "application/json", "X-Signature": hub_signature(secret, body)},
        body=body,
    )


def with_header(delivery: Delivery, name: str, value: str | None) -> Delivery:
    """A copy with header `name` (case-insensitive) set to `value`, or removed if None."""
    headers = {k: v for k, v in delivery.headers.items() if k.lower() != name.lower()}
    if value is not None:
        headers[name] = value
    return Delivery(headers=headers, body=delivery.body)


def with_body(delivery: Delivery, body: bytes) -> Delivery:
    """A copy with another body and the same headers (signatures included: no longer valid)."""
    return Delivery(headers=dict(delivery.headers), body=body)


def post(
    url: str,
    delivery: Delivery,
    *,
    timeout: float = 10.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """POST `delivery` to `url`: the status and the body of the answer, 4xx and 5xx included."""
    request = urllib.request.Request(
        url, data=delivery.body, headers=dict(delivery.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


@dataclasses.dataclass(frozen=True)
class _GitHubRepo:
    scheme: str
    netloc: str
    hostname: str
    owner: str
    name: str

    @classmethod
    def parse(cls, clone_url: str) -> _GitHubRepo:
        parts = urllib.parse.urlsplit(clone_url)
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 2 or not parts.hostname:
            raise ValueError(f"not a clone URL https://HOST/OWNER/NAME.git: {clone_url!r}")
        netloc = parts.netloc.rpartition("@")[2]
        name = segments[-1].removesuffix(".git")
        return cls(parts.scheme, netloc, parts.hostname, segments[-2], name)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def id(self) -> int:
        return _number(self.full_name)

    @property
    def enterprise_host(self) -> str | None:
        return None if self.hostname == "github.com" else self.hostname

    @property
    def html_root(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def html_url(self) -> str:
        return f"{self.html_root}/{self.full_name}"

    @property
    def api_root(self) -> str:
        if self.enterprise_host is None:
            return "https://api.github.com"
        return f"{self.html_root}/api/v3"

    def json(
        self, owner: dict[str, Any], *, default_branch: str, pushed_at: datetime.datetime
    ) -> dict[str, Any]:
        api = f"{self.api_root}/repos/{self.full_name}"
        templates = {
            "forks_url": "/forks",
            "keys_url": "/keys{/key_id}",
            "collaborators_url": "/collaborators{/collaborator}",
            "teams_url": "/teams",
            "hooks_url": "/hooks",
            "issue_events_url": "/issues/events{/number}",
            "events_url": "/events",
            "assignees_url": "/assignees{/user}",
            "branches_url": "/branches{/branch}",
            "tags_url": "/tags",
            "blobs_url": "/git/blobs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "trees_url": "/git/trees{/sha}",
            "statuses_url": "/statuses/{sha}",
            "languages_url": "/languages",
            "stargazers_url": "/stargazers",
            "contributors_url": "/contributors",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "commits_url": "/commits{/sha}",
            "git_commits_url": "/git/commits{/sha}",
            "comments_url": "/comments{/number}",
            "issue_comment_url": "/issues/comments{/number}",
            "contents_url": "/contents/{+path}",
            "compare_url": "/compare/{base}...{head}",
            "merges_url": "/merges",
            "archive_url": "/{archive_format}{/ref}",
            "downloads_url": "/downloads",
            "issues_url": "/issues{/number}",
            "pulls_url": "/pulls{/number}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "labels_url": "/labels{/name}",
            "releases_url": "/releases{/id}",
            "deployments_url": "/deployments",
        }
        created_at = int(pushed_at.timestamp()) - 86_400 * 30
        return {
            "id": self.id,
            "node_id": _node_id("Repository", self.id),
            "name": self.name,
            "full_name": self.full_name,
            "private": True,
            "owner": owner,
            "html_url": self.html_url,
            "description": "Runner images for Azure Deployment Environments",
            "fork": False,
            # The push payload's quirk: `url` is the HTML URL here, not the API one.
            "url": self.html_url,
            **{key: api + suffix for key, suffix in templates.items()},
            "created_at": created_at,
            "updated_at": _seconds(pushed_at),
            "pushed_at": int(pushed_at.timestamp()),
            "git_url": f"git://{self.hostname}/{self.full_name}.git",
            "ssh_url": f"git@{self.hostname}:{self.full_name}.git",
            "clone_url": f"{self.html_url}.git",
            "svn_url": self.html_url,
            "homepage": None,
            "size": 42,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": "Dockerfile",
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": 0,
            "license": None,
            "allow_forking": False,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private",
            "forks": 0,
            "open_issues": 0,
            "watchers": 0,
            "default_branch": default_branch,
            "stargazers": 0,
            "master_branch": default_branch,
        }


def _github_user(api_root: str, html_root: str, login: str, number: int) -> dict[str, Any]:
    api = f"{api_root}/users/{login}"
    return {
        "login": login,
        "id": number,
        "node_id": _node_id("User", number),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{number}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{html_root}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "User",
        "user_view_type": "public",
        "site_admin": False,
    }


def _github_commit(repo: _GitHubRepo, sha: str, now: datetime.datetime) -> dict[str, Any]:
    identity = {
        "name": "ADE Author",
        "email": f"{_PUSHER}@users.noreply.{repo.hostname}",
        "username": _PUSHER,
    }
    return {
        "id": sha,
        "tree_id": hashlib.sha1(f"tree:{sha}".encode(), usedforsecurity=False).hexdigest(),
        "distinct": True,
        "message": _COMMIT_MESSAGE,
        "timestamp": now.astimezone(_COMMIT_OFFSET).isoformat(timespec="seconds"),
        "url": f"{repo.html_url}/commit/{sha}",
        "author": identity,
        "committer": identity,
        "added": [],
        "removed": [],
        "modified": ["Dockerfile"],
    }


def _github_delivery(
    event: str,
    payload: Mapping[str, Any],
    *,
    secret: str,
    form: bool,
    delivery: str | None,
    hook_id: int,
    target_id: int,
    enterprise_host: str | None,
) -> Delivery:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    if form:
        body = urllib.parse.urlencode({"payload": text}).encode("ascii")
        content_type = "application/x-www-form-urlencoded"
    else:
        body = text.encode("utf-8")
        content_type = "application/json"
    headers = {
        "User-Agent": _HOOKSHOT,
        "Content-Type": content_type,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": str(hook_id),
        "X-GitHub-Hook-Installation-Target-ID": str(target_id),
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-Hub-Signature": hub_signature(secret, body, digest="sha1"),
        "X-Hub-Signature-256": hub_signature(secret, body),
    }
    if enterprise_host is not None:
        headers["X-GitHub-Enterprise-Version"] = _ENTERPRISE_VERSION
        headers["X-GitHub-Enterprise-Host"] = enterprise_host
    return Delivery(headers=headers, body=body)


@dataclasses.dataclass(frozen=True)
class _AzureRepo:
    base_url: str
    """The organization (collection) URL, without user info: `https://dev.azure.com/ORG`."""
    organization: str
    hostname: str
    project_path: str
    """The project as it appears in the URL (percent-encoded)."""
    repo_path: str

    @classmethod
    def parse(cls, remote_url: str) -> _AzureRepo:
        parts = urllib.parse.urlsplit(remote_url)
        segments = [s for s in parts.path.split("/") if s]
        if "_git" not in segments or not parts.hostname:
            raise ValueError(f"not an Azure Repos URL .../PROJECT/_git/REPO: {remote_url!r}")
        at = segments.index("_git")
        if at < 1 or at + 1 >= len(segments):
            raise ValueError(f"not an Azure Repos URL .../PROJECT/_git/REPO: {remote_url!r}")
        netloc = parts.netloc.rpartition("@")[2]
        collection = segments[: at - 1]
        base_url = "/".join([f"{parts.scheme}://{netloc}", *collection])
        if parts.hostname.endswith(".visualstudio.com"):
            organization = parts.hostname.removesuffix(".visualstudio.com")
        elif collection:
            organization = collection[0]
        else:
            organization = parts.hostname
        return cls(base_url, organization, parts.hostname, segments[at - 1], segments[at + 1])

    @property
    def project(self) -> str:
        return urllib.parse.unquote(self.project_path)

    @property
    def name(self) -> str:
        return urllib.parse.unquote(self.repo_path)

    @property
    def project_id(self) -> str:
        return str(uuid.uuid5(_AZURE_NAMESPACE, f"project:{self.base_url}/{self.project}"))

    @property
    def repo_id(self) -> str:
        key = f"repository:{self.base_url}/{self.project}/{self.name}"
        return str(uuid.uuid5(_AZURE_NAMESPACE, key))

    @property
    def collection_id(self) -> str:
        return str(uuid.uuid5(_AZURE_NAMESPACE, f"collection:{self.base_url}"))

    @property
    def account_id(self) -> str:
        return str(uuid.uuid5(_AZURE_NAMESPACE, f"account:{self.organization}"))

    @property
    def web_url(self) -> str:
        return f"{self.base_url}/{self.project_path}/_git/{self.repo_path}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/{self.project_id}/_apis/git/repositories/{self.repo_id}"

    @property
    def ssh_url(self) -> str:
        path = f"v3/{self.organization}/{self.project_path}/{self.repo_path}"
        if self.hostname.endswith(".visualstudio.com"):
            return f"{self.organization}@vs-ssh.visualstudio.com:{path}"
        return f"git@ssh.{self.hostname}:{path}"

    def json(self, remote_url: str, *, default_branch: str) -> dict[str, Any]:
        return {
            "id": self.repo_id,
            "name": self.name,
            "url": self.api_url,
            "project": {
                "id": self.project_id,
                "name": self.project,
                "url": f"{self.base_url}/_apis/projects/{self.project_id}",
                "state": "wellFormed",
                "revision": 11,
                "visibility": "private",
                "lastUpdateTime": "2024-01-15T09:30:12.457Z",
            },
            "defaultBranch": default_branch,
            "size": 0,
            "remoteUrl": remote_url,
            "sshUrl": self.ssh_url,
            "webUrl": self.web_url,
            "isDisabled": False,
            "isInMaintenance": False,
        }


def _number(key: str) -> int:
    """A stable positive id for `key` (GitHub ids are integers)."""
    return 10_000_000 + zlib.crc32(key.encode()) % 900_000_000


def _node_id(kind: str, number: int) -> str:
    """GitHub's legacy global node id: base64 of `0<len(kind)>:<kind><number>`."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode("ascii")


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"a naive datetime has no time zone: {moment!r}")
    return moment.astimezone(datetime.UTC)


def _seconds(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC to the second, with `Z` (`2019-05-15T15:20:49Z`)."""
    return f"{_utc(moment):%Y-%m-%dT%H:%M:%S}Z"


def _ticks(moment: datetime.datetime) -> str:
    """Azure DevOps' dates: seven fractional digits (`2016-09-19T13:03:27.0379153Z`)."""
    utc = _utc(moment)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}{utc.microsecond % 10}Z"


def _nanos(moment: datetime.datetime) -> str:
    """The registry's timestamps: nine fractional digits (`2017-11-17T16:52:01.343145347Z`)."""
    utc = _utc(moment)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}{utc.microsecond % 997:03d}Z"
