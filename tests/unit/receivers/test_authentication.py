"""The proof of the token each host's scheme carries: only the right token passes; a missing
or wrong one is a 401 that repeats nothing sent."""

from __future__ import annotations

import base64

import pytest

from controller.receivers import authentication, events
from tests.env import webhooks

TOKEN = "s3cret-webhook-token-1234"
GOOD = authentication.Credentials(token=TOKEN)
COMMIT = "4" * 40


def _check(kind: str, delivery: webhooks.Delivery, credentials: authentication.Credentials) -> None:
    headers = {name.lower(): value for name, value in delivery.headers.items()}
    authentication.check(kind, headers, delivery.body, credentials)


def _refused(
    kind: str, delivery: webhooks.Delivery, credentials: authentication.Credentials
) -> str:
    with pytest.raises(events.Refused) as refused:
        _check(kind, delivery, credentials)
    assert (refused.value.status, refused.value.outcome) == (401, events.UNAUTHORIZED)
    assert TOKEN not in str(refused.value)
    return str(refused.value)


def _github(form: bool = False) -> webhooks.Delivery:
    return webhooks.github_push(
        secret=TOKEN,
        clone_url="https://github.com/c/r.git",
        ref="refs/heads/main",
        after=COMMIT,
        form=form,
    )


@pytest.mark.parametrize("form", [False, True])
def test_github_signatures(form: bool) -> None:
    delivery = _github(form)
    _check(events.GITHUB, delivery, GOOD)
    wrong = authentication.Credentials(token="another-token-of-16-chars")
    assert "does not match" in _refused(events.GITHUB, delivery, wrong)
    tampered = webhooks.with_body(delivery, delivery.body.replace(b"main", b"evil"))
    assert "does not match" in _refused(events.GITHUB, tampered, GOOD)
    # the SHA-1 signature alone is not enough
    unsigned = webhooks.with_header(delivery, "X-Hub-Signature-256", None)
    assert "no X-Hub-Signature-256" in _refused(events.GITHUB, unsigned, GOOD)


def test_generic_signature() -> None:
    delivery = webhooks.generic(secret=TOKEN, image={"reference": "r.io/a/b:1"})
    _check(events.GENERIC, delivery, GOOD)
    resent = webhooks.with_body(delivery, delivery.body + b" ")
    assert "X-Signature does not match" in _refused(events.GENERIC, resent, GOOD)
    # GitHub's header is not the generic form's
    moved = webhooks.with_header(
        webhooks.with_header(delivery, "X-Signature", None),
        "X-Hub-Signature-256",
        str(delivery.header("X-Signature")),
    )
    assert "no X-Signature" in _refused(events.GENERIC, moved, GOOD)


def test_azure_repos_basic_authentication() -> None:
    delivery = webhooks.azure_repos_push(
        username="hook",
        password=TOKEN,
        remote_url="https://dev.azure.com/o/p/_git/r",
        ref="refs/heads/main",
        new_object_id=COMMIT,
    )
    _check(events.AZURE_REPOS, delivery, GOOD)
    _check(events.AZURE_REPOS, delivery, authentication.Credentials(TOKEN, username="hook"))
    named = authentication.Credentials(TOKEN, username="someone-else")
    assert "user name or password" in _refused(events.AZURE_REPOS, delivery, named)
    wrong = webhooks.with_header(
        delivery, "Authorization", "Basic " + base64.b64encode(b"hook:guess").decode()
    )
    _refused(events.AZURE_REPOS, wrong, GOOD)
    garbage = webhooks.with_header(delivery, "Authorization", "Basic %%%")
    assert "not base64" in _refused(events.AZURE_REPOS, garbage, GOOD)
    bare = webhooks.with_header(delivery, "Authorization", None)
    assert "no Authorization" in _refused(events.AZURE_REPOS, bare, GOOD)


def test_acr_bearer_token() -> None:
    delivery = webhooks.acr_push(
        token=TOKEN, host="c.azurecr.io", repository="r", tag="t", digest="sha256:" + "b" * 64
    )
    _check(events.ACR, delivery, GOOD)
    wrong = webhooks.with_header(delivery, "Authorization", "Bearer not-the-token-at-all")
    assert "bearer token" in _refused(events.ACR, wrong, GOOD)
    empty = webhooks.with_header(delivery, "Authorization", "Bearer ")
    _refused(events.ACR, empty, GOOD)


def test_credentials_never_show_the_token() -> None:
    assert TOKEN not in repr(authentication.Credentials(TOKEN, username="u"))
