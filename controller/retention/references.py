"""The tags and digests of one repository that a text references (pure).

Any file's text is read as text (YAML, JSON, anything): a reference is `registry/repository`
followed by `:tag` (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`), `@digest` (`sha256:` + 64 or `sha512:`
+ 128 lower-case hex characters) or both. It must not be part of a longer name: the character
before it is none of `A-Za-z0-9._/-` (a quote, a space, `=`, `:` are fine; so is a `scheme://`),
and the repository is followed by `:` or `@`, so `reg.io/ade/bicep` is not found in
`xreg.io/ade/bicep:1`, `reg.io/ade/bicep-extra:1` or `reg.io/ade/bicep/cache:1`.

The host is compared case-insensitively, the repository as written. Docker Hub (`docker.io`) is
also found as `index.docker.io` or `registry-1.docker.io`, and `docker.io/library/x` as
`docker.io/x`; but never without its host: a bare `x:1` or `library/x:1` could name anything.

A tag ending in `.` also counts without it (a sentence's full stop): a reference read too widely
keeps an image too many, one missed deletes an image in use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
_BEFORE = r"(?:(?<![A-Za-z0-9._/-])|(?<=://))"
_TAG = r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(?![A-Za-z0-9_.-]))?"
_DIGEST = r"(?:@(?P<digest>sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})(?![0-9A-Za-z]))?"


def find(text: str, *, registry: str, repository: str) -> tuple[set[str], set[str]]:
    """The tags and the digests of `registry/repository` that `text` references."""
    tags: set[str] = set()
    digests: set[str] = set()
    for match in _pattern(registry, repository).finditer(text):
        tag, digest = match["tag"], match["digest"]
        if tag is not None:
            tags.add(tag)
            if tag.endswith(".") and tag.rstrip("."):
                tags.add(tag.rstrip("."))
        if digest is not None:
            digests.add(digest)
    return tags, digests


def find_all(texts: Iterable[str], *, registry: str, repository: str) -> tuple[set[str], set[str]]:
    """`find` over every text, united."""
    tags: set[str] = set()
    digests: set[str] = set()
    for text in texts:
        found_tags, found_digests = find(text, registry=registry, repository=repository)
        tags |= found_tags
        digests |= found_digests
    return tags, digests


def _pattern(registry: str, repository: str) -> re.Pattern[str]:
    if not registry or not repository:
        raise ValueError("a registry and a repository are needed")
    hosts = [registry]
    repositories = [repository]
    if registry.lower() in _DOCKER_HUB:
        hosts = list(_DOCKER_HUB)
        if "/" not in repository:
            repositories = [f"library/{repository}"]
        name = repositories[0].removeprefix("library/")
        if name != repositories[0] and "/" not in name:
            repositories.append(name)
    host = "|".join(re.escape(name) for name in hosts)
    path = "|".join(re.escape(name) for name in repositories)
    return re.compile(rf"{_BEFORE}(?i:{host})/(?:{path})(?=[:@]){_TAG}{_DIGEST}")
