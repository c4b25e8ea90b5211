"""The git plumbing of the GitHub emulator (`tests.env.github`): one bare repository of a
`GitServer` (`tests.env.gitserver`), read and written with `git` on disk.

Branches, commits and diffs are read live from the bare repository: a branch's sha, the commits
one sha has that another lacks (`rev-list`), the files a head changes since its merge base
(GitHub's three-dot comparison), a commit's raw text. A merge is a real merge: a merged tree
(`git merge-tree`) and a commit on it (`git commit-tree`), or a rebase replayed in a scratch
clone; `refs/heads/<base>` is moved to its commit with `git update-ref` (compare-and-swap, no hook
runs: GitHub merges as an admin would, hence `GITSERVER_ADMIN`).

Knows neither pull requests (`tests.env.github`) nor GitHub's JSON (`tests.env.github_shapes`):
it imports only `tests.env.gitserver`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

from tests.env.gitserver import GitServer, git_env

__all__ = ["EMPTY_TREE", "BareRepo", "DiffEntry"]

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""git's empty tree: the sha a missing branch stands for (nothing in it, nothing to list)."""

_STATUS = {
    "A": "added",
    "D": "removed",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "changed",
}
"""`git diff --name-status` letters -> GitHub's diff entry `status`."""


@dataclasses.dataclass(frozen=True)
class DiffEntry:
    """One file a head changes (GitHub's diff entry, before it is shaped as JSON)."""

    status: str
    filename: str
    previous_filename: str | None
    additions: int
    deletions: int
    sha: str | None
    patch: str | None


class BareRepo:
    """The bare repository `name` of `server`, driven with `git` (as its admin)."""

    def __init__(self, server: GitServer, name: str) -> None:
        self.server = server
        self.name = name

    @property
    def path(self) -> pathlib.Path:
        return self.server.path(self.name)

    def exists(self) -> bool:
        return (self.path / "HEAD").is_file()

    def created(self) -> float:
        """When the repository was made (its folder's ctime, seconds since the epoch)."""
        return self.path.stat().st_ctime

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

    # -- reading -----------------------------------------------------------------------------

    def branch_sha(self, branch: str) -> str | None:
        if not branch or branch.startswith("-"):
            return None
        return (
            self.git(
                "rev-parse",
                "--verify",
                "--quiet",
                f"refs/heads/{branch}^{{commit}}",
                check=False,
            )
            or None
        )

    def default_branch(self) -> str:
        head = self.git("symbolic-ref", "--short", "HEAD", check=False)
        return head or "main"

    def commit_time(self, sha: str) -> int:
        """The commit's committer time, seconds since the epoch."""
        stamp = self.git("log", "-1", "--format=%ct", sha) or "0"
        return int(stamp)

    def subject(self, sha: str) -> str:
        return self.git("log", "-1", "--format=%s", sha) or ""

    def commit_text(self, sha: str) -> str:
        """The commit object as `git cat-file commit` prints it (headers, blank line, message)."""
        return self.run("cat-file", "commit", sha).stdout

    def rev_list(self, base_sha: str, head_sha: str) -> list[str]:
        """The commits of `head_sha` that `base_sha` lacks, oldest first (as GitHub lists)."""
        if head_sha == EMPTY_TREE:
            return []
        exclude = [] if base_sha == EMPTY_TREE else [f"^{base_sha}"]
        out = self.git("rev-list", "--reverse", head_sha, *exclude) or ""
        return out.split()

    def diff(self, base_sha: str, head_sha: str) -> list[DiffEntry]:
        """The files `head_sha` changes since its merge base with `base_sha` (GitHub's
        three-dot comparison)."""
        if head_sha == EMPTY_TREE:
            return []
        since = EMPTY_TREE
        if base_sha != EMPTY_TREE:
            since = self.git("merge-base", base_sha, head_sha, check=False) or EMPTY_TREE
        listed = self.run("diff", "--name-status", "-z", "-M", since, head_sha).stdout
        counts = self.run("diff", "--numstat", "-z", "-M", since, head_sha).stdout
        names = [name for name in listed.split("\0") if name]
        entries: list[DiffEntry] = []
        counts_iter = iter(counts.split("\0"))
        index = 0
        while index < len(names):
            code = names[index]
            if code[0] in "RC":
                previous, filename = names[index + 1], names[index + 2]
                index += 3
            else:
                previous, filename = None, names[index + 1]
                index += 2
            stat = next(counts_iter, "")
            if stat.endswith("\t"):  # a rename: the two paths follow as their own fields
                next(counts_iter, "")
                next(counts_iter, "")
            added, deleted = [*stat.split("\t"), "", ""][:2]
            status = _STATUS.get(code[0], "modified")
            blob_at = since if status == "removed" else head_sha
            sha = self.git("rev-parse", f"{blob_at}:{filename}", check=False)
            paths = [p for p in (previous, filename) if p]
            raw_patch = self.git("diff", "--no-color", "-M", since, head_sha, "--", *paths) or ""
            patch_at = raw_patch.find("\n@@")
            patch = raw_patch[patch_at + 1 :] if patch_at >= 0 else None
            entries.append(
                DiffEntry(
                    status=status,
                    filename=filename,
                    previous_filename=previous,
                    additions=int(added) if added.isdigit() else 0,
                    deletions=int(deleted) if deleted.isdigit() else 0,
                    sha=sha or None,
                    patch=patch,
                )
            )
        return entries

    # -- merging -----------------------------------------------------------------------------

    def merge_tree(self, base_sha: str, head_sha: str) -> str | None:
        """The tree of merging `head_sha` into `base_sha`; None if they conflict."""
        result = self.run("merge-tree", "--write-tree", "--messages", base_sha, head_sha)
        if result.returncode != 0:
            return None
        return result.stdout.split()[0]

    def commit_tree(
        self, tree: str, parents: Sequence[str], message: str, env: Mapping[str, str]
    ) -> str:
        """A new commit of `tree` on `parents` (authored as `env` says); its sha."""
        flags = [flag for parent in parents for flag in ("-p", parent)]
        sha = self.git("commit-tree", tree, *flags, "-m", message, env=env)
        assert sha is not None
        return sha

    def rebase(self, base_sha: str, head_sha: str, committer: Mapping[str, str]) -> str | None:
        """`head_sha`'s commits replayed on `base_sha` (as GitHub's rebase merge: new commits
        even when nothing moved, committed as `committer` says); None on a conflict. In a
        scratch clone, fetched back."""
        with tempfile.TemporaryDirectory(dir=self.server.folder, prefix="rebase-") as scratch:
            work = pathlib.Path(scratch) / "work"
            self.git(
                "clone",
                "--quiet",
                "--no-checkout",
                str(self.path),
                str(work),
                cwd=self.server.folder,
            )
            self.git("checkout", "--quiet", "--detach", head_sha, cwd=work)
            rebased = self.run(
                "rebase", "--quiet", "--force-rebase", base_sha, env=committer, cwd=work
            )
            if rebased.returncode != 0:
                return None
            sha = self.git("rev-parse", "HEAD", cwd=work)
            assert sha is not None
            self.git("fetch", "--quiet", "--no-tags", str(work), "HEAD")
            return sha

    def move_branch(self, branch: str, new_sha: str, old_sha: str, reason: str) -> bool:
        """Move `refs/heads/<branch>` to `new_sha` if it is still at `old_sha` (compare and
        swap, no hook runs); False if it was not."""
        moved = self.git(
            "update-ref", "-m", reason, f"refs/heads/{branch}", new_sha, old_sha, check=False
        )
        return moved is not None
