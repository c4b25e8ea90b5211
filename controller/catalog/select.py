"""Which files of a catalog checkout the manifest globs name. Reads the folder it is given; no git,
no network, no writes.

Glob rules (`spec.catalog.manifests`, relative to the repository root, forward slashes):

- A glob is matched segment by segment: `*`, `?` and `[...]` stay within one segment (they match
  a leading dot too), `**` as a whole segment matches zero or more folders (a final `**` every
  file below). Matching is
  case-sensitive, as paths in git are. Empty and `.` segments are ignored.
- Only regular files are selected; a folder or a special file a glob names is not (a special file
  is reported as refused).
- The `.git` folder is never searched.
- A symbolic link is followed only while it stays inside the root: a link that leaves it (or is
  dangling, or points into `.git`) and that a glob could go through is refused with its reason,
  never read. A link back to a folder being searched is not followed again (no loops).
- Files are reported by their real path relative to the real root, so a file reached through a
  link is the file that will be edited, and is selected once however many globs or links name it.
- A glob that names no file is reported in `unmatched` (the write-back reports
  `ManifestNotFound`). A glob that names a refused path itself counts as matched (the refusal
  is the report); one that could only have gone through a refused link to a folder does not.
- A glob that is absolute, uses a backslash or has a `..` segment raises `InvalidGlob` (the spec
  validation refuses those already; this is the defence in depth).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import pathlib
import stat
from collections.abc import Collection, Iterator, Sequence

from controller import errors

SKIPPED = frozenset({".git"})
"""Folder (or file) names never searched."""

Pattern = tuple[str, ...]


class InvalidGlob(errors.StalledError):
    """A glob that could match outside the root. `glob` is the glob, `problem` says why."""

    def __init__(self, glob: str, problem: str) -> None:
        super().__init__("InvalidSpec", f"manifest glob {glob!r}: {problem}")
        self.glob = glob
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class Refused:
    """A path a glob names that is not read; `path` is as found under the root (posix)."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Selection:
    root: pathlib.Path
    """The real (resolved) root the paths are relative to."""
    files: tuple[str, ...]
    """Selected regular files, relative posix paths, sorted, each once."""
    unmatched: tuple[str, ...]
    """The globs that named no file, in the order given."""
    refused: tuple[Refused, ...]
    """Paths named by a glob but not selected, with the reason, sorted by path."""


def select(root: pathlib.Path, globs: Sequence[str]) -> Selection:
    """The regular files under `root` that `globs` name (see the module docstring).

    Raises `InvalidGlob` for a glob that could leave the root, and OSError when `root` is not a
    readable folder.
    """
    patterns = [compile_glob(glob) for glob in globs]
    real_root = pathlib.Path(os.path.realpath(root))
    if not real_root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    walk = _Walk(real_root, patterns)
    os.scandir(real_root).close()  # an unreadable root is the caller's error, not a refusal
    walk.folder(real_root, (), frozenset({real_root}))
    unmatched = dict.fromkeys(
        glob for glob, hit in zip(globs, walk.matched, strict=True) if not hit
    )
    return Selection(
        root=real_root,
        files=tuple(sorted(walk.files)),
        unmatched=tuple(unmatched),
        refused=tuple(Refused(path, reason) for path, reason in sorted(walk.refused.items())),
    )


def compile_glob(glob: str) -> Pattern:
    """The segments of a glob; raises `InvalidGlob` for one that is absolute or leaves the root."""
    if not glob or glob.startswith("/") or "\\" in glob:
        raise InvalidGlob(glob, "must be a relative path with forward slashes")
    parts = [part for part in glob.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidGlob(glob, "matches outside the repository")
    if not parts:
        raise InvalidGlob(glob, "names no file")
    collapsed: list[str] = []
    for part in parts:
        if not (part == "**" and collapsed and collapsed[-1] == "**"):
            collapsed.append(part)
    return tuple(collapsed)


def matches(pattern: Pattern, path: Sequence[str]) -> bool:
    """Whether the path (its segments) is one the pattern names."""
    if not pattern:
        return not path
    if pattern == ("**",):
        return bool(path)  # a final "**" names every file below, not the folder itself
    if pattern[0] == "**":
        return any(matches(pattern[1:], path[index:]) for index in range(len(path) + 1))
    return (
        bool(path) and fnmatch.fnmatchcase(path[0], pattern[0]) and matches(pattern[1:], path[1:])
    )


def could_change(globs: Sequence[str], selected: Collection[str], path: str) -> bool:
    """Whether another writer's change at `path` (a regular file; relative, posix) could change
    what `select(root, globs)` gives or what a selected file holds: it is one of the `selected`
    files, or a glob names it. (A symbolic link anywhere could change either: the caller treats
    those apart.) True when a glob is invalid."""
    if path in selected:
        return True
    segments = tuple(part for part in path.split("/") if part)
    try:
        return any(matches(compile_glob(glob), segments) for glob in globs)
    except InvalidGlob:
        return True


def may_contain(pattern: Pattern, folder: Sequence[str]) -> bool:
    """Whether some path below the folder (its segments) could match the pattern."""
    if not folder:
        return bool(pattern)
    if not pattern:
        return False
    if pattern[0] == "**":
        return True
    return fnmatch.fnmatchcase(folder[0], pattern[0]) and may_contain(pattern[1:], folder[1:])


class _Walk:
    """One search of the root: what was selected, refused and which globs matched."""

    def __init__(self, root: pathlib.Path, patterns: Sequence[Pattern]) -> None:
        self.root = root
        self.patterns = patterns
        self.matched = [False] * len(patterns)
        self.files: set[str] = set()
        self.refused: dict[str, str] = {}

    def _named(self, path: Pattern, *, mark: bool = True) -> bool:
        """Whether a glob names the path; with `mark`, those globs count as matched."""
        hit = False
        for index, pattern in enumerate(self.patterns):
            if matches(pattern, path):
                hit = True
                if mark:
                    self.matched[index] = True
        return hit

    def _entered(self, path: Pattern) -> bool:
        return any(may_contain(pattern, path) for pattern in self.patterns)

    def _refuse(self, path: Pattern, reason: str) -> None:
        self.refused.setdefault("/".join(path), reason)

    def _inside(self, target: pathlib.Path) -> Pattern | None:
        """The target's segments relative to the root, or None when it is outside."""
        if target == self.root:
            return ()
        if not target.is_relative_to(self.root):
            return None
        return target.relative_to(self.root).parts

    def folder(self, real: pathlib.Path, path: Pattern, ancestors: frozenset[pathlib.Path]) -> None:
        try:
            entries = sorted(_entries(real), key=lambda entry: entry.name)
        except OSError as error:
            self._refuse(path, f"folder cannot be read: {error.strerror}")
            return
        for entry in entries:
            if entry.name in SKIPPED:
                continue
            child = (*path, entry.name)
            if entry.is_symlink():
                self._link(entry, child, ancestors)
            elif entry.is_dir(follow_symlinks=False):
                if self._entered(child):
                    self.folder(real / entry.name, child, ancestors | {real / entry.name})
            elif entry.is_file(follow_symlinks=False):
                if self._named(child):
                    self.files.add("/".join(_relative(self.root, real / entry.name)))
            elif self._named(child):
                self._refuse(child, "not a regular file")

    def _link(
        self, entry: os.DirEntry[str], path: Pattern, ancestors: frozenset[pathlib.Path]
    ) -> None:
        named, entered = self._named(path, mark=False), self._entered(path)
        if not (named or entered):
            return
        target = pathlib.Path(os.path.realpath(entry.path))
        inside = self._inside(target)
        if inside is None or any(part in SKIPPED for part in inside):
            where = "outside the repository" if inside is None else "into .git"
            self._named(path)
            self._refuse(path, f"symbolic link {where}; not followed")
            return
        try:
            mode = target.stat().st_mode
        except OSError:
            if named:
                self._named(path)
                self._refuse(path, "dangling symbolic link")
            return
        if stat.S_ISDIR(mode):
            if entered and target not in ancestors:
                self.folder(target, path, ancestors | {target})
        elif named:
            self._named(path)
            if stat.S_ISREG(mode):
                self.files.add("/".join(inside))
            else:
                self._refuse(path, "symbolic link to something that is not a regular file")


def _relative(root: pathlib.Path, real: pathlib.Path) -> Pattern:
    return real.relative_to(root).parts


def _entries(folder: pathlib.Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        yield from entries
