"""The test-only failpoints: armed only by `ADE_FAILPOINTS`, a typo refused, a hit kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from controller import failpoints
from controller.failpoints import Point


def test_nothing_is_armed_without_the_variable() -> None:
    assert failpoints.armed({}) == frozenset()
    assert failpoints.armed({failpoints.ENV: " , "}) == frozenset()


def test_the_variable_names_points() -> None:
    armed = failpoints.armed({failpoints.ENV: "catalog-pushed, build-job-created"})
    assert armed == {Point.CATALOG_PUSHED, Point.BUILD_JOB_CREATED}


def test_a_name_that_is_no_point_is_refused() -> None:
    with pytest.raises(ValueError, match="catalog-push"):
        failpoints.armed({failpoints.ENV: "catalog-push"})


def test_this_test_run_arms_nothing_and_a_hit_returns() -> None:
    assert failpoints.ENV not in os.environ
    for point in Point:
        failpoints.hit(point)  # still alive


def _hit(point: str, armed: str) -> subprocess.CompletedProcess[str]:
    code = f"from controller import failpoints; failpoints.hit(failpoints.Point({point!r}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env={**os.environ, failpoints.ENV: armed},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_armed_point_sigkills_its_process_and_says_where() -> None:
    done = _hit("catalog-pushed", "verifying,catalog-pushed")
    assert done.returncode == -signal.SIGKILL
    assert "failpoint catalog-pushed: SIGKILL" in done.stderr


def test_a_point_not_armed_does_nothing() -> None:
    done = _hit("catalog-pushed", "verifying")
    assert done.returncode == 0, done.stderr
