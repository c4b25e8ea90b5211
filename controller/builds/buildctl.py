"""The one renderer of `buildctl build` arguments, shared by the Job and the daemon backends. Pure.

A build request says where the context folder is (the operator fetches git sources itself: it
must read the Dockerfile anyway), which Dockerfile, build args, platforms and target, where to
push, and where to write the metadata file whose `containerimage.digest` is the pushed digest
(parsed as JSON, never as text).
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
    """A registry reference for cache import/export (mode=max), or None."""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


def arguments(request: BuildRequest) -> list[str]:
    """`buildctl build` arguments (without the `buildctl [--addr ...] build` prefix)."""
    args = ["--frontend", "dockerfile.v0"]
    folder, _, name = request.dockerfile.rpartition("/")
    path = request.context.path
    args += ["--local", f"context={path}"]
    args += ["--local", f"dockerfile={path}/{folder}".rstrip("/")]
    args += ["--opt", f"filename={name}"]
    for name, value in sorted(request.build_args.items()):
        args += ["--opt", f"build-arg:{name}={value}"]
    for name, value in sorted(request.labels.items()):
        args += ["--opt", f"label:{name}={value}"]
    if request.platforms:
        args += ["--opt", f"platform={','.join(request.platforms)}"]
    if request.target:
        args += ["--opt", f"target={request.target}"]
    args += ["--output", f"type=image,name={request.image},push=true"]
    if request.cache_ref:
        args += ["--export-cache", f"type=registry,ref={request.cache_ref},mode=max"]
        args += ["--import-cache", f"type=registry,ref={request.cache_ref}"]
    args += ["--metadata-file", request.metadata_file]
    return args
