"""Part of step 5, verify: the pushed image is a working ADE runner (`controller.conformance`).

The image's layers are read from the registry top-down (no daemon, usually only the top layer):
`/scripts/deploy.sh` and `/scripts/delete.sh` must exist in the final filesystem, be executable
regular files with LF line endings, and the image must keep its base image's entrypoint. Any
finding stalls with `ImageNotConformant`, naming each failure; the catalog is not touched. A
conformant image's summary (how little was read) goes into the `Verified` message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller import errors
from controller.api import spec as model
from controller.conformance import image as conformance_image
from controller.observe import metrics
from controller.reconcile import images, services, steps
from controller.registry import client as registry_client

REASON = "ImageNotConformant"
ADE_PLATFORM = "linux/amd64"
"""ADE runs its runners on linux/amd64."""


async def check(
    services_: services.Services,
    ctx: steps.Context,
    *,
    reference: str,
    digest: str,
    docker_config: Mapping[str, Any] | None,
) -> str:
    """Check the image `reference`@`digest`; raise `ImageNotConformant` on any finding, else
    return one sentence on what was read."""
    resolved = ctx.resolved().inputs
    base = None
    if resolved.base_image is not None and resolved.base_digest:
        base = f"{resolved.base_image}@{resolved.base_digest}"
    registry = services_.registry.client(docker_config)
    try:
        report = await conformance_image.check_image(
            client=registry,
            image=f"{reference}@{digest}",
            base=base,
            platform=platform(ctx.spec),
        )
    except registry_client.ManifestNotFound as error:
        raise errors.TransientError("ImageNotFound", str(error)) from None
    except registry_client.BlobNotFound as error:
        raise errors.StalledError(
            REASON, f"{reference}: a blob of the image is missing from the registry: {error}"
        ) from None
    except registry_client.RegistryProtocolError as error:
        raise errors.StalledError(
            REASON, f"{reference} cannot be read as an image: {error}"
        ) from None
    except registry_client.RegistryError as error:
        raise images.registry_failure(error, auth_reason="RegistryAuthFailed") from None
    finally:
        await registry.aclose()
    if report.summary is not None:
        metrics.report_conformance_findings(finding.rule for finding in report.findings)
        raise errors.StalledError(REASON, report.summary)
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
