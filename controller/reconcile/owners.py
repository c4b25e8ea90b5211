"""Which RunnerImage pushes which image repository, from the operator's index of the RunnerImages
it serves: for catalog ownership (`controller.catalog.ownership`) and to refuse a second
RunnerImage pushing a repository another one already pushes (the first created keeps it).

The index is kopf's (`handlers.runner_repositories`), live: `Owners.index` is set from the
handlers' keyword arguments; until then (and in tests that run steps without kopf) nobody else
owns anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from controller import errors
from controller.catalog import ownership

Claim = tuple[str, str]
"""(creationTimestamp, "namespace/name") of a RunnerImage pushing a repository."""


def index_entry(
    *, namespace: str, name: str, spec: Mapping[str, Any], created: str
) -> dict[str, Claim]:
    """The index's entry for one RunnerImage: {its repository: its claim}; {} without one."""
    image = spec.get("image") or {}
    registry, path = str(image.get("registry") or ""), str(image.get("repository") or "")
    repository = ownership.repository_of(f"{registry}/{path}") if registry and path else None
    return {repository: (created, f"{namespace}/{name}")} if repository else {}


@dataclasses.dataclass
class Owners:
    index: Mapping[str, Iterable[Claim]] | None = None

    def first(self, repository: str) -> str | None:
        """The RunnerImage (namespace/name) that claimed `repository` first, if any."""
        claims = list((self.index or {}).get(repository) or ())
        return min(claims)[1] if claims else None

    def others(self, me: str) -> dict[str, str]:
        """Every repository some RunnerImage other than `me` pushes -> the first such one."""
        found: dict[str, str] = {}
        for repository, claims in (self.index or {}).items():
            owners = sorted(claim for claim in claims if claim[1] != me)
            if owners:
                found[repository] = owners[0][1]
        return found

    def check(self, *, registry: str, repository: str, me: str) -> None:
        """Refuse (`Stalled`, reason RepositoryInUse) a RunnerImage whose repository another
        RunnerImage, created before it, pushes too."""
        key = ownership.repository_of(f"{registry}/{repository}")
        first = self.first(key) if key else None
        if first is not None and first != me:
            raise errors.StalledError(
                "RepositoryInUse",
                f"spec.image.repository: {registry}/{repository} is pushed by RunnerImage"
                f" {first} already; two RunnerImages pushing one repository would fight over"
                " the catalog files that name it",
            )
