"""Which RunnerImages an event concerns, and the reconcile request each gets (pure).

A `SourcePush` concerns a RunnerImage whose `spec.source.git` has the same repository (URLs
compared as host and path: scheme, user, `.git`, case and the host's other URL forms aside, e.g.
GitHub's SSH URL or Azure Repos' `ssh.dev.azure.com` and `*.visualstudio.com`) and whose ref is
the pushed one (`main` is `refs/heads/main` or `refs/tags/main`; `HEAD` is the default branch; a
pinned commit never moves). An `ImagePush` concerns a RunnerImage whose base image
(`status.baseImage`) has the same registry, repository and tag.

The request is the manual trigger's annotation, valued by the change (`webhook source <commit>`,
`webhook image <digest>`): many deliveries of one change ask once, and a RunnerImage already at the
pushed commit or digest is not asked at all.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from controller.api import identity
from controller.receivers import events
from controller.registry import reference

_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A RunnerImage as the receiver reads it."""

    namespace: str
    name: str
    git_url: str | None = None
    git_ref: str = "main"
    base_image: str | None = None
    source_revision: str | None = None
    base_digest: str | None = None
    requested: str | None = None
    """The reconcile-request annotation's value now."""

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Candidate:
        metadata = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        git = (spec.get("source") or {}).get("git") or {}
        inputs = (status.get("latestImage") or {}).get("inputs") or {}
        return cls(
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name") or ""),
            git_url=git.get("url") or None,
            git_ref=str(git.get("ref") or "main"),
            base_image=status.get("baseImage") or inputs.get("baseImage") or None,
            source_revision=status.get("sourceRevision") or None,
            base_digest=status.get("baseImageDigest") or None,
            requested=(metadata.get("annotations") or {}).get(
                identity.RECONCILE_REQUEST_ANNOTATION
            ),
        )


@dataclasses.dataclass(frozen=True)
class Nudge:
    namespace: str
    name: str
    value: str
    """The reconcile-request annotation's value to set."""


def nudges(event: events.Event, candidates: Iterable[Candidate]) -> list[Nudge]:
    """The reconcile requests `event` makes of `candidates` (at most one each)."""
    found = []
    for candidate in candidates:
        for change in event.changes:
            value = _request(event, change, candidate)
            if value is not None:
                if value != candidate.requested:
                    found.append(Nudge(candidate.namespace, candidate.name, value))
                break
    return found


def concerns(change: events.Change, candidate: Candidate) -> bool:
    if isinstance(change, events.SourcePush):
        return _source_matches(change, candidate)
    return _image_matches(change, candidate)


def _request(event: events.Event, change: events.Change, candidate: Candidate) -> str | None:
    """The annotation value asking `candidate` to take `change`; None if it does not concern it
    or the RunnerImage already has it."""
    if not concerns(change, candidate):
        return None
    if isinstance(change, events.SourcePush):
        if change.revision is not None:
            return (
                None
                if change.revision == candidate.source_revision
                else f"webhook source {change.revision}"
            )
    elif change.digest is not None:
        return None if change.digest == candidate.base_digest else f"webhook image {change.digest}"
    return f"webhook delivery {event.delivery}" if event.delivery else "webhook"


def _source_matches(push: events.SourcePush, candidate: Candidate) -> bool:
    if candidate.git_url is None:
        return False
    mine = repository_of(candidate.git_url)
    if mine is None or all(repository_of(url) != mine for url in push.urls):
        return False
    ref = candidate.git_ref
    if _COMMIT.fullmatch(ref.lower()):
        return False  # a pinned commit never moves
    if ref == "HEAD":
        return push.default_branch is not None and push.ref in (
            push.default_branch,
            f"refs/heads/{push.default_branch}",
        )
    return bool(_ref_names(ref) & _ref_names(push.ref))


def _ref_names(ref: str) -> set[str]:
    names = {ref}
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            names.add(ref.removeprefix(prefix))
    return names


def _image_matches(push: events.ImagePush, candidate: Candidate) -> bool:
    if candidate.base_image is None:
        return False
    try:
        base = reference.parse(candidate.base_image)
    except reference.InvalidReference:
        return False
    if base.digest is not None:
        return False  # pinned by digest: a push never changes it
    return (
        base.registry == push.registry
        and base.repository == push.repository
        and (base.tag or reference.DEFAULT_TAG) == (push.tag or reference.DEFAULT_TAG)
    )


def repository_of(url: str) -> str | None:
    """`host/path` naming the repository `url` points at, in one form for all of a host's URL
    forms (lower case, no scheme, user, `.git` or trailing slash); None if it is no git URL."""
    text = url.strip()
    scp = re.fullmatch(r"(?:[^@/:]+@)?([^/:]+):(?!//)(.+)", text)
    if scp is not None and "://" not in text:
        host, port, path = scp[1].lower(), "", scp[2]
    else:
        split = urllib.parse.urlsplit(text)
        if split.scheme not in ("http", "https", "ssh", "git") or not split.hostname:
            return None
        host = split.hostname.lower()
        try:
            number = split.port
        except ValueError:
            return None
        keep = number is not None and split.scheme in _DEFAULT_PORTS
        port = f":{number}" if keep and number != _DEFAULT_PORTS[split.scheme] else ""
        path = split.path
    segments = [urllib.parse.unquote(part) for part in path.split("/") if part]
    if not segments:
        return None
    segments[-1] = segments[-1].removesuffix(".git")
    host, segments = _azure_form(host, segments)
    return f"{host}{port}/" + "/".join(segments).lower()


def _azure_form(host: str, segments: list[str]) -> tuple[str, list[str]]:
    """Azure Repos' URL forms as `dev.azure.com/ORG/PROJECT/_git/REPO`."""
    ssh_hosts = ("ssh.dev.azure.com", "vs-ssh.visualstudio.com")
    if host in ssh_hosts and len(segments) == 4 and segments[0] == "v3":
        return "dev.azure.com", [segments[1], segments[2], "_git", segments[3]]
    if host.endswith(".visualstudio.com") and "_git" in segments:
        organization = host.removesuffix(".visualstudio.com")
        rest = segments[1:] if segments[0].lower() == "defaultcollection" else segments
        return "dev.azure.com", [organization, *rest]
    return host, segments
