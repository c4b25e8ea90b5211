"""One BuildKit release everywhere: the Job backend's pinned image, the operator image's buildctl
and the test environment's compiled buildkitd/buildctl (and the image the real node runs)."""

from __future__ import annotations

import pathlib
import re

from controller.builds import job

REPO = pathlib.Path(__file__).resolve().parents[3]


def pins() -> dict[str, str]:
    text = (REPO / "hack" / "tools.versions").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, re.MULTILINE))


def test_the_job_backend_runs_the_pinned_release() -> None:
    assert f"moby/buildkit:{pins()['BUILDKIT_VERSION']}-rootless" == job.BUILDKIT_IMAGE


def test_the_operator_image_takes_buildctl_from_the_same_release() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    (default,) = re.findall(r"^ARG BUILDKIT_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert default == job.BUILDKIT_IMAGE
    assert "COPY --from=buildkit /usr/bin/buildctl" in dockerfile
