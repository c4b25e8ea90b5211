"""git plumbing on one bare repository of a `GitServer` (`tests.env.gitserver`), shared by the
hosting emulators (`tests.env.github_git`, `tests.env.azure_repos_git`), which add their host's
views on top.

Reads: a ref's commit, `HEAD`'s ref, a commit's raw text, the commits one head has that another
lacks (`rev-list`), merge bases, and the files changed between two commits with their blob ids
(`git diff --raw -M`). Writes, as an administrator (`GITSERVER_ADMIN=1`; `update-ref` runs no hook
anyway): merged trees (`merge-tree --write-tree`) and commits on them (`commit-tree`), commits
replayed by a rebase (in a scratch clone, fetched back), and ref moves with `update-ref` given
the old value (compare-and-swap).
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

from tests.env.gitserver import GitServer, git_env

__all__ = ["EMPTY_TREE", "ZERO", "BareRepo", "RawChange", "identity_env"]

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""git's empty tree: the sha a missing branch stands for (nothing in it, nothing to list)."""
ZERO = "0" * 40
"""The blob id `git diff --raw` gives the missing side of an added or deleted file."""


def identity_env(
    committer: tuple[str, str], author: tuple[str, str] | None = None
) -> dict[str, str]:
    """git's environment naming a commit's committer and, when given, its author (name, e-mail)."""
    env = {"GIT_COMMITTER_NAME": committer[0], "GIT_COMMITTER_EMAIL": committer[1]}
    if author is not None:
        env.update({"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1]})
    return env


@dataclasses.dataclass(frozen=True)
class RawChange:
    """One file changed between two commits, as `git diff --raw -M` lists it."""

    status: str
    """git's status letter and score: `A`, `D`, `M`, `T`, `R100`, `C75`..."""
    path: str
    original_path: str | None
    """The path it had before a rename or copy."""
    old_blob: str | None
    new_blob: str | None


class BareRepo:
    """git in the bare repository `name` of `server` (as its admin)."""

    def __init__(self, server: GitServer, name: str) -> None:
        self.server = server
        self.name = name

    @property
    def path(self) -> pathlib.Path:
        return self.server.path(self.name)

    def exists(self) -> bool:
        return (self.path / "HEAD").is_file()

    # -- running git -------------------------------------------------------------------------

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

    def git(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        cwd: pathlib.Path | None = None,
    ) -> str | None:
        """`git args` in the bare repository (or `cwd`); stdout stripped, None on failure when
        not `check`."""
        result = self.run(*args, env=env, cwd=cwd)
        if result.returncode != 0:
            if check:
                raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
            return None
        return result.stdout.strip()

    def out(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """stdout of `git args`, stripped; RuntimeError on failure."""
        return self.git(*args, env=env) or ""

    # -- reading -----------------------------------------------------------------------------

    def resolve(self, ref: str) -> str | None:
        """The commit `ref` points at; None if there is none."""
        found = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return found.stdout.strip() or None

    def head_ref(self) -> str | None:
        """The ref `HEAD` names (`refs/heads/main`), None if it names none."""
        return self.run("symbolic-ref", "HEAD").stdout.strip() or None

    def commit_text(self, sha: str) -> str:
        """The commit object as `git cat-file commit` prints it (headers, blank line, message)."""
        return self.run("cat-file", "commit", sha).stdout

    def commits(self, head: str, exclude: str | None, *, oldest_first: bool = False) -> list[str]:
        """The commits of `head` that `exclude` lacks (None: all of them), newest first."""
        order = ["--reverse"] if oldest_first else []
        hidden = [f"^{exclude}"] if exclude else []
        return self.out("rev-list", *order, head, *hidden).split()

    def merge_base(self, one: str, other: str) -> str | None:
        return self.run("merge-base", one, other).stdout.strip() or None

    def is_ancestor(self, commit: str, of: str) -> bool:
        return self.run("merge-base", "--is-ancestor", commit, of).returncode == 0

    def raw_changes(self, since: str, head: str) -> list[RawChange]:
        """The files `head` changes since `since`, renames detected, in git's order."""
        fields = self.out("diff", "--raw", "-z", "-M", "--no-abbrev", since, head).split("\0")
        entries: list[RawChange] = []
        index = 0
        while index < len(fields) - 1:
            _, _, old, new, status = fields[index].lstrip(":").split()
            if status[0] in "RC":
                original, path = fields[index + 1], fields[index + 2]
                index += 3
            else:
                original, path = None, fields[index + 1]
                index += 2
            old_blob = None if old == ZERO else old
            entries.append(
                RawChange(status, path, original, old_blob, None if new == ZERO else new)
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
        self, tree: str, parents: Sequence[str], message: str, env: Mapping[str, str]
    ) -> str:
        """A new commit of `tree` on `parents` (authored as `env` says); its sha."""
        flags = [flag for parent in parents for flag in ("-p", parent)]
        return self.out("commit-tree", tree, *flags, "-m", message, env=env)

    def move(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        """Point `ref` at `new` if it still points at `old` (None: whatever it points at), no
        hook run; False if it did not."""
        expected = [] if old is None else [old]
        return self.run("update-ref", "-m", reason, ref, new, *expected).returncode == 0

    def delete(self, ref: str, old: str) -> bool:
        return self.run("update-ref", "-d", ref, old).returncode == 0

    def rebase(self, onto: str, head: str, committer: Mapping[str, str]) -> str | None:
        """`head`'s commits since its merge base replayed on `onto` (new commits even when
        nothing moved, committed as `committer` says); their new head, or None on a conflict.
        In a scratch clone, fetched back."""
        with tempfile.TemporaryDirectory(dir=self.server.folder, prefix="rebase-") as scratch:
            work = pathlib.Path(scratch) / "work"
            self.git(
                "clone", "--quiet", "--no-checkout", str(self.path), str(work),
                cwd=self.server.folder,
            )  # fmt: skip
            self.git("checkout", "--quiet", "--detach", head, cwd=work)
            rebased = self.run("rebase", "--quiet", "--force-rebase", onto, env=committer, cwd=work)
            if rebased.returncode != 0:
                return None
            sha = self.git("rev-parse", "HEAD", cwd=work) or ""
            self.out("fetch", "--quiet", "--no-tags", str(work), "HEAD")
            return sha
