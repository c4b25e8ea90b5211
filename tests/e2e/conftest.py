"""Fixtures shared by the end-to-end tests beyond the root conftest's (defined beside their
helpers, registered here)."""

from tests.e2e.daemon_builds import buildkit, core, pusher
from tests.e2e.observed import run_ready
from tests.e2e.releases import chart, release_namespace

__all__ = ["buildkit", "chart", "core", "pusher", "release_namespace", "run_ready"]
