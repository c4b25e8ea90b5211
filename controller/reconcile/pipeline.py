"""The ordered list of reconcile steps, as DESIGN.md numbers them (validation runs before these).

Steps 2-6 are explicit seams in this version: each will be replaced by a real step module
(`controller.build`, `controller.registry`, `controller.azure`, `controller.catalog`) without
changing the runner.
"""

from __future__ import annotations

from controller.api import conditions
from controller.reconcile import steps


def default_steps() -> list[steps.Step]:
    return [
        steps.NotYetAvailable(
            conditions.INPUTS_RESOLVED,
            "resolving the source revision and the base image digest",
        ),
        steps.NotYetAvailable(
            conditions.REGISTRY_ACCESS,
            "managing registry access",
            applies=lambda spec: spec.registry_access is not None,
        ),
        steps.NotYetAvailable(conditions.BUILT, "building and pushing the image"),
        steps.NotYetAvailable(conditions.VERIFIED, "verifying the pushed image"),
        steps.NotYetAvailable(
            conditions.CATALOG_SYNCED,
            "writing the image into the catalog",
            applies=lambda spec: spec.catalog is not None,
        ),
    ]
