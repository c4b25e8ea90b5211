"""The identity of a build: its key, its reason, and the tag it pushes. Pure.

The build key is a hash of everything that changes the image: the source revision, the base
image digest, and the spec fields that reach the build (Dockerfile path, build args, platforms,
target, destination, and the attestations when not the default). The same key means the same
image: no build. The tag template is rendered from the revision, the key and the build time, so
every build gets its own tag.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import string
from collections.abc import Mapping
from typing import Any

from controller.api import spec as model

SHORT = 12
KEY_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What one build is made of, as resolved from the world."""

    revision: str
    """The git commit, or `inline-<hash>` for inline sources."""
    base_image: str | None
    """The final stage's base image reference (None for `FROM scratch`)."""
    base_digest: str | None

    def key_material(self, spec: model.RunnerImageSpec) -> dict[str, Any]:
        material = {
            "v": KEY_VERSION,
            "revision": self.revision,
            "baseImage": self.base_image,
            "baseDigest": self.base_digest,
            "dockerfile": spec.dockerfile,
            "path": spec.source.git.path if spec.source.git else None,
            "buildArgs": dict(sorted(spec.build_args.items())),
            "platforms": sorted(spec.platforms),
            "target": spec.target,
            "image": f"{spec.image.registry}/{spec.image.repository}",
        }
        attestations = spec.build.attestations
        if not attestations.default:
            # Only when not the default, so that the keys of images built before attestations
            # existed stay the same (no rebuild of everything on an upgrade).
            material["attestations"] = {
                "provenance": attestations.provenance.value,
                "sbom": attestations.sbom,
                "sbomGenerator": attestations.sbom_generator,
            }
        return material


def build_key(spec: model.RunnerImageSpec, inputs: Inputs) -> str:
    material = json.dumps(inputs.key_material(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


def inline_revision(spec: model.RunnerImageSpec) -> str:
    """A content hash standing in for a commit when the source is inline."""
    assert spec.source.inline is not None
    content = {
        "dockerfile": spec.source.inline.dockerfile,
        "scripts": dict(spec.source.inline.scripts),
    }
    digest = hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return f"inline-{digest[:32]}"


def short_revision(revision: str) -> str:
    return revision.removeprefix("inline-")[:SHORT]


def render_tag(template: str, *, revision: str, key: str, at: datetime.datetime) -> str:
    values = {
        "revision": revision.removeprefix("inline-"),
        "shortRevision": short_revision(revision),
        "buildKey": key,
        "shortBuildKey": key[:SHORT],
        "timestamp": at.astimezone(datetime.UTC).strftime("%Y%m%d%H%M%S"),
    }
    return string.Formatter().vformat(template, (), values)[:128]


def reasons(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """Why a build runs (kpack-style) and what changed, from the last built key material.

    The reason is `SourceChanged`, `BaseImageChanged` or `SpecChanged` (the first that applies,
    in that order of precedence when several did), or `Initial` for the first build.
    """
    if not previous:
        return "Initial", []
    changes = [
        f"{field}: {previous.get(field)!r} -> {current.get(field)!r}"
        for field in sorted(current)
        if previous.get(field) != current.get(field)
    ]
    changed = {change.split(":", 1)[0] for change in changes}
    if "revision" in changed:
        return "SourceChanged", changes
    if changed & {"baseDigest", "baseImage"}:
        return "BaseImageChanged", changes
    return "SpecChanged", changes
