"""A WebhookReceiver's path and status: unguessable, per receiver, written only when it changes,
and a Secret that cannot verify events stalls naming the key."""

from __future__ import annotations

import pytest

from controller.receivers import paths

TOKEN = "s3cret-webhook-token-1234"


def test_the_path_depends_on_the_token_the_name_and_the_namespace() -> None:
    path = paths.webhook_path(TOKEN, name="github", namespace="team")
    assert path.startswith("/hook/")
    assert len(path) == len("/hook/") + 64
    assert TOKEN not in path
    others = {
        paths.webhook_path(TOKEN + "x", name="github", namespace="team"),
        paths.webhook_path(TOKEN, name="github2", namespace="team"),
        paths.webhook_path(TOKEN, name="github", namespace="team2"),
    }
    assert path not in others
    assert len(others) == 3


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (None, "SecretNotFound", "does not exist"),
        ({}, "TokenMissing", "no key 'token'"),
        ({"token": b"short"}, "TokenTooShort", "at least 16"),
        ({"token": b"\xff" * 20}, "TokenInvalid", "not UTF-8"),
    ],
)
def test_secrets_that_cannot_verify(data: dict[str, bytes] | None, reason: str, words: str) -> None:
    with pytest.raises(paths.SecretProblem) as problem:
        paths.credentials(data, secret_name="hook")
    assert problem.value.reason == reason
    assert words in str(problem.value)
    assert "spec.secretRef.name ('hook')" in str(problem.value)


def test_credentials() -> None:
    found = paths.credentials(
        {"token": b" " + TOKEN.encode() + b"\n", "username": b"u"}, secret_name="s"
    )
    assert (found.token, found.username) == (TOKEN, "u")


def test_the_status_says_ready_with_the_path_and_is_written_once() -> None:
    path = paths.webhook_path(TOKEN, name="n", namespace="ns")
    observed = paths.Observed("GitHub", path, None, listening=True)
    patch = paths.status_patch({}, observed, generation=1, now="2026-12-06T12:00:00Z")
    assert patch["webhookPath"] == path
    (ready,) = patch["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Listening")
    assert path in ready["message"]
    assert paths.status_patch(patch, observed, generation=1, now="2026-12-06T13:00:00Z") == {}


def test_a_problem_stalls_and_removes_the_path() -> None:
    good = paths.Observed("ACR", "/hook/x", None, listening=True)
    old = paths.status_patch({}, good, generation=1, now="t0")
    problem = paths.SecretProblem("TokenMissing", "spec.secretRef.name ('s'): no key 'token'")
    patch = paths.status_patch(
        old, paths.Observed("ACR", None, problem, True), generation=2, now="t1"
    )
    assert patch["webhookPath"] is None
    by_type = {c["type"]: c for c in patch["conditions"]}
    assert by_type["Ready"]["status"] == "False"
    assert by_type["Stalled"]["status"] == "True"
    assert by_type["Stalled"]["reason"] == "TokenMissing"


def test_a_receiver_of_an_operator_that_serves_none_is_not_ready() -> None:
    observed = paths.Observed("ACR", "/hook/x", None, listening=False)
    (ready,) = paths.status_patch({}, observed, generation=1, now="t")["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "ReceiverDisabled")
