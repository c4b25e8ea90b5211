"""The hosts' documented deliveries (tests.env.webhooks, built without the operator's code) read
into events, and the shapes that must be refused, naming the field."""

from __future__ import annotations

import datetime
import json

import pytest

from controller.receivers import events, payloads
from tests.env import webhooks

SECRET = "s3cret-webhook-token-1234"
COMMIT = "3" * 40
DIGEST = "sha256:" + "a" * 64


def _read(kind: str, delivery: webhooks.Delivery) -> events.Event:
    headers = {name.lower(): value for name, value in delivery.headers.items()}
    return payloads.read(kind, headers, delivery.body)


@pytest.mark.parametrize("form", [False, True])
def test_a_github_push_names_the_repository_by_all_its_urls(form: bool) -> None:
    delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/contoso/runners.git",
        ref="refs/heads/main",
        after=COMMIT,
        form=form,
    )
    event = _read(events.GITHUB, delivery)
    (push,) = event.changes
    assert isinstance(push, events.SourcePush)
    assert push.ref == "refs/heads/main"
    assert push.revision == COMMIT
    assert push.default_branch == "main"
    assert "https://github.com/contoso/runners.git" in push.urls
    assert "git@github.com:contoso/runners.git" in push.urls
    assert event.delivery == delivery.header("X-GitHub-Delivery")
    assert event.ignored is None


def test_a_deleted_branch_is_a_push_without_a_revision() -> None:
    delivery = webhooks.github_push(
        secret=SECRET,
        clone_url="https://github.com/contoso/runners.git",
        ref="refs/heads/gone",
        after=webhooks.ZERO_SHA,
        before=COMMIT,
        deleted=True,
    )
    (push,) = _read(events.GITHUB, delivery).changes
    assert isinstance(push, events.SourcePush)
    assert push.revision is None


def test_a_github_ping_and_other_events_change_nothing() -> None:
    assert (
        _read(events.GITHUB, webhooks.github_ping(secret=SECRET)).ignored == "a GitHub ping event"
    )
    issue = webhooks.with_header(webhooks.github_ping(secret=SECRET), "X-GitHub-Event", "issues")
    assert _read(events.GITHUB, issue).ignored == "a GitHub issues event"


@pytest.mark.parametrize(
    "remote",
    [
        "https://dev.azure.com/contoso/Platform%20Team/_git/runners",
        "https://contoso@dev.azure.com/contoso/Platform%20Team/_git/runners",
        "https://contoso.visualstudio.com/Platform%20Team/_git/runners",
    ],
)
def test_an_azure_repos_push_gives_each_ref_update(remote: str) -> None:
    created = datetime.datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=datetime.UTC)
    delivery = webhooks.azure_repos_push(
        username="hook",
        password=SECRET,
        remote_url=remote,
        ref="refs/heads/main",
        new_object_id=COMMIT,
        event_id="e1",
        created=created,
    )
    event = _read(events.AZURE_REPOS, delivery)
    (push,) = event.changes
    assert isinstance(push, events.SourcePush)
    assert (push.ref, push.revision, push.default_branch) == ("refs/heads/main", COMMIT, "main")
    assert remote in push.urls
    assert event.delivery == "e1"
    assert event.sent_at == created


def test_an_acr_push_names_the_registry_repository_tag_and_digest() -> None:
    stamp = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.UTC)
    delivery = webhooks.acr_push(
        token=SECRET,
        host="contoso.azurecr.io",
        repository="base/runner",
        tag="1.2",
        digest=DIGEST,
        event_id="acr-1",
        timestamp=stamp,
    )
    event = _read(events.ACR, delivery)
    assert event.changes == (events.ImagePush("contoso.azurecr.io", "base/runner", "1.2", DIGEST),)
    assert (event.delivery, event.sent_at) == ("acr-1", stamp)
    ping = webhooks.acr_push(
        token=SECRET, host="contoso.azurecr.io", repository="r", tag="t", digest=DIGEST,
        action="ping",
    )  # fmt: skip
    assert _read(events.ACR, ping).ignored == "an ACR ping event"


def test_the_generic_form_names_a_source_and_an_image() -> None:
    delivery = webhooks.generic(
        secret=SECRET,
        source={"url": "https://git.example/runners.git", "ref": "main", "revision": COMMIT},
        image={"reference": "contoso.azurecr.io/base/runner:1.2", "digest": DIGEST},
        event_id="g1",
    )
    event = _read(events.GENERIC, delivery)
    assert event.changes == (
        events.SourcePush(("https://git.example/runners.git",), "main", COMMIT),
        events.ImagePush("contoso.azurecr.io", "base/runner", "1.2", DIGEST),
    )
    assert event.delivery == "g1"


T0 = "2026-12-06T12:00:00Z"
PUSHED = {"eventType": "git.push"}


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        (events.ACR, b"not json", "not JSON"),
        (events.ACR, [1, 2], "not a JSON object"),
        (
            events.ACR,
            {"action": "push", "target": {}, "request": {"host": "h.io"}},
            "target.repository",
        ),
        (
            events.AZURE_REPOS,
            {**PUSHED, "resource": {"repository": {"remoteUrl": "https://x/y"}}},
            "resource.refUpdates",
        ),
        (events.AZURE_REPOS, {**PUSHED, "resource": {"repository": {}}}, "remoteUrl"),
        (events.GENERIC, {"id": "1", "timestamp": T0}, "neither a source nor an image"),
        (
            events.GENERIC,
            {"id": "1", "timestamp": "yesterday", "image": {"reference": "a/b:c"}},
            "timestamp",
        ),
        (events.GENERIC, {"timestamp": T0, "image": {"reference": "a/b:c"}}, "id"),
        (
            events.GENERIC,
            {"id": "1", "timestamp": T0, "image": {"reference": "UPPER CASE"}},
            "image.reference",
        ),
        (
            events.GENERIC,
            {"id": "1", "timestamp": T0, "source": {"url": "u", "ref": "main", "revision": "HEAD"}},
            "source.revision",
        ),
    ],
)
def test_a_shape_that_breaks_its_promise_is_malformed_naming_the_field(
    kind: str, body: object, field: str
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(events.Refused) as refused:
        payloads.read(kind, {}, raw)
    assert (refused.value.status, refused.value.outcome) == (400, events.MALFORMED)
    assert field in str(refused.value)


def test_a_github_delivery_without_its_event_header_is_malformed() -> None:
    delivery = webhooks.with_header(webhooks.github_ping(secret=SECRET), "X-GitHub-Event", None)
    with pytest.raises(events.Refused, match="X-GitHub-Event"):
        _read(events.GITHUB, delivery)


def test_a_github_push_without_urls_is_malformed() -> None:
    delivery = webhooks.github_push(
        secret=SECRET, clone_url="https://github.com/c/r.git", ref="refs/heads/main", after=COMMIT
    )
    body = json.loads(delivery.body)
    body["repository"] = {"name": "r"}
    with pytest.raises(events.Refused, match="clone_url"):
        _read(events.GITHUB, webhooks.with_body(delivery, json.dumps(body).encode()))
