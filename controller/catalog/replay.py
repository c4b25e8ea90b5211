"""A batch's commit made again on a new head without running its edits: the short retry.

When the catalog writer's push loses a race, the branch has moved from the head the batch was
edited on (`parent`) to a new one (`onto`). Running every edit again on a fresh checkout of the
new head is always right, but slow: a checkout, the edits, staging, a commit, each a git process,
all inside the window between reading the branch (the fetch) and updating it (the push). A writer
whose window is longer than the time between another writer's pushes never lands.

So when the other commits cannot have changed what the edits do, the commit is replayed instead:
the files it changed (their blobs, already in the clone) laid on the new head's tree, with the
same message and author, in four short git processes (three of them beside the check of the
other writers' changes, which is a fifth). That is the case when the changes from
`parent` to `onto`:

- touch none of the paths the commit changed (a file the edits wrote and someone else edited
  since must be edited again: the edits decide what wins), and
- touch no symbolic link and no submodule (either could change which files a path names), and
- touch no path any edit of the batch depends on (`Change.depends_on`: e.g. a path its manifest
  globs match, which could change what it selects).

Otherwise (or when the new tree cannot be composed, e.g. a file where the commit has a folder)
`replay` answers None and the writer runs the edits again. Pure parsing (`changed_paths`) apart
from the git calls, which go through `gitcli.Git`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import pathlib
from collections.abc import Callable, Mapping

from controller.catalog.gitcli import Git

SPECIAL_MODES = frozenset({"120000", "160000"})
"""A symbolic link and a submodule (gitlink): a change to either always means running the edits."""
ABSENT = "000000"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One path of a tree diff: its mode and blob on each side (ABSENT and zeros when none)."""

    old_mode: str
    new_mode: str
    new_blob: str


@dataclasses.dataclass(frozen=True)
class Replayable:
    """What a commit needs to be replayed: its parent, what it changed, its raw message."""

    commit: str
    parent: str
    changes: Mapping[str, Entry]
    message: str


def changed_paths(raw: str) -> dict[str, Entry]:
    """The entries of `git diff-tree -r -z --raw --no-renames A B` output, by path."""
    fields = raw.split("\0")
    entries: dict[str, Entry] = {}
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        parts = meta.lstrip(":").split()
        if not meta.startswith(":") or len(parts) < 5:
            raise ValueError(f"unexpected diff-tree line {meta!r}")
        entries[path] = Entry(old_mode=parts[0], new_mode=parts[1], new_blob=parts[3])
    return entries


def message_of(raw_commit: str) -> str:
    """The message of a commit as `git cat-file commit` prints it (everything after the headers)."""
    return raw_commit.partition("\n\n")[2]


def replays_safely(
    theirs: Mapping[str, Entry], ours: Mapping[str, Entry], depends_on: Callable[[str], bool]
) -> bool:
    """Whether the other writers' changes (`theirs`) leave the edits' result (`ours`) as it is."""
    for path, entry in theirs.items():
        if path in ours or {entry.old_mode, entry.new_mode} & SPECIAL_MODES or depends_on(path):
            return False
    return True


async def diff(git: Git, old: str, new: str) -> dict[str, Entry]:
    return changed_paths(
        await git.local("diff-tree", "-r", "-z", "--raw", "--no-renames", old, new)
    )


async def replayable(git: Git, commit: str, parent: str) -> Replayable:
    """Read what replaying `commit` (a child of `parent`) needs, and write its message where
    `replay` reads it; done before the next fetch, so that it is outside the window."""
    changes = await diff(git, parent, commit)
    raw = await git.local("cat-file", "commit", commit)
    what = Replayable(commit=commit, parent=parent, changes=changes, message=message_of(raw))
    await asyncio.to_thread(_write_message, git, what)
    return what


def _message_file(git: Git, what: Replayable) -> pathlib.Path:
    digest = hashlib.sha256(what.message.encode()).hexdigest()[:16]
    return git.scratch / f"replay-{digest}.message"


def _write_message(git: Git, what: Replayable) -> pathlib.Path:
    path = _message_file(git, what)
    if not path.exists():
        path.write_text(what.message)
    return path


async def replay(
    git: Git,
    what: Replayable,
    *,
    onto: str,
    depends_on: Callable[[str], bool],
    env: dict[str, str],
) -> str | None:
    """`what.commit` made again as a child of `onto` (author and committer from `env`, the same
    message); its sha, or None when the edits must run again (see the module docstring).

    This runs between the fetch that read `onto` and the push, so it is kept short: the check
    of the other writers' changes runs beside the composition of the new tree (which is thrown
    away when the check says no), and the message file was written by `replayable`."""
    theirs, tree = await asyncio.gather(diff(git, what.parent, onto), _tree(git, what, onto, env))
    if not replays_safely(theirs, what.changes, depends_on) or tree is None:
        return None
    message = _message_file(git, what)
    if not message.exists():  # a `Replayable` made elsewhere
        await asyncio.to_thread(_write_message, git, what)
    # commit-tree ignores commit.gpgSign: a signing writer says so (`Git.sign_flags`)
    made = await git.local(
        "commit-tree", *git.sign_flags, tree, "-p", onto, "-F", str(message), env=env
    )
    return made.strip()


async def _tree(git: Git, what: Replayable, onto: str, env: dict[str, str]) -> str | None:
    """The tree of `onto` with the files `what` changed laid on it (in a private index, which
    `read-tree` resets); None when it cannot be composed."""
    index = {**env, "GIT_INDEX_FILE": str(git.scratch / "replay.index")}
    await git.local("read-tree", onto, env=index)
    removed = [path for path, entry in what.changes.items() if entry.new_mode == ABSENT]
    written = [
        f"{entry.new_mode},{entry.new_blob},{path}"
        for path, entry in what.changes.items()
        if entry.new_mode != ABSENT
    ]
    if removed:
        await git.local("update-index", "--force-remove", "--", *removed, env=index)
    if written:
        arguments = [argument for item in written for argument in ("--cacheinfo", item)]
        done = await git.run("update-index", "--add", *arguments, env=index)
        if done.returncode != 0:  # e.g. a file of theirs where the commit has a folder
            return None
    return (await git.local("write-tree", env=index)).strip()
