"""Test-only failpoints: the operator SIGKILLs its own process at a named point of a reconcile.

The kill tests (`tests/e2e/test_kills.py`) start the operator with `ADE_FAILPOINTS` naming one
or more points (comma-separated) to kill it exactly there — between an ARM PATCH and its end,
after a build Job is created but before status records it, after a catalog push landed but before
status says so — then restart it and check that nothing was lost or done twice.

Never active unless `ADE_FAILPOINTS` is set: it is read once, at import; unset (production),
`hit` is a lookup in an empty set. A name that is not a `Point` fails at import, so a typo in a
test cannot pass silently. Nothing in the chart or the docs sets it.
"""

from __future__ import annotations

import enum
import os
import signal
import sys
from collections.abc import Mapping

ENV = "ADE_FAILPOINTS"


class Point(enum.StrEnum):
    REGISTRY_PATCH_SENT = "registry-patch-sent"
    """ARM accepted the registry PATCH (a long-running operation); its end not awaited yet."""
    ROLE_ASSIGNMENT_CREATED = "role-assignment-created"
    """ARM created an AcrPull role assignment; status does not record it yet."""
    BUILD_JOB_CREATED = "build-job-created"
    """The build Job exists; status does not record the build yet."""
    BUILD_RUNNING = "build-running"
    """The build step found its build running (mid-build)."""
    VERIFYING = "verifying"
    """The verify step resolved the pushed tag; the conformance check not done yet."""
    CATALOG_PUSHED = "catalog-pushed"
    """The catalog commit landed on the server; status does not record it yet."""
    CATALOG_SYNC_STARTED = "catalog-sync-started"
    """ARM accepted the catalog sync (a long-running operation); its end not awaited yet."""


def armed(env: Mapping[str, str]) -> frozenset[Point]:
    """The points `env` arms (`ADE_FAILPOINTS=a,b`); ValueError for a name that is no point."""
    names = [name.strip() for name in env.get(ENV, "").split(",") if name.strip()]
    return frozenset(Point(name) for name in names)


_ARMED = armed(os.environ)


def hit(point: Point) -> None:
    """SIGKILL this process when `point` is armed (a no-op otherwise)."""
    if point in _ARMED:
        sys.stderr.write(f"failpoint {point}: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
