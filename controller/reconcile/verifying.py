"""Step 5, verify: the pushed image is the one built, ADE can pull it, and it is a valid runner.

Three checks, in order, before any catalog is pointed at the image:
1. the pushed tag resolves to the digest the build reported (with the push credentials); a tag
   that resolves elsewhere was overwritten behind the operator's back: that stalls;
2. with `spec.registryAccess.mode: AnonymousPull`, the same digest is pulled with no
   credentials at all (the anonymous token flow ADE uses); a refusal is `AnonymousPullFailed`,
   retried (a registry setting just changed may take a moment to apply);
3. ADE conformance (`controller.conformance`), read from the image's layers in the registry
   top-down (no daemon, usually only the top layer): executable `/scripts/deploy.sh` and
   `/scripts/delete.sh` with LF line endings in the final filesystem, and the base image's
   entrypoint kept; findings stall with `ImageNotConformant`, naming each failure. A
   conformant image's summary (how little was read) goes into the `Verified` message.
What was verified is kept in memory (not fetched again until the digest or the mode changes), so
an idle operator makes no registry requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from controller import concurrently, errors, failpoints
from controller.api import conditions
from controller.api import spec as model
from controller.conformance import image as conformance_image
from controller.observe import metrics
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps
from controller.reconcile import services as services_
from controller.registry import client as registry_client

ANONYMOUS_RETRY_SECONDS = 10.0


@dataclasses.dataclass
class Verified:
    """The verify step's memory: what was last verified, so it is not fetched again."""

    proof: tuple[str, str, bool] | None = None
    """The (reference, digest, anonymous pull checked) last verified."""
    conformance: str = ""
    """What the last conformance check of the verified image found worth saying."""


@dataclasses.dataclass(frozen=True)
class Verify:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.VERIFIED

    @property
    def verified(self) -> Verified:
        return self.memory.part(Verified)

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        image = ctx.image()
        if image is None:
            return steps.Outcome.skipped("no image to verify yet")
        reference, digest = image.reference, image.digest
        anonymous = _anonymous_pull_required(ctx.spec)
        proof = (reference, digest, anonymous)
        if self.verified.proof != proof:
            config = await secrets.push_config(self.services.kube, ctx)
            registry = self.services.registry.client(config)  # one token, one connection
            # The image is read for conformance beside the checks of its tag (by digest: it
            # does not depend on them); a failed check is said first all the same.
            conformance = _conformance(ctx, reference=reference, digest=digest, registry=registry)
            try:
                async with concurrently.beside(conformance) as conformant:
                    await self._tag_resolves(reference, digest, config, registry)
                    failpoints.hit(failpoints.Point.VERIFYING)
                    if anonymous:
                        await self._anonymous_pull(reference, digest)
                    self.verified.conformance = await conformant
            finally:
                await registry.aclose()
            self.verified.proof = proof
        checks = ["resolves", "pulls anonymously"] if anonymous else ["resolves"]
        summary = f"{reference} {' and '.join(checks)} to {digest}"
        if self.verified.conformance:
            summary += f"; {self.verified.conformance}"
        return steps.Outcome.done("Verified", summary)

    async def _tag_resolves(
        self,
        reference: str,
        digest: str,
        config: Mapping[str, Any] | None,
        registry: registry_client.RegistryClient,
    ) -> None:
        found = await self.services.registry.resolve(
            reference,
            docker_config=config,
            auth_reason="RegistryAuthFailed",
            not_found=errors.TransientError(
                "ImageNotFound", f"{reference} does not resolve in the registry (yet)"
            ),
            client=registry,
        )
        if found != digest:
            raise errors.StalledError(
                "DigestMismatch",
                f"{reference} resolves to {found}, not to the built {digest}: "
                "the tag was overwritten outside the operator",
            )

    async def _anonymous_pull(self, reference: str, digest: str) -> None:
        """Pull the manifest as ADE would, with no credentials, and require the digest."""
        failed = f"{reference} cannot be pulled anonymously"
        try:
            found = await self.services.registry.resolve(
                reference,
                docker_config=None,
                auth_reason="AnonymousPullFailed",
                not_found=errors.TransientError(
                    "AnonymousPullFailed", f"{failed}: the registry says it does not exist"
                ),
            )
        except errors.StalledError as error:  # refused: anonymous pull is not (yet) enabled
            raise errors.TransientError(
                "AnonymousPullFailed",
                f"{failed}: {error.message}; the catalog is left as it is",
                retry_after=ANONYMOUS_RETRY_SECONDS,
            ) from None
        if found != digest:
            raise errors.StalledError(
                "AnonymousPullFailed",
                f"{failed} as built: anonymous pull gets {found}, not {digest}",
            )


def _anonymous_pull_required(spec: model.RunnerImageSpec) -> bool:
    access = spec.registry_access
    return access is not None and access.mode is model.RegistryAccessMode.ANONYMOUS_PULL


CONFORMANCE_REASON = "ImageNotConformant"
ADE_PLATFORM = "linux/amd64"
"""ADE runs its runners on linux/amd64."""


async def _conformance(
    ctx: steps.Context,
    *,
    reference: str,
    digest: str,
    registry: registry_client.RegistryClient,
) -> str:
    """Check the image `reference`@`digest`; raise `ImageNotConformant` on any finding, else
    return one sentence on what was read."""
    resolved = ctx.resolved().inputs
    base = None
    if resolved.base_image is not None and resolved.base_digest:
        base = f"{resolved.base_image}@{resolved.base_digest}"
    try:
        report = await conformance_image.check_image(
            client=registry,
            image=f"{reference}@{digest}",
            base=base,
            platform=platform(ctx.spec),
        )
    except registry_client.RegistryError as error:
        raise registry_client.as_reconcile_error(
            error, auth_reason="RegistryAuthFailed", pushed=reference
        ) from None
    if report.summary is not None:
        metrics.report_conformance_findings(finding.rule for finding in report.findings)
        raise errors.StalledError(CONFORMANCE_REASON, report.summary)
    return (
        f"ADE runner conformant (read {report.layers_read} of {report.layers_total} layer(s), "
        f"{_size(report.bytes_read)} of {_size(report.total_size)})"
    )


def platform(spec: model.RunnerImageSpec) -> str:
    """The platform checked: ADE's, unless the spec builds only for others (then the first)."""
    if not spec.platforms or ADE_PLATFORM in spec.platforms:
        return ADE_PLATFORM
    return spec.platforms[0]


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
