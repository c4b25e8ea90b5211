"""The ordered list of reconcile steps, as DESIGN.md numbers them (validation runs before these)."""

from __future__ import annotations

from controller.reconcile import (
    access,
    base_trust,
    building,
    inputs,
    retaining,
    services,
    signing,
    steps,
    verifying,
    writing,
)
from controller.reconcile import memory as memory_


def default_steps(services_: services.Services, memory: memory_.ObjectMemory) -> list[steps.Step]:
    return [
        inputs.ResolveInputs(services_, memory),
        access.EnsureRegistryAccess(services_, memory),
        base_trust.TrustBaseImage(services_, memory),
        building.Build(services_, memory),
        verifying.Verify(services_, memory),
        signing.Sign(services_, memory),
        writing.WriteCatalog(services_, memory),
        retaining.ApplyRetention(services_, memory),
    ]
