"""The ordered list of reconcile steps, as DESIGN.md numbers them (validation runs before these).

Registry access is still an explicit seam: it will be replaced by a real step module without
changing the runner.
"""

from __future__ import annotations

from controller.api import conditions
from controller.reconcile import building, inputs, services, steps, verifying, writing


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
        writing.WriteCatalog(services_, memory),
    ]
