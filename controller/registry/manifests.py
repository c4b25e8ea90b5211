"""OCI and Docker v2 manifests and indexes (pure): the data model, parsing and platform choice.

`parse_manifest` reads an image manifest (OCI or Docker v2) or an index (OCI image index or Docker
manifest list) from its bytes, and refuses anything else (Docker schema 1 included) with a
`ValueError`. `select_platform` picks an index's entry for a platform (`linux/amd64`,
`linux/arm64/v8`), folding architecture aliases (`x86_64`, `aarch64`) and default variants.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from controller.registry import reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


@dataclasses.dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/amd64`, `linux/arm64/v8`."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{text!r} is not a platform (os/architecture[/variant])")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def normalized(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant
        if arch == "arm64" and variant == "v8":
            variant = None
        if arch == "arm" and variant is None:
            variant = "v7"
        return Platform(self.os.lower(), arch, variant)

    def matches(self, wanted: Platform) -> bool:
        have, want = self.normalized(), wanted.normalized()
        if (have.os, have.architecture) != (want.os, want.architecture):
            return False
        return want.variant is None or want.variant == have.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """What points at content: digest, media type, size (and the platform, in an index)."""

    digest: str
    media_type: str
    size: int
    platform: Platform | None = None


@dataclasses.dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker v2); `reference` is pinned by its digest."""

    reference: reference.Reference
    descriptor: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: bytes = dataclasses.field(repr=False)

    @property
    def digest(self) -> str:
        return self.descriptor.digest


@dataclasses.dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    reference: reference.Reference
    descriptor: Descriptor
    manifests: tuple[Descriptor, ...]
    raw: bytes = dataclasses.field(repr=False)

    @property
    def digest(self) -> str:
        return self.descriptor.digest


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _descriptor(value: Any, *, where: str) -> Descriptor:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} is not an object")
    digest = value.get("digest")
    media_type = value.get("mediaType")
    size = value.get("size")
    if not isinstance(digest, str) or not reference.is_digest(digest):
        raise ValueError(f"{where}.digest is not a valid digest")
    if not isinstance(media_type, str) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{where} lacks mediaType or size")
    platform = None
    raw = value.get("platform")
    if isinstance(raw, Mapping) and isinstance(raw.get("os"), str):
        variant = raw.get("variant")
        platform = Platform(
            str(raw["os"]),
            str(raw.get("architecture", "")),
            variant if isinstance(variant, str) and variant else None,
        )
    return Descriptor(digest, media_type, size, platform)


def parse_manifest(
    raw: bytes, *, ref: reference.Reference, descriptor: Descriptor
) -> Manifest | Index:
    """A manifest or index from its bytes; ValueError for anything not OCI/Docker v2."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the manifest is not JSON") from None
    if not isinstance(document, Mapping):
        raise ValueError("the manifest is not a JSON object")
    media_type = descriptor.media_type or str(document.get("mediaType") or "")
    if media_type in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
        raise ValueError("Docker schema 1 manifests are not supported")
    if not media_type or media_type == "application/json":
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    descriptor = dataclasses.replace(descriptor, media_type=media_type)
    pinned = ref.with_digest(descriptor.digest)
    if media_type in INDEX_TYPES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise ValueError("the index has no manifests list")
        manifests = tuple(
            _descriptor(entry, where=f"manifests[{i}]") for i, entry in enumerate(entries)
        )
        return Index(pinned, descriptor, manifests, raw)
    if media_type in MANIFEST_TYPES:
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise ValueError("the manifest has no layers list")
        return Manifest(
            pinned,
            descriptor,
            _descriptor(document.get("config"), where="config"),
            tuple(_descriptor(layer, where=f"layers[{i}]") for i, layer in enumerate(layers)),
            raw,
        )
    raise ValueError(f"unsupported manifest media type {media_type!r}")


def select_platform(index: Index, wanted: Platform) -> Descriptor | None:
    """The first manifest of `index` for `wanted` (attestations, `unknown/unknown`, never match)."""
    for entry in index.manifests:
        if entry.platform is not None and entry.platform.matches(wanted):
            return entry
    return None
