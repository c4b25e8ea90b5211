"""The one renderer of `buildctl build` arguments, shared by the Job and the daemon backends. Pure.

A build request says where the context folder is (the operator fetches git sources itself: it
must read the Dockerfile anyway), which Dockerfile, build args, platforms and target, where to
push, and where to write the metadata file whose `containerimage.digest` is the pushed digest
(parsed as JSON, never as text).

The registry cache lives in a repository of its own next to the image's (`cache_ref`), never in
the image's repository: since BuildKit v0.28 the image push and the cache export run in parallel
(moby/buildkit#6451), and two pushes of the same blobs into one repository race (a cancelled or
refused blob upload that failed the build). A cache export that fails anyway is ignored
(`ignore-error=true`): the image is what the build is for, the next build merely misses the cache.

Reproducible digests: with `source_date_epoch` (the source revision's commit time, 0 for an inline
source) the build gets the `SOURCE_DATE_EPOCH` build arg, which BuildKit uses for the image's
creation time and history, and the image exporter's `rewrite-timestamp=true`, which clamps the
timestamps of the files in the new layers to it: the same inputs give the same digest, whichever
builder, cache or replica builds them. A `SOURCE_DATE_EPOCH` the spec sets itself wins.

Attestations: `provenance` ("min" or "max") asks BuildKit for SLSA provenance, `sbom` for an SPDX
SBOM made by the scanner image `sbom_generator` (BuildKit's default scanner when None). The
pushed digest is then an image index: the platform manifest(s) and one attestation manifest
each (platform `unknown/unknown`), which the operator's readers skip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class LocalContext:
    """A folder on the builder's file system holding the Dockerfile and scripts/."""

    path: str


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    context: LocalContext
    dockerfile: str
    image: str
    """The full reference to push: registry/repository:tag."""
    build_args: Mapping[str, str]
    platforms: tuple[str, ...]
    target: str | None
    metadata_file: str
    cache_ref: str | None = None
    """A registry reference for cache import/export (mode=max, see `cache_ref`), or None."""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    source_date_epoch: int | None = None
    """Seconds since 1970 for reproducible timestamps (see the module docstring); None: off."""
    provenance: str | None = None
    """"min" or "max": BuildKit's SLSA provenance mode; None: no provenance."""
    sbom: bool = False
    sbom_generator: str | None = None


SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
CACHE_REPOSITORY = "buildcache"
"""The cache's repository below the image's: `<repository>/buildcache`."""
CACHE_TAG = "latest"


def cache_ref(registry: str, repository: str) -> str:
    """Where the builds of `registry/repository` keep their registry cache: the repository
    `<repository>/buildcache` on the same registry (the push Secret's credentials for the registry
    push it; a token scoped to repositories must include it)."""
    return f"{registry}/{repository}/{CACHE_REPOSITORY}:{CACHE_TAG}"


def arguments(request: BuildRequest) -> list[str]:
    """`buildctl build` arguments (without the `buildctl [--addr ...] build` prefix)."""
    args = ["--frontend", "dockerfile.v0"]
    folder, _, name = request.dockerfile.rpartition("/")
    path = request.context.path
    args += ["--local", f"context={path}"]
    args += ["--local", f"dockerfile={path}/{folder}".rstrip("/")]
    args += ["--opt", f"filename={name}"]
    build_args = dict(request.build_args)
    reproducible = request.source_date_epoch is not None
    if reproducible:
        build_args.setdefault(SOURCE_DATE_EPOCH, str(request.source_date_epoch))
    for name, value in sorted(build_args.items()):
        args += ["--opt", f"build-arg:{name}={value}"]
    for name, value in sorted(request.labels.items()):
        args += ["--opt", f"label:{name}={value}"]
    if request.platforms:
        args += ["--opt", f"platform={','.join(request.platforms)}"]
    if request.target:
        args += ["--opt", f"target={request.target}"]
    rewrite = ",rewrite-timestamp=true" if reproducible else ""
    if request.provenance:
        args += ["--opt", f"attest:provenance=mode={request.provenance}"]
    if request.sbom:
        generator = f"generator={request.sbom_generator}" if request.sbom_generator else ""
        args += ["--opt", f"attest:sbom={generator}"]
    args += ["--output", f"type=image,name={request.image},push=true{rewrite}"]
    if request.cache_ref:
        export = f"type=registry,ref={request.cache_ref},mode=max,ignore-error=true"
        args += ["--export-cache", export]
        args += ["--import-cache", f"type=registry,ref={request.cache_ref}"]
    args += ["--metadata-file", request.metadata_file]
    return args
