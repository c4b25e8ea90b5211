"""The README's first quick-start command works on its own: `hack/demo.sh --once`."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from tests.env import controlplane

pytestmark = pytest.mark.e2e


def test_demo_brings_up_the_stack_and_reports_the_example(tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [str(controlplane.REPO / "hack" / "demo.sh"), "--once", "--dir", str(tmp_path / "stack")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("-o wide\n", 1)[1].splitlines()
    assert table[0].split()[:5] == ["NAME", "READY", "IMAGE", "CATALOG", "AGE"]
    assert table[1].split()[:2] == ["bicep-runner", "False"]
    assert "Observed Generation:   1" in result.stdout
