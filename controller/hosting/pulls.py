"""Pull requests as the catalog write-back uses them: the model, the host seam, the verdict and
the text (pure).

With `spec.catalog.pullRequest` the operator's commits go to its push branch, and one pull
request from that branch into the base branch carries them to the catalog: opened when there is
none, updated (title and body) when the branch moved, never duplicated — every RunnerImage that
pushes the branch finds the same one by its head and base. `verdict` tells what a pull request
means for the commit the operator pushed last; `describe` writes its title and body from what the
pull request holds (every commit's subject and every file), so any RunnerImage sharing the branch
writes the same text and nobody rewrites it back and forth.

A host (`Host`) is reached through an adapter (`controller.hosting.github`); its failures are
`errors.StalledError` (credentials, a missing repository, a refusal) or `errors.TransientError`
(unreachable, 5xx, rate limits, paced by the host's Retry-After).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Protocol

State = Literal["open", "merged", "closed"]
Verdict = Literal["merged", "open", "closed", "new"]

MARKER = "<!-- ade-runner-operator: this description is rewritten on every push -->"
MAX_LISTED = 50
"""Commits and files listed in a body at most (the rest are counted)."""


@dataclasses.dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: State
    head_sha: str
    """The head branch's commit the pull request was last at (merged: the one merged)."""
    title: str = ""
    body: str = ""


@dataclasses.dataclass(frozen=True)
class Contents:
    """What a pull request holds: its commits (sha, subject), oldest first, and its files."""

    commits: tuple[tuple[str, str], ...]
    files: tuple[str, ...]


class Host(Protocol):
    """One repository on a git host, with the operator's credentials."""

    @property
    def name(self) -> str: ...

    async def find_open(self, *, head: str, base: str) -> PullRequest | None:
        """The open pull request from branch `head` into `base`, if any."""
        ...

    async def get(self, number: int) -> PullRequest | None:
        """Pull request `number` (None: it does not exist)."""
        ...

    async def open(self, *, head: str, base: str, title: str, body: str) -> PullRequest | None:
        """Open a pull request; the open one if another writer opened it meanwhile; None when
        `head` holds no commit `base` lacks (nothing to merge)."""
        ...

    async def contents(self, number: int) -> Contents: ...

    async def edit(self, number: int, *, title: str, body: str) -> PullRequest: ...


def verdict(found: PullRequest | None, holds: bool) -> Verdict:
    """What `found` (the pull request of the push branch: the recorded one, or the open one)
    means for the push branch's commit the operator pushed last, which it `holds` (an open one
    always will): "merged" (the catalog has it), "open" (waiting for review), "closed" (closed
    without merging it: a person said no), or "new" (none carries it: open one)."""
    if found is None or not holds:
        return "new"
    return found.state


def describe(contents: Contents, *, title: str = "") -> tuple[str, str]:
    """The title and body of a pull request that holds `contents`: the spec's `title`, else the
    one commit's subject, else a count; the body lists every commit and file."""
    commits, files = contents.commits, contents.files
    if not title:
        title = (
            commits[0][1] if len(commits) == 1 else f"Update runner images ({len(commits)} commits)"
        )
    lines = [
        "The ade-runner-operator built and verified these runner images and points the catalog"
        " at them. Merging this pull request makes them live.",
        "",
        "Commits:",
    ]
    lines += [f"- {sha[:12]} {subject}" for sha, subject in commits[:MAX_LISTED]]
    if len(commits) > MAX_LISTED:
        lines.append(f"- ... and {len(commits) - MAX_LISTED} more")
    lines += ["", "Files:"]
    lines += [f"- `{path}`" for path in files[:MAX_LISTED]]
    if len(files) > MAX_LISTED:
        lines.append(f"- ... and {len(files) - MAX_LISTED} more")
    lines += ["", MARKER]
    return title[:256], "\n".join(lines)
