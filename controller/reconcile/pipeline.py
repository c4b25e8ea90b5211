"""The ordered list of reconcile steps, as DESIGN.md numbers them (validation runs before these).

Registry access and catalog write-back are still explicit seams: each will be replaced by a real
step module without changing the runner.
"""

from __future__ import annotations

from controller.api import conditions
from controller.reconcile import building, inputs, services, steps, verifying


def default_steps(services_: services.Services, memory: services.ObjectMemory) -> list[steps.Step]:
    return [
        inputs.ResolveInputs(services_, memory),
        steps.NotYetAvailable(
            conditions.REGISTRY_ACCESS,
            "managing registry access",
            applies=lambda spec: spec.registry_access is not None,
        ),
        building.Build(services_, memory),
        verifying.Verify(services_, memory),
        steps.NotYetAvailable(
            conditions.CATALOG_SYNCED,
            "writing the image into the catalog",
            applies=lambda spec: spec.catalog is not None,
        ),
    ]
