"""The git side of the GitHub emulator (`tests.env.github`): GitHub's views of one bare repository
of a `GitServer`, over the shared plumbing of `tests.env.bare_repo`.

Branches, commits and diffs are read live from the bare repository: a branch's sha (a missing
one stands for `EMPTY_TREE`), the commits one sha has that another lacks, oldest first as GitHub
lists them, the files a head changes since its merge base (GitHub's three-dot comparison, with
line counts, blob shas and patches), a commit's subject and time. Merging (merge-tree,
commit-tree, rebase, update-ref compare-and-swap) is `BareRepo`'s.

Knows neither pull requests (`tests.env.github`) nor GitHub's JSON (`tests.env.github_shapes`).
"""

from __future__ import annotations

import dataclasses

from tests.env.bare_repo import EMPTY_TREE, BareRepo

__all__ = ["EMPTY_TREE", "DiffEntry", "GitHubRepo"]

_STATUS = {
    "A": "added",
    "D": "removed",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "changed",
}
"""git's status letters -> GitHub's diff entry `status`."""


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


class GitHubRepo(BareRepo):
    """The bare repository `name` of `server`, as GitHub shows it."""

    def created(self) -> float:
        """When the repository was made (its folder's ctime, seconds since the epoch)."""
        return self.path.stat().st_ctime

    def branch_sha(self, branch: str) -> str | None:
        if not branch or branch.startswith("-"):
            return None
        return self.resolve(f"refs/heads/{branch}")

    def default_branch(self) -> str:
        return (self.head_ref() or "").removeprefix("refs/heads/") or "main"

    def commit_time(self, sha: str) -> int:
        """The commit's committer time, seconds since the epoch."""
        return int(self.out("log", "-1", "--format=%ct", sha) or "0")

    def subject(self, sha: str) -> str:
        return self.out("log", "-1", "--format=%s", sha)

    def rev_list(self, base_sha: str, head_sha: str) -> list[str]:
        """The commits of `head_sha` that `base_sha` lacks, oldest first (as GitHub lists)."""
        if head_sha == EMPTY_TREE:
            return []
        exclude = None if base_sha == EMPTY_TREE else base_sha
        return self.commits(head_sha, exclude, oldest_first=True)

    def diff(self, base_sha: str, head_sha: str) -> list[DiffEntry]:
        """The files `head_sha` changes since its merge base with `base_sha` (GitHub's
        three-dot comparison)."""
        if head_sha == EMPTY_TREE:
            return []
        since = EMPTY_TREE
        if base_sha != EMPTY_TREE:
            since = self.merge_base(base_sha, head_sha) or EMPTY_TREE
        counts = iter(self.run("diff", "--numstat", "-z", "-M", since, head_sha).stdout.split("\0"))
        entries: list[DiffEntry] = []
        for change in self.raw_changes(since, head_sha):
            stat = next(counts, "")
            if stat.endswith("\t"):  # a rename: the two paths follow as their own fields
                next(counts, "")
                next(counts, "")
            added, deleted = [*stat.split("\t"), "", ""][:2]
            status = _STATUS.get(change.status[0], "modified")
            paths = [p for p in (change.original_path, change.path) if p]
            raw_patch = self.git("diff", "--no-color", "-M", since, head_sha, "--", *paths) or ""
            patch_at = raw_patch.find("\n@@")
            entries.append(
                DiffEntry(
                    status=status,
                    filename=change.path,
                    previous_filename=change.original_path,
                    additions=int(added) if added.isdigit() else 0,
                    deletions=int(deleted) if deleted.isdigit() else 0,
                    sha=change.old_blob if status == "removed" else change.new_blob,
                    patch=raw_patch[patch_at + 1 :] if patch_at >= 0 else None,
                )
            )
        return entries
