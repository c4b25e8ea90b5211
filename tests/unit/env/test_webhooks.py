"""The webhook senders of the test environment (`tests.env.webhooks`) checked against the hosts'
documentation, independently of the operator: signatures verify with `hmac.compare_digest` over
the exact bytes sent (and GitHub's published test vector), the form encoding round-trips, basic
authentication decodes, the bodies carry the documented keys, and `post` delivers the bytes
as they are and answers 4xx without raising."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tests.env import httpserver, webhooks
from tests.env.webhooks import ZERO_SHA, Delivery

SECRET = "s3cr\u00e9t"
AFTER = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
BEFORE = "aad331d8d3b131fa9ae03cf5e53965b51942618a"
DIGEST = "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d"
PUSH_REQUIRED = {
    "after",
    "base_ref",
    "before",
    "commits",
    "compare",
    "created",
    "deleted",
    "forced",
    "head_commit",
    "pusher",
    "ref",
    "repository",
    "sender",
}
"""The `required` list of GitHub's push event schema."""


def _verifies(secret: str, body: bytes, header: str | None, algorithm: str) -> bool:
    """A receiver's check, written from GitHub's documentation (not with the sender's helper)."""
    assert header is not None
    expected = algorithm + "=" + hmac.new(secret.encode(), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, header)


def test_signature_matches_githubs_documented_test_vector() -> None:
    signature = webhooks.hub_signature("It's a Secret to Everybody", b"Hello, World!")
    assert signature == ("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")


def test_github_push_is_signed_over_the_exact_body() -> None:
    delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/acme/runner-images.git",
        ref="refs/heads/main",
        after=AFTER,
        before=BEFORE,
    )
    assert delivery.header("content-type") == "application/json"
    assert _verifies(SECRET, delivery.body, delivery.header("X-Hub-Signature-256"), "sha256")
    assert _verifies(SECRET, delivery.body, delivery.header("X-Hub-Signature"), "sha1")
    assert not _verifies("other", delivery.body, delivery.header("X-Hub-Signature-256"), "sha256")
    reserialized = json.dumps(json.loads(delivery.body)).encode()
    assert not _verifies(SECRET, reserialized, delivery.header("X-Hub-Signature-256"), "sha256")


def test_github_push_headers_are_githubs() -> None:
    delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/acme/runner-images.git",
        ref="refs/heads/main",
        after=AFTER,
        delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958",
    )
    assert delivery.header("X-GitHub-Event") == "push"
    assert delivery.header("X-GitHub-Delivery") == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert (delivery.header("User-Agent") or "").startswith("GitHub-Hookshot/")
    assert (delivery.header("X-GitHub-Hook-ID") or "").isdigit()
    assert delivery.header("X-GitHub-Hook-Installation-Target-Type") == "repository"
    payload = delivery.payload()
    assert delivery.header("X-GitHub-Hook-Installation-Target-ID") == str(
        payload["repository"]["id"]
    )
    assert delivery.header("X-GitHub-Enterprise-Host") is None
    fresh = webhooks.github_push(
        secret=SECRET, clone_url="https://github.com/a/b.git", ref="refs/heads/x", after=AFTER
    )
    uuid.UUID(fresh.header("X-GitHub-Delivery") or "")


def test_github_push_body_has_the_documented_shape() -> None:
    delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/acme/runner-images.git",
        ref="refs/heads/release",
        after=AFTER,
        before=BEFORE,
        default_branch="trunk",
    )
    payload = delivery.payload()
    assert payload.keys() >= PUSH_REQUIRED
    assert (payload["ref"], payload["before"], payload["after"]) == (
        "refs/heads/release",
        BEFORE,
        AFTER,
    )
    assert (payload["created"], payload["deleted"], payload["forced"]) == (False, False, False)
    assert payload["base_ref"] is None
    assert payload["compare"] == (
        "https://github.com/acme/runner-images/compare/aad331d8d3b1...6113728f27ae"
    )
    [commit] = payload["commits"]
    assert commit["id"] == AFTER
    assert payload["head_commit"] == commit
    assert {"tree_id", "distinct", "message", "timestamp", "url", "author", "committer"} <= (
        commit.keys()
    )
    assert {"added", "removed", "modified"} <= commit.keys()
    datetime.datetime.fromisoformat(commit["timestamp"])
    repository = payload["repository"]
    assert {
        "id",
        "node_id",
        "name",
        "full_name",
        "private",
        "owner",
        "html_url",
        "url",
        "clone_url",
        "git_url",
        "ssh_url",
        "default_branch",
        "master_branch",
        "pushed_at",
    } <= repository.keys()
    assert repository["name"] == "runner-images"
    assert repository["full_name"] == "acme/runner-images"
    assert repository["owner"]["login"] == "acme"
    assert repository["html_url"] == "https://github.com/acme/runner-images"
    assert repository["clone_url"] == "https://github.com/acme/runner-images.git"
    assert repository["ssh_url"] == "git@github.com:acme/runner-images.git"
    assert repository["git_url"] == "git://github.com/acme/runner-images.git"
    assert repository["default_branch"] == repository["master_branch"] == "trunk"
    assert isinstance(repository["pushed_at"], int)
    assert base64.b64decode(repository["node_id"]) == f"010:Repository{repository['id']}".encode()
    assert {"name", "email"} <= payload["pusher"].keys()
    assert {"login", "id", "type"} <= payload["sender"].keys()


def test_github_push_to_enterprise_derives_urls_from_the_clone_url() -> None:
    delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="http://127.0.0.1:8443/platform/runner.git",
        ref="refs/heads/main",
        after=AFTER,
    )
    repository = delivery.payload()["repository"]
    assert repository["clone_url"] == "http://127.0.0.1:8443/platform/runner.git"
    assert repository["html_url"] == "http://127.0.0.1:8443/platform/runner"
    assert repository["ssh_url"] == "git@127.0.0.1:platform/runner.git"
    assert repository["hooks_url"] == "http://127.0.0.1:8443/api/v3/repos/platform/runner/hooks"
    assert delivery.header("X-GitHub-Enterprise-Host") == "127.0.0.1"
    payload = delivery.payload()
    assert payload["created"] is True
    assert payload["compare"] == f"http://127.0.0.1:8443/platform/runner/commit/{AFTER}"


def test_github_push_of_a_deleted_ref_has_no_commits() -> None:
    delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/acme/runner-images.git",
        ref="refs/tags/v1",
        after=ZERO_SHA,
        before=BEFORE,
        deleted=True,
    )
    payload = delivery.payload()
    assert payload["deleted"] is True
    assert payload["created"] is False
    assert payload["after"] == ZERO_SHA
    assert payload["commits"] == []
    assert payload["head_commit"] is None
    with pytest.raises(ValueError, match="ZERO_SHA"):
        webhooks.github_push(
            secret=SECRET,
            clone_url="https://github.com/acme/runner-images.git",
            ref="refs/heads/main",
            after=AFTER,
            deleted=True,
        )


def test_github_push_as_a_form_round_trips_and_is_signed_over_the_form() -> None:
    as_json = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/acme/runner-images.git",
        ref="refs/heads/main",
        after=AFTER,
    )
    delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/acme/runner-images.git",
        ref="refs/heads/main",
        after=AFTER,
        form=True,
    )
    assert delivery.header("Content-Type") == "application/x-www-form-urlencoded"
    assert delivery.body.startswith(b"payload=")
    form = urllib.parse.parse_qs(delivery.body.decode("ascii"), strict_parsing=True)
    assert list(form) == ["payload"]
    embedded = form["payload"][0].encode("utf-8")
    payload = json.loads(embedded)
    assert payload["after"] == AFTER
    assert payload.keys() == json.loads(as_json.body).keys()
    assert "\u2014" in payload["head_commit"]["message"]
    signature = delivery.header("X-Hub-Signature-256")
    assert _verifies(SECRET, delivery.body, signature, "sha256")
    assert _verifies(SECRET, delivery.body, delivery.header("X-Hub-Signature"), "sha1")
    assert not _verifies(SECRET, embedded, signature, "sha256")


def test_github_ping() -> None:
    delivery = webhooks.github_ping(secret=SECRET, delivery="d4049330-377e-11ed-9c2e-1ae286aab35f")
    assert delivery.header("X-GitHub-Event") == "ping"
    assert delivery.header("X-GitHub-Delivery") == "d4049330-377e-11ed-9c2e-1ae286aab35f"
    assert _verifies(SECRET, delivery.body, delivery.header("X-Hub-Signature-256"), "sha256")
    payload = delivery.payload()
    assert {"zen", "hook_id", "hook"} <= payload.keys()
    assert payload["hook_id"] == payload["hook"]["id"]
    assert str(payload["hook_id"]) == delivery.header("X-GitHub-Hook-ID")
    hook = payload["hook"]
    assert {"active", "config", "created_at", "events", "id", "name", "type", "url"} <= (
        hook.keys()
    )
    assert {"content_type", "insecure_ssl", "url"} <= hook["config"].keys()


AZURE_URLS = [
    (
        "https://dev.azure.com/fabrikam/Fabrikam%20Fiber/_git/runner-images",
        "https://dev.azure.com/fabrikam",
        "git@ssh.dev.azure.com:v3/fabrikam/Fabrikam%20Fiber/runner-images",
    ),
    (
        "https://fabrikam@dev.azure.com/fabrikam/Fabrikam%20Fiber/_git/runner-images",
        "https://dev.azure.com/fabrikam",
        "git@ssh.dev.azure.com:v3/fabrikam/Fabrikam%20Fiber/runner-images",
    ),
    (
        "https://fabrikam.visualstudio.com/Fabrikam%20Fiber/_git/runner-images",
        "https://fabrikam.visualstudio.com",
        "fabrikam@vs-ssh.visualstudio.com:v3/fabrikam/Fabrikam%20Fiber/runner-images",
    ),
]


@pytest.mark.parametrize(("remote_url", "base_url", "ssh_url"), AZURE_URLS)
def test_azure_repos_push(remote_url: str, base_url: str, ssh_url: str) -> None:
    created = datetime.datetime(2024, 5, 2, 19, 17, 13, 330958, tzinfo=datetime.UTC)
    delivery = webhooks.azure_repos_push(
        username="hook",
        password="p\u00e4ss:word",
        remote_url=remote_url,
        ref="refs/heads/main",
        new_object_id=AFTER,
        old_object_id=BEFORE,
        event_id="03c164c2-8912-4d5e-8009-3707d5f83734",
        created=created,
    )
    scheme, _, encoded = (delivery.header("Authorization") or "").partition(" ")
    assert scheme == "Basic"
    username, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    assert (username, password) == ("hook", "p\u00e4ss:word")
    assert (delivery.header("Content-Type") or "").startswith("application/json")
    payload = delivery.payload()
    assert {
        "subscriptionId",
        "notificationId",
        "id",
        "eventType",
        "publisherId",
        "message",
        "detailedMessage",
        "resource",
        "resourceVersion",
        "resourceContainers",
        "createdDate",
    } <= payload.keys()
    assert payload["id"] == "03c164c2-8912-4d5e-8009-3707d5f83734"
    assert (payload["eventType"], payload["publisherId"]) == ("git.push", "tfs")
    assert payload["createdDate"].startswith("2024-05-02T19:17:13.330958")
    assert datetime.datetime.fromisoformat(payload["createdDate"]) == created
    resource = payload["resource"]
    assert {"commits", "refUpdates", "repository", "pushedBy", "pushId", "date", "url"} <= (
        resource.keys()
    )
    assert resource["refUpdates"] == [
        {"name": "refs/heads/main", "oldObjectId": BEFORE, "newObjectId": AFTER}
    ]
    [commit] = resource["commits"]
    assert commit["commitId"] == AFTER
    repository = resource["repository"]
    assert repository["remoteUrl"] == remote_url
    assert repository["name"] == "runner-images"
    assert repository["project"]["name"] == "Fabrikam Fiber"
    assert repository["defaultBranch"] == "refs/heads/main"
    assert repository["webUrl"] == f"{base_url}/Fabrikam%20Fiber/_git/runner-images"
    assert repository["sshUrl"] == ssh_url
    assert repository["url"].startswith(f"{base_url}/")
    uuid.UUID(repository["id"])
    assert {"collection", "account", "project"} <= payload["resourceContainers"].keys()


def test_azure_repos_push_of_a_deleted_branch_has_no_commits() -> None:
    delivery = webhooks.azure_repos_push(
        username="hook",
        password="pw",
        remote_url="https://dev.azure.com/fabrikam/web/_git/runner",
        ref="refs/heads/old",
        new_object_id=ZERO_SHA,
        old_object_id=BEFORE,
    )
    resource = delivery.payload()["resource"]
    assert resource["commits"] == []
    assert resource["refUpdates"][0]["newObjectId"] == ZERO_SHA


def test_acr_push() -> None:
    when = datetime.datetime(2017, 11, 17, 16, 52, 1, 343145, tzinfo=datetime.UTC)
    delivery = webhooks.acr_push(
        token="t0ken",
        host="myregistry.azurecr.io",
        repository="hello-world",
        tag="v1",
        digest=DIGEST,
        event_id="cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
        timestamp=when,
    )
    assert delivery.headers == {
        "Content-Type": "application/json",
        "Authorization": "Bearer t0ken",
    }
    payload = delivery.payload()
    assert payload.keys() == {"id", "timestamp", "action", "target", "request"}
    assert payload["id"] == "cb8c3971-9adc-488b-bdd8-43cbb4974ff5"
    assert payload["action"] == "push"
    assert payload["timestamp"].startswith("2017-11-17T16:52:01.343145")
    assert len(payload["timestamp"].rpartition(".")[2]) == len("343145347Z")
    assert datetime.datetime.fromisoformat(payload["timestamp"]) == when
    target = payload["target"]
    assert target.keys() == {"mediaType", "size", "digest", "length", "repository", "tag"}
    assert (target["repository"], target["tag"], target["digest"]) == ("hello-world", "v1", DIGEST)
    assert target["size"] == target["length"]
    request = payload["request"]
    assert request.keys() == {"id", "host", "method", "useragent"}
    assert (request["host"], request["method"]) == ("myregistry.azurecr.io", "PUT")
    ping = webhooks.acr_push(
        token="t0ken", host="r.azurecr.io", repository="r", tag="t", digest=DIGEST, action="ping"
    )
    assert ping.payload()["action"] == "ping"


def test_generic() -> None:
    source = {"url": "https://git.example/acme/runner.git", "ref": "refs/heads/main"}
    source["revision"] = AFTER
    image = {"reference": "myregistry.azurecr.io/runner:v1", "digest": DIGEST}
    delivery = webhooks.generic(
        secret=SECRET,
        source=source,
        image=image,
        event_id="evt-1",
        timestamp=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    )
    assert delivery.header("Content-Type") == "application/json"
    assert _verifies(SECRET, delivery.body, delivery.header("X-Signature"), "sha256")
    payload = delivery.payload()
    assert payload == {
        "id": "evt-1",
        "timestamp": "2024-01-02T03:04:05Z",
        "source": source,
        "image": image,
    }
    bare = webhooks.generic(secret=SECRET).payload()
    assert bare.keys() == {"id", "timestamp"}
    assert bare["timestamp"].endswith("Z")
    with pytest.raises(ValueError, match="naive"):
        webhooks.generic(secret=SECRET, timestamp=datetime.datetime(2024, 1, 2))


def test_tampering_helpers_copy() -> None:
    delivery = webhooks.generic(secret=SECRET, source={"url": "u", "ref": "r", "revision": "x"})
    tampered = webhooks.with_body(delivery, delivery.body.replace(b'"x"', b'"y"'))
    assert tampered.headers == delivery.headers
    assert tampered.headers is not delivery.headers
    assert not _verifies(SECRET, tampered.body, tampered.header("X-Signature"), "sha256")
    assert _verifies(SECRET, delivery.body, delivery.header("X-Signature"), "sha256")
    unsigned = webhooks.with_header(delivery, "x-signature", None)
    assert unsigned.header("X-Signature") is None
    assert delivery.header("X-Signature") is not None
    forged = webhooks.with_header(delivery, "X-SIGNATURE", "sha256=00")
    assert forged.header("x-signature") == "sha256=00"
    assert len(forged.headers) == len(delivery.headers)


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status = 401 if self.path == "/refuse" else 202
        answer = json.dumps({"digest": hashlib.sha256(body).hexdigest()}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen.clear()
    server = httpserver.LoopbackServer("webhook-recorder")
    server.start(_Recorder)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_post_delivers_the_exact_bytes_and_answers_4xx(recorder: str) -> None:
    delivery: Delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/acme/runner-images.git",
        ref="refs/heads/main",
        after=AFTER,
    )
    status, answer = webhooks.post(f"{recorder}/hooks", delivery)
    assert status == 202
    assert json.loads(answer) == {"digest": hashlib.sha256(delivery.body).hexdigest()}
    headers, body = _Recorder.seen[-1]
    assert body == delivery.body
    for name, value in delivery.headers.items():
        assert headers[name.lower()] == value
    status, _ = webhooks.post(f"{recorder}/refuse", delivery)
    assert status == 401
