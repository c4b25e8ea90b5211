"""Check that a pushed image is a valid ADE runner, reading it from the registry (I/O).

`check_image` reads the image's manifest (an index is followed to the platform's manifest), then
its config and, if given, its base image's config beside its layers, from the TOP one down, stopping
as soon as the scripts are decided (`filesystem.Resolver`): a runner's scripts live in its top
layers, so the big base layers are usually never downloaded. `rules` turns what was found into
findings. Everything goes through `controller.registry.client` (credentials, tokens, retries):
registry failures raise its typed errors (`RegistryAuthError`, `ManifestNotFound`,
`BlobNotFound`, `PlatformNotFound`, `RegistryUnavailable`, `RegistryProtocolError` for a digest
mismatch or a config that is not JSON); see that module for how reconcile steps map them.
A layer the checker cannot read (zstd, not a tarball) is a finding, and stops the walk there.

`Report.bytes_read` counts the image's blobs downloaded (its config and the layers read, a layer
read twice counted twice); `total_size` is what the manifest declares for the config and all
layers. Manifests and the base image's config are counted in neither.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from controller import concurrently
from controller.conformance import filesystem, layers, rules
from controller.registry import client as registry_client

MAX_CONFIG_SIZE = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Report:
    """The outcome of one check. `image` is the checked reference pinned by manifest digest;
    `files` holds the scripts' decided states (all of them unless a layer was unreadable)."""

    image: str
    findings: tuple[rules.Finding, ...]
    files: Mapping[str, filesystem.Decision]
    bytes_read: int
    total_size: int
    layers_read: int
    layers_total: int

    @property
    def conformant(self) -> bool:
        return not self.findings

    @property
    def summary(self) -> str | None:
        """`ImageNotConformant: ...` for a condition message, None when conformant."""
        return rules.summary(self.findings)


async def check_image(
    *,
    client: registry_client.RegistryClient,
    image: registry_client.RefLike,
    base: registry_client.RefLike | None = None,
    platform: str = "linux/amd64",
    paths: Iterable[str] = filesystem.SCRIPTS,
    max_content: int = layers.MAX_CONTENT,
) -> Report:
    """Check `image` (best pinned by digest) against the runner rules; `base` is the image it
    was built from, for the entrypoint rule (skipped without it). Its config and the base
    image's are read beside its layers."""
    manifest = await client.get_manifest(ref=image, platform=platform)
    config_read = client.get_blob(
        ref=manifest.reference, digest=manifest.config.digest, max_size=MAX_CONFIG_SIZE
    )
    async with (
        concurrently.beside(config_read) as config_bytes_,
        concurrently.beside(_base_config(client, base, platform)) as base_config_,
    ):
        resolver = filesystem.Resolver(paths)
        total = len(manifest.layers)
        bytes_read, layers_read = 0, 0
        problem: rules.Finding | None = None
        for position in range(total, 0, -1):  # the manifest lists layers bottom first
            if resolver.done:
                break
            layers_read += 1
            count, problem = await _apply_layer(
                client=client,
                manifest=manifest,
                position=position,
                resolver=resolver,
                max_content=max_content,
            )
            bytes_read += count
            if problem is not None:
                break
        config_bytes = await config_bytes_
        image_config = _config(manifest, config_bytes)
        base_config = await base_config_
    bytes_read += len(config_bytes)
    files = dict(resolver.decided) if problem is not None else resolver.finish()
    findings = rules.evaluate(files.values(), image_config=image_config, base_config=base_config)
    if problem is not None:
        findings.append(problem)
    return Report(
        image=str(manifest.reference),
        findings=tuple(findings),
        files=files,
        bytes_read=bytes_read,
        total_size=manifest.config.size + sum(layer.size for layer in manifest.layers),
        layers_read=layers_read,
        layers_total=total,
    )


async def _base_config(
    client: registry_client.RegistryClient, base: registry_client.RefLike | None, platform: str
) -> Mapping[str, Any] | None:
    """The config of the base image `base` for `platform` (None without a base); what is read
    by digest is kept for the next verification (`registry.contents`): the base is the same on
    every build of a RunnerImage until it moves."""
    if base is None:
        return None
    manifest = await client.get_manifest(ref=base, platform=platform, keep=True)
    raw = await client.get_blob(
        ref=manifest.reference, digest=manifest.config.digest, max_size=MAX_CONFIG_SIZE, keep=True
    )
    return _config(manifest, raw)


async def _apply_layer(
    *,
    client: registry_client.RegistryClient,
    manifest: registry_client.Manifest,
    position: int,
    resolver: filesystem.Resolver,
    max_content: int,
) -> tuple[int, rules.Finding | None]:
    """Read layer `position` (1-based, bottom first) into `resolver`: (bytes read, problem)."""
    descriptor = manifest.layers[position - 1]
    total, digest = len(manifest.layers), descriptor.digest
    if layers.compression(descriptor.media_type) not in layers.READABLE:
        finding = rules.unsupported_layer(
            layer=position, total=total, digest=digest, media_type=descriptor.media_type
        )
        return 0, finding
    read = await layers.read_layer(
        client=client,
        ref=manifest.reference,
        descriptor=descriptor,
        paths=resolver.pending,
        max_content=max_content,
    )
    count = read.bytes_read
    targets = resolver.link_targets(read.view) if read.view is not None else frozenset()
    if targets:  # a hard link to a file whose contents were not kept: read it once more
        read = await layers.read_layer(
            client=client,
            ref=manifest.reference,
            descriptor=descriptor,
            paths=resolver.pending,
            targets=targets,
            max_content=max_content,
        )
        count += read.bytes_read
    if read.view is None:
        problem = read.problem or "unknown"
        finding = rules.unreadable_layer(
            layer=position, total=total, digest=digest, problem=problem
        )
        return count, finding
    resolver.apply(read.view, layer=position)
    return count, None


def _config(manifest: registry_client.Manifest, data: bytes) -> Mapping[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        ref = manifest.reference
        raise registry_client.RegistryProtocolError(
            f"the config {manifest.config.digest} of {ref} is not a JSON object",
            registry=ref.registry,
            repository=ref.repository,
        )
    return document
