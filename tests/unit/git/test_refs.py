"""The one branch-name rule (`git check-ref-format --branch`), and the forms of a commit id."""

from __future__ import annotations

import pytest

from controller.git import refs

BRANCHES = [
    ("main", True),
    ("release/2024.10", True),
    ("ade/runner-updates", True),
    ("feature/x_y-z", True),
    ("v1.2.3", True),
    ("a@b", True),
    ("", False),
    ("@", False),
    ("-main", False),
    ("/main", False),
    (".main", False),
    ("main/", False),
    ("main.", False),
    ("a..b", False),
    ("a//b", False),
    ("a/.b", False),
    ("a@{1}", False),
    ("has space", False),
    ("tab\there", False),
    ("del\x7f", False),
    ("x:y", False),
    ("x~1", False),
    ("x^", False),
    ("what?", False),
    ("glob*", False),
    ("br[ack", False),
    ("back\\slash", False),
    ("main.lock", False),
    ("a.lock/b", False),
]


@pytest.mark.parametrize(("name", "valid"), BRANCHES)
def test_branch_names(name: str, valid: bool) -> None:
    assert refs.valid_branch(name) is valid


@pytest.mark.parametrize(
    ("text", "full", "short"),
    [
        ("0123456789abcdef0123456789abcdef01234567", True, False),
        ("0123456789ABCDEF0123456789ABCDEF01234567", True, False),
        ("0123abc", False, True),
        ("012345", False, False),
        ("main", False, False),
        ("0123456789abcdef0123456789abcdef012345678", False, False),
    ],
)
def test_commit_ids(text: str, full: bool, short: bool) -> None:
    assert bool(refs.FULL_SHA.fullmatch(text)) is full
    assert bool(refs.SHORT_SHA.fullmatch(text)) is short
