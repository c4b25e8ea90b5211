"""Names git reads as refs: the one branch-name rule, and the forms of a commit id (pure)."""

from __future__ import annotations

import re

_BRANCH_FORBIDDEN = re.compile(
    r"^[-/.]|\.\.|//|/\.|@\{|[\x00-\x20\x7f~^:?*\[\\]|[/.]$|\.lock$|\.lock/"
)

FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
"""A commit id as SHA-1 (either case); `fullmatch` it."""

SHORT_SHA = re.compile(r"[0-9a-fA-F]{7,39}")
"""What looks like an abbreviated commit id; `fullmatch` it."""


def valid_branch(name: str) -> bool:
    """Whether `name` is a branch name git accepts (`git check-ref-format --branch`): not empty,
    not "@" and not starting with "-"; no "..", "//", "@{", space, control character or any of
    ``~^:?*[\\``; no component starting with "." or ending with ".lock"; no leading or trailing
    "/" and no trailing "."."""
    return bool(name) and name != "@" and not _BRANCH_FORBIDDEN.search(name)
