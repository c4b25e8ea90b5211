"""The README's first quick-start command works on its own: `hack/demo.sh --once` builds
the example with BuildKit, pushes it to the stack's registry and reports it Ready."""

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
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("-o wide\n", 1)[1].splitlines()
    assert table[0].split()[:5] == ["NAME", "READY", "IMAGE", "CATALOG", "AGE"]
    name, ready, image = table[1].split()[:3]
    assert (name, ready) == ("bicep-runner", "True")
    assert image.startswith("127.0.0.1:5000/ade/bicep-runner:")
    columns = result.stdout.split("NAME           DIGEST", 1)[1].splitlines()[1].split()
    assert columns[0] == "bicep-runner"
    assert columns[1].startswith("sha256:")
    assert columns[2] == "Initial"
    # The whole chain: ADE may pull (anonymous pull turned on through ARM), the catalog moved.
    assert "anonymousPullEnabled=True, publicNetworkAccess=Enabled" in result.stdout
    assert "catalog syncs: ['Succeeded']" in result.stdout
    commit = result.stdout.split("the catalog commit (git log -p -1):", 1)[1]
    assert "Environments/webapp/environment.yaml" in commit
    assert f"+runner: {image}" in commit or f'+runner: "{image}"' in commit
