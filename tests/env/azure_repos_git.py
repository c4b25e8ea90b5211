"""The git side of the Azure Repos emulator (`tests.env.azure_repos`): what it reads from and
writes to a `GitServer` bare repository, with the machine's git.

Reads: branch heads, commits (parsed: author, committer, message, parents), the commits one head
has that another lacks, merge bases, and the files changed between two commits with their blob
ids (`git diff --raw`). Writes, as an administrator (`GITSERVER_ADMIN=1`, and `update-ref`
runs no hook anyway): merge trees and commits made with `merge-tree --write-tree` and
`commit-tree`, commits replayed by a rebase (in a scratch clone, fetched back), and ref moves
with `update-ref` given the old value (compare-and-swap).
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

from tests.env.gitserver import GitServer, git_env

__all__ = ["Change", "CommitInfo", "Person", "RepoGit", "iso"]

ZERO = "0" * 40


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


class RepoGit:
    """git in the bare repository `name` of `server`."""

    def __init__(self, server: GitServer, name: str) -> None:
        self.server = server
        self.name = name

    @property
    def path(self) -> pathlib.Path:
        return self.server.path(self.name)

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: pathlib.Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        location = ["-C", str(cwd)] if cwd is not None else ["--git-dir", str(self.path)]
        return subprocess.run(
            ["git", *location, *args],
            env={**git_env(self.server.folder), "GITSERVER_ADMIN": "1", **(env or {})},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def out(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """stdout of `git args`, stripped; RuntimeError on failure."""
        result = self.run(*args, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    # -- reading -----------------------------------------------------------------------------

    def sha(self, ref: str) -> str | None:
        """The commit a full ref name (`refs/heads/main`) points at; None if there is none."""
        if not ref.startswith("refs/heads/") or ".." in ref or ref.endswith("/"):
            return None
        found = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return found.stdout.strip() or None

    def default_branch(self) -> str | None:
        head = self.run("symbolic-ref", "HEAD").stdout.strip()
        return head if head and self.sha(head) else None

    def commit(self, sha: str) -> CommitInfo:
        raw = self.out("cat-file", "commit", sha)
        head, _, message = raw.partition("\n\n")
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
        exclude = [f"^{base}"] if base else []
        return self.out("rev-list", head, *exclude).split()

    def merge_base(self, one: str, other: str) -> str | None:
        return self.run("merge-base", one, other).stdout.strip() or None

    def is_ancestor(self, commit: str, of: str) -> bool:
        return self.run("merge-base", "--is-ancestor", commit, of).returncode == 0

    def changes(self, since: str | None, head: str) -> list[Change]:
        """The files `head` changes since `since` (None: since nothing), renames detected."""
        empty = self.out("hash-object", "-t", "tree", "/dev/null")
        raw = self.out("diff", "--raw", "-z", "-M", "--no-abbrev", since or empty, head)
        fields = raw.split("\0")
        entries: list[Change] = []
        index = 0
        while index < len(fields) - 1:
            meta = fields[index].lstrip(":").split()
            _, _, old, new, status = meta
            if status[0] in "RC":
                original, path = fields[index + 1], fields[index + 2]
                index += 3
            else:
                original, path = None, fields[index + 1]
                index += 2
            kind = {"A": "add", "D": "delete"}.get(status[0], "edit")
            if status[0] == "R":
                kind = "rename" if status == "R100" else "edit, rename"
            entries.append(
                Change(
                    kind=kind,
                    path=path,
                    original_path=original,
                    old_blob=None if old == ZERO else old,
                    new_blob=None if new == ZERO else new,
                )
            )
        return entries

    # -- writing -----------------------------------------------------------------------------

    def merge_tree(self, target: str, source: str) -> str | None:
        """The tree of merging `source` into `target`; None if they conflict."""
        result = self.run("merge-tree", "--write-tree", "--messages", target, source)
        if result.returncode != 0:
            return None
        return result.stdout.split()[0]

    def commit_tree(
        self, tree: str, parents: Sequence[str], message: str, who: tuple[str, str]
    ) -> str:
        """A new commit of `tree` by `who` (name, e-mail), author and committer."""
        name, email = who
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        flags = [flag for parent in parents for flag in ("-p", parent)]
        return self.out("commit-tree", tree, *flags, "-m", message, env=env)

    def move(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        """Point `ref` at `new` if it still points at `old` (None: whatever it points at)."""
        expected = [] if old is None else [old]
        return self.run("update-ref", "-m", reason, ref, new, *expected).returncode == 0

    def delete(self, ref: str, old: str) -> bool:
        return self.run("update-ref", "-d", ref, old).returncode == 0

    def rebase(self, onto: str, head: str, who: tuple[str, str]) -> str | None:
        """`head`'s commits since its merge base replayed on `onto` (new commits, committed by
        `who`, as Azure's rebase does); their new head, or None on a conflict."""
        with tempfile.TemporaryDirectory(dir=self.server.folder, prefix="rebase-") as scratch:
            work = pathlib.Path(scratch) / "work"
            cloned = self.run(
                "clone", "--quiet", "--no-checkout", str(self.path), str(work),
                cwd=self.server.folder,
            )  # fmt: skip
            if cloned.returncode != 0:
                raise RuntimeError(f"git clone failed: {cloned.stderr.strip()}")
            self.run("checkout", "--quiet", "--detach", head, cwd=work)
            committer = {"GIT_COMMITTER_NAME": who[0], "GIT_COMMITTER_EMAIL": who[1]}
            rebased = self.run("rebase", "--quiet", "--force-rebase", onto, env=committer, cwd=work)
            if rebased.returncode != 0:
                return None
            sha = self.run("rev-parse", "HEAD", cwd=work).stdout.strip()
            self.out("fetch", "--quiet", "--no-tags", str(work), "HEAD")
            return sha
