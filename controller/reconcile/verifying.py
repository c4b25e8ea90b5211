"""Step 5, verify: the pushed image resolves in the registry to the digest the build reported.

A tag that resolves to another digest was overwritten behind the operator's back: that stalls,
and no catalog is pointed at it. A digest verified once is not fetched again until it changes
(kept in memory, so an idle operator makes no registry requests).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from controller import errors
from controller.api import conditions
from controller.reconcile import services as services_
from controller.reconcile import steps


@dataclasses.dataclass(frozen=True)
class Verify:
    services: services_.Services
    memory: services_.ObjectMemory
    condition: str = conditions.VERIFIED

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        latest: Mapping[str, Any] = (
            ctx.updates.get("latestImage") or ctx.status.get("latestImage") or {}
        )
        reference, digest = str(latest.get("reference", "")), str(latest.get("digest", ""))
        if not reference or not digest:
            return steps.Outcome.skipped("no image to verify yet")
        if self.memory.verified != (reference, digest):
            config = await services_.docker_config(
                self.services, namespace=ctx.namespace, spec=ctx.spec
            )
            found = await self.services.resolve(
                reference,
                docker_config=config,
                auth_reason="RegistryAuthFailed",
                not_found=errors.TransientError(
                    "ImageNotFound", f"{reference} does not resolve in the registry (yet)"
                ),
            )
            if found != digest:
                raise errors.StalledError(
                    "DigestMismatch",
                    f"{reference} resolves to {found}, not to the built {digest}: "
                    "the tag was overwritten outside the operator",
                )
            self.memory.verified = (reference, digest)
        return steps.Outcome.done("Verified", f"{reference} resolves to {digest}")
