"""Pins that follow BuildKit's own: rootlesskit at the version BuildKit's Dockerfile gives for the
pinned release (read from the release's module, which `hack/tools.sh` downloads)."""

from __future__ import annotations

import re

import pytest

from tests.env import node_images

pytestmark = pytest.mark.e2e


def test_rootlesskit_is_the_one_the_buildkit_release_pins() -> None:
    pins = node_images.versions()
    module = node_images.go_module_dir(f"github.com/moby/buildkit@{pins['BUILDKIT_VERSION']}")
    (upstream,) = re.findall(
        r"^ARG ROOTLESSKIT_VERSION=(\S+)$", (module / "Dockerfile").read_text(), re.MULTILINE
    )
    assert pins["ROOTLESSKIT_VERSION"] == upstream
