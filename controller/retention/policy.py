"""Which of a repository's images a RunnerImage keeps and which it deletes (pure).

Only an image whose `OWNER_LABEL` names this RunnerImage (`owner`) is a candidate; every other
image is foreign: counted, never deleted. An owned image is kept for the first of these reasons
that applies, in this order:

- `latest`: its digest is the RunnerImage's latest image;
- `referenced`: its digest is referenced, or any of its tags is;
- `newest`: it is among the `keep_last` newest owned images by `created` (equal times: by `made`,
  then the greater digest counts as the newer). Only dated images are counted; the latest counts
  like any other, so protected images beyond the newest N are kept on top of them;
- `young`: `now - created < keep_for` (an image from the future is young);
- `undated`: its `created` is unknown.

Every other owned image is deleted, by digest (its tags go with it), the oldest first. `now` and
every `created` are aware datetimes; each digest appears once in `images`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Set

from controller.api import identity

OWNER_LABEL = identity.RUNNER_IMAGE_LABEL
"""The image label naming the RunnerImage (`<namespace>/<name>`) that built it."""

LATEST = "latest"
REFERENCED = "referenced"
NEWEST = "newest"
YOUNG = "young"
UNDATED = "undated"


@dataclasses.dataclass(frozen=True)
class Image:
    """One manifest (or index) of the repository."""

    digest: str
    tags: tuple[str, ...] = ()
    """The repository's tags that point at it (may be none)."""
    created: datetime.datetime | None = None
    """When it was made (aware); None if unknown."""
    owner: str | None = None
    """Its `OWNER_LABEL` value; None if it has none."""
    made: datetime.datetime | None = None
    """What its config says of its making (`created`), which orders images of equal `created`
    (the operator dates images by when it first saw them: many at once on a first pass)."""


@dataclasses.dataclass(frozen=True)
class Kept:
    image: Image
    reason: str
    """The first reason that keeps it: `LATEST`, `REFERENCED`, `NEWEST`, `YOUNG` or `UNDATED`."""


@dataclasses.dataclass(frozen=True)
class Decision:
    kept: tuple[Kept, ...]
    """Owned images kept, the newest first (undated ones last, by digest)."""
    delete: tuple[Image, ...]
    """Owned images to delete, the oldest first."""
    foreign: int
    """Images not owned by this RunnerImage (never touched)."""


def decide(
    images: Iterable[Image],
    *,
    owner: str,
    latest: str | None,
    referenced_digests: Set[str],
    referenced_tags: Set[str],
    keep_last: int,
    keep_for: datetime.timedelta,
    now: datetime.datetime,
) -> Decision:
    """Apply the module's rules to `images`. A negative `keep_last` or a digest listed twice is a
    `ValueError` (the caller's mistake: deleting on it could delete what a copy protects)."""
    if keep_last < 0:
        raise ValueError(f"keep_last must be at least 0, not {keep_last}")
    owned: list[Image] = []
    foreign = 0
    seen: set[str] = set()
    for image in images:
        if image.digest in seen:
            raise ValueError(f"{image.digest} is listed twice")
        seen.add(image.digest)
        if image.owner == owner:
            owned.append(image)
        else:
            foreign += 1
    dated = sorted(
        (image for image in owned if image.created is not None), key=_age_key, reverse=True
    )
    undated = sorted((image for image in owned if image.created is None), key=lambda i: i.digest)
    newest = {image.digest for image in dated[:keep_last]}
    kept: list[Kept] = []
    delete: list[Image] = []
    for image in [*dated, *undated]:
        reason = _reason(
            image,
            latest=latest,
            referenced_digests=referenced_digests,
            referenced_tags=referenced_tags,
            newest=newest,
            keep_for=keep_for,
            now=now,
        )
        if reason is None:
            delete.append(image)
        else:
            kept.append(Kept(image, reason))
    return Decision(tuple(kept), tuple(reversed(delete)), foreign)


def _age_key(image: Image) -> tuple[datetime.datetime, datetime.datetime, str]:
    assert image.created is not None
    return image.created, image.made or _EPOCH, image.digest


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _reason(
    image: Image,
    *,
    latest: str | None,
    referenced_digests: Set[str],
    referenced_tags: Set[str],
    newest: Set[str],
    keep_for: datetime.timedelta,
    now: datetime.datetime,
) -> str | None:
    """The first reason that keeps `image`; None if it goes."""
    if image.digest == latest:
        return LATEST
    if image.digest in referenced_digests or any(tag in referenced_tags for tag in image.tags):
        return REFERENCED
    if image.digest in newest:
        return NEWEST
    if image.created is not None and now - image.created < keep_for:
        return YOUNG
    if image.created is None:
        return UNDATED
    return None
