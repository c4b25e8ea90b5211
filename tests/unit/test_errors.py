"""Typed reconcile errors and credential redaction in controller.errors."""

from __future__ import annotations

import time

import pytest

from controller import errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:secret@example.com/repo.git", "https://***@example.com/repo.git"),
        ("http://user:secret@example.com:8080/x", "http://***@example.com:8080/x"),
        ("ssh://git:secret@example.com/org/repo", "ssh://***@example.com/org/repo"),
        ("https://token@github.com/org/repo", "https://***@github.com/org/repo"),
        (
            "git clone https://u:p1@a.example/r failed; retry https://v:p2@b.example/s",
            "git clone https://***@a.example/r failed; retry https://***@b.example/s",
        ),
        (
            "fatal: could not read from 'https://x-access-token:ghp_abc@github.com/o/r.git'",
            "fatal: could not read from 'https://***@github.com/o/r.git'",
        ),
    ],
)
def test_redact_strips_userinfo(text: str, expected: str) -> None:
    assert errors.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nothing to see here",
        "https://github.com/org/repo.git",
        "https://github.com/org/repo@v1.2",
        "mail ops@example.com about it",
        "git@github.com:org/repo.git",
        "ratio 3:4 @ noon",
    ],
)
def test_redact_leaves_other_text_alone(text: str) -> None:
    assert errors.redact(text) == text


def test_redact_password_never_survives() -> None:
    redacted = errors.redact("error at https://alice:hunter2@host.example/path")
    assert "hunter2" not in redacted
    assert "alice" not in redacted
    assert "host.example/path" in redacted


def test_spec_error_carries_field_problem_and_reason() -> None:
    error = errors.SpecError("spec.image.registry", "is required")
    assert isinstance(error, errors.StalledError)
    assert error.reason == "InvalidSpec"
    assert error.field == "spec.image.registry"
    assert error.problem == "is required"
    assert error.message == "spec.image.registry: is required"
    assert str(error) == error.message


def test_transient_error_retry_after() -> None:
    assert errors.TransientError("Net", "down").retry_after is None
    error = errors.TransientError("Net", "down", retry_after=12.5)
    assert error.retry_after == 12.5
    assert (error.reason, error.message) == ("Net", "down")
    assert not isinstance(error, errors.StalledError)


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "x" * 500_000 + "https://u:p@h/" + "y" * 500_000,
        "a://" * 250_000,
        "https://" + "b" * 1_000_000,
    ],
)
def test_redact_takes_linear_time_on_huge_text(text: str) -> None:
    # A 1 MiB spec value quoted in a message: the search once took quadratic time (hours).
    started = time.monotonic()
    redacted = errors.redact(text)
    assert time.monotonic() - started < 2.0
    assert "u:p@" not in redacted
