"""controller.observe.status.built_at: the latest build's time, from a status and its patch."""

from __future__ import annotations

from typing import Any

import pytest

from controller.observe import status

STAMP = "2026-01-02T03:04:05Z"
SECONDS = 1767323045.0


@pytest.mark.parametrize(
    ("old", "patch", "expected"),
    [
        ({}, {}, None),
        ({"latestImage": {"builtAt": STAMP}}, {}, SECONDS),
        ({}, {"latestImage": {"builtAt": STAMP, "digest": "sha256:x"}}, SECONDS),
        (
            {"latestImage": {"builtAt": "2020-01-01T00:00:00Z"}},
            {"latestImage": {"builtAt": STAMP}},
            SECONDS,
        ),
        ({"latestImage": {"builtAt": STAMP}}, {"latestImage": {"reason": "Manual"}}, SECONDS),
        ({"latestImage": {"builtAt": STAMP}}, {"latestImage": None}, None),
        ({"latestImage": {"builtAt": "yesterday"}}, {}, None),
        ({"latestImage": "odd"}, {}, None),
    ],
)
def test_built_at(old: dict[str, Any], patch: dict[str, Any], expected: float | None) -> None:
    assert status.built_at(old, patch) == expected
