"""Fixtures shared by the end-to-end tests beyond the root conftest's (defined beside their
helpers, registered here)."""

from tests.e2e.observed import run_ready

__all__ = ["run_ready"]
