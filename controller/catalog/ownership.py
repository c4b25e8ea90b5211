"""Who may write a catalog file: one owner per file, human edits kept. Pure, no I/O.

A file's field (e.g. an environment definition's `runner:`) is written by at most one
RunnerImage, decided from what the file says, with no coordination between RunnerImages:

- The field names the writer's own image repository (any tag or digest): the file is its own.
- The field names another RunnerImage's repository: that RunnerImage owns it. The file is
  skipped; when the writer was told to take over any value (no `adopt`), that is a `CONFLICT`
  naming the owner, reported rather than flip-flopped.
- The field holds a value the writer was told to adopt (`adopt`, with `*` wildcards): it takes it.
- Anything else (a public runner, `Bicep`, nothing at all) nobody owns: the first writer with no
  `adopt` list takes it; with one, the file is `NOT_ADOPTED` (someone else's business).

Human edits win: once the writer has written a file (`Record`), a value that is neither what it
wrote last nor what it found before its first write was put there by someone else (a rollback, a
pin). It is kept (`PINNED`, until it is set back or the policy says `Overwrite`), even when it
names the writer's own repository at another tag: that is the rollback of Argo CD Image Updater
#1249.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
from collections.abc import Collection, Mapping, Sequence


class Verdict(enum.StrEnum):
    SYNCED = "Synced"
    """The field already holds the value."""
    WRITE = "Write"
    """The writer may set the field."""
    PINNED = "PinnedByHand"
    """Someone else set the field after the writer did; kept."""
    CONFLICT = "Conflict"
    """Another RunnerImage's repository is in the field, where this one would have written."""
    NOT_ADOPTED = "NotAdopted"
    """A value the writer was not told to take over."""


@dataclasses.dataclass(frozen=True)
class Record:
    """What the writer remembers of a file (in its status): the value it found before its first
    write (None: the field was absent), and the value it wrote last."""

    found: str | None
    written: str


@dataclasses.dataclass(frozen=True)
class Decision:
    verdict: Verdict
    owner: str = ""
    """For CONFLICT: who owns the file (a RunnerImage's namespace/name)."""


def repository_of(value: str | None) -> str | None:
    """The image repository a field value names (`registry/path`, the registry host lower-cased),
    without tag or digest; None for a value that is not an image reference (`Bicep`, empty)."""
    if not value or "/" not in value or any(c.isspace() for c in value):
        return None
    name = value.partition("@")[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name = name[:colon]
    host, _, path = name.partition("/")
    if not host or not path:
        return None
    return f"{host.lower()}/{path}"


def adopts(value: str | None, patterns: Sequence[str]) -> bool:
    """Whether `value` is one the writer was told to take over (`*` matches any text)."""
    text = value or ""
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns)


def decide(
    current: str | None,
    *,
    value: str,
    mine: str,
    others: Mapping[str, str],
    adopt: Sequence[str],
    record: Record | None,
    overwrite: bool,
) -> Decision:
    """May the writer of `mine` (its repository) set the field, now `current`, to `value`?

    `others`: every other RunnerImage's repository -> its namespace/name. `record`: what the
    writer remembers of the file, if it wrote it before. `overwrite`: human edits are overwritten.
    """
    if current == value:
        return Decision(Verdict.SYNCED)
    repository = repository_of(current)
    if repository is not None and repository != mine and repository in others:
        return Decision(Verdict.CONFLICT if not adopt else Verdict.NOT_ADOPTED, others[repository])
    if record is not None:
        if current in (record.written, record.found) or overwrite:
            return Decision(Verdict.WRITE)
        return Decision(Verdict.PINNED)
    if repository == mine or adopts(current, adopt) or not adopt:
        return Decision(Verdict.WRITE)
    return Decision(Verdict.NOT_ADOPTED)


def combine(decisions: Collection[Decision]) -> Decision:
    """One decision for a file of several documents: the first that stops a write, in the order
    conflict, pinned, not adopted; else write when one document needs it; else synced."""
    for verdict in (Verdict.CONFLICT, Verdict.PINNED, Verdict.NOT_ADOPTED, Verdict.WRITE):
        for decision in decisions:
            if decision.verdict is verdict:
                return decision
    return Decision(Verdict.SYNCED)
