"""The git side of the Azure Repos emulator (`tests.env.azure_repos`): Azure's views of one bare
repository of a `GitServer`, over the shared plumbing of `tests.env.bare_repo`.

Reads: branch heads by full ref name, commits (parsed: author, committer, message, parents), the
commits one head has that another lacks, newest first as Azure lists them, and the files changed
between two commits with their blob ids, typed as Azure's change types. Writes (merge trees,
commits, rebases, compare-and-swap ref moves) are `BareRepo`'s; a commit's people come from
`identity_env`.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from tests.env.bare_repo import EMPTY_TREE, BareRepo

__all__ = ["Change", "CommitInfo", "Person", "RepoGit", "iso"]


def iso(stamp: float) -> str:
    """Seconds since 1970 as Azure DevOps writes dates (UTC, `Z`)."""
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Person:
    name: str
    email: str
    date: str


@dataclasses.dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]
    author: Person
    committer: Person
    message: str


@dataclasses.dataclass(frozen=True)
class Change:
    """One file changed between two commits (`git diff --raw -M`)."""

    kind: str
    """`add`, `edit`, `delete`, `rename` or `edit, rename` (Azure's change type names)."""
    path: str
    original_path: str | None
    old_blob: str | None
    new_blob: str | None


class RepoGit(BareRepo):
    """git in the bare repository `name` of `server`, as Azure Repos shows it."""

    def sha(self, ref: str) -> str | None:
        """The commit a full ref name (`refs/heads/main`) points at; None if there is none."""
        if not ref.startswith("refs/heads/") or ".." in ref or ref.endswith("/"):
            return None
        return self.resolve(ref)

    def default_branch(self) -> str | None:
        head = self.head_ref()
        return head if head and self.sha(head) else None

    def commit(self, sha: str) -> CommitInfo:
        head, _, message = self.out("cat-file", "commit", sha).partition("\n\n")
        fields: dict[str, list[str]] = {}
        for line in head.split("\n"):
            if line.startswith(" "):
                continue  # a continuation (a signature): not needed here
            key, _, value = line.partition(" ")
            fields.setdefault(key, []).append(value)

        def person(value: str) -> Person:
            match = re.fullmatch(r"(.*) <(.*)> (\d+) ([+-]\d{4})", value)
            assert match is not None, value
            return Person(match[1], match[2], iso(int(match[3])))

        return CommitInfo(
            sha=sha,
            tree=fields["tree"][0],
            parents=tuple(fields.get("parent", [])),
            author=person(fields["author"][0]),
            committer=person(fields["committer"][0]),
            message=message.rstrip("\n"),
        )

    def commits_between(self, base: str | None, head: str) -> list[str]:
        """The commits of `head` that `base` lacks, newest first (as Azure lists them)."""
        return self.commits(head, base)

    def changes(self, since: str | None, head: str) -> list[Change]:
        """The files `head` changes since `since` (None: since nothing), renames detected."""
        entries: list[Change] = []
        for raw in self.raw_changes(since or EMPTY_TREE, head):
            kind = {"A": "add", "D": "delete"}.get(raw.status[0], "edit")
            if raw.status[0] == "R":
                kind = "rename" if raw.status == "R100" else "edit, rename"
            entries.append(Change(kind, raw.path, raw.original_path, raw.old_blob, raw.new_blob))
        return entries
