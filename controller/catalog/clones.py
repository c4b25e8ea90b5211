"""The catalog writer's clone cache, and the lock that makes one writer per repository branch.

- `CloneCache`: one shallow working clone per (repository URL, branch) in a folder the caller
  owns (named by `clone_name`); reused with `fetch --depth=1` and a hard reset to the remote
  head (`gitcli.Git.sync`); an LRU over clones (`to_evict`), bounded in count and in bytes,
  evicts whole clones; a damaged clone is discarded and cloned again, transparently. A marker
  file in each clone's `.git` (`META`) tells a clone from leftovers, and keeps the LRU across a
  restart.
- `repository_lock`: writes to one repository (URL + branch) are serialized in the process.

One process owns a cache folder; clones are shallow (depth 1), so the history is the server's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import logging
import os
import pathlib
import re
import shutil
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Collection, Iterable

logger = logging.getLogger(__name__)


# -- the LRU's choice, and the names of clones (pure) -------------------------------------------


@dataclasses.dataclass(frozen=True)
class CachedClone:
    """One clone of the cache as the LRU sees it."""

    name: str
    size: int
    last_used: float


def to_evict(
    clones: Iterable[CachedClone],
    *,
    max_clones: int,
    max_bytes: int | None,
    keep: Collection[str] = (),
) -> list[str]:
    """The clones to remove, least recently used first, until at most `max_clones` remain and
    (when `max_bytes` is set) they take at most `max_bytes`; those in `keep` (in use, or just
    used) are never chosen, so a single clone larger than the budget stays."""
    ordered = sorted(clones, key=lambda clone: (clone.last_used, clone.name))
    count, total = len(ordered), sum(clone.size for clone in ordered)
    chosen: list[str] = []
    for clone in ordered:
        if count <= max_clones and (max_bytes is None or total <= max_bytes):
            break
        if clone.name in keep:
            continue
        chosen.append(clone.name)
        count -= 1
        total -= clone.size
    return chosen


def clone_name(*, url: str, branch: str) -> str:
    """The folder name of the clone of (url, branch): readable, and unique by a hash."""
    digest = hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:16]
    stem = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{branch}").strip("-.")[:48]
    return f"{readable or 'repo'}-{digest}"


# -- the lock registry: one writer per repository branch in the process -------------------------


@dataclasses.dataclass
class _Held:
    lock: asyncio.Lock
    users: int = 0


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], _Held]] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def repository_lock(*, url: str, branch: str) -> AsyncIterator[None]:
    """Hold the process-wide lock of (url, branch): every `CatalogWriter` of the process takes it
    around a write, so one repository branch is written by one batch at a time. (Per event loop:
    asyncio locks belong to one; the registry forgets locks nobody holds or awaits.)"""
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    key = (url, branch)
    held = locks.get(key)
    if held is None:
        held = locks[key] = _Held(asyncio.Lock())
    held.users += 1
    try:
        async with held.lock:
            yield
    finally:
        held.users -= 1
        if held.users == 0:
            del locks[key]


# -- the clone cache -------------------------------------------------------------------------

META = "ade-catalog-clone.json"
_NAME = re.compile(r"[A-Za-z0-9._-]*-[0-9a-f]{16}")


class CloneCache:
    """Working clones under `folder`, one per (url, branch), evicted least recently used first
    beyond `max_clones` clones or `max_bytes` bytes; every `gc_every` uses a clone drops what
    its fetches left unreachable (`git gc --prune=now`). Used by `CatalogWriter` under
    `repository_lock`; the folder belongs to one process."""

    def __init__(
        self,
        folder: pathlib.Path,
        *,
        max_clones: int = 16,
        max_bytes: int | None = 1 << 30,
        gc_every: int = 100,
    ) -> None:
        if max_clones < 1:
            raise ValueError("max_clones must be at least 1")
        self.folder = folder
        self.max_clones = max_clones
        self.max_bytes = max_bytes
        self.gc_every = gc_every
        self._uses: collections.Counter[str] = collections.Counter()
        self._clones: dict[str, CachedClone] | None = None
        self._loading = asyncio.Lock()  # the first uses must not scan while a clone is made
        self._in_use: collections.Counter[str] = collections.Counter()
        self._clean: dict[str, str] = {}
        """Clone name -> the commit its work tree was last left a clean checkout of
        (`left_clean`, `touched`). In memory: a new process checks out."""

    def path(self, *, url: str, branch: str) -> pathlib.Path:
        return self.folder / clone_name(url=url, branch=branch)

    def left_clean(self, path: pathlib.Path, head: str) -> None:
        """The work tree of the clone at `path` is a clean checkout of `head` now (`Git` says
        so after a checkout and a landed push): a write starting there needs no checkout."""
        self._clean[path.name] = head

    def touched(self, path: pathlib.Path) -> str | None:
        """Forget that the tree at `path` was left clean (something is about to change it);
        the commit it was a clean checkout of, or None."""
        return self._clean.pop(path.name, None)

    def gc_due(self, path: pathlib.Path) -> bool:
        """Whether the clone at `path` is due for a `git gc` (counted per use)."""
        self._uses[path.name] += 1
        return self.gc_every > 0 and self._uses[path.name] % self.gc_every == 0

    def clones(self) -> list[CachedClone]:
        """The clones known now (after the first `use`), least recently used first."""
        return sorted((self._clones or {}).values(), key=lambda clone: clone.last_used)

    @contextlib.asynccontextmanager
    async def use(self, *, url: str, branch: str) -> AsyncIterator[pathlib.Path]:
        """The clone folder of (url, branch), which may not exist yet (`Git.sync` makes it).
        Afterwards its size is measured and the LRU evicts what exceeds the budget."""
        async with self._loading:
            if self._clones is None:
                self._clones = await asyncio.to_thread(self._load)
        name = clone_name(url=url, branch=branch)
        self._in_use[name] += 1
        try:
            yield self.folder / name
        finally:
            self._in_use[name] -= 1
            if not self._in_use[name]:
                del self._in_use[name]
            await self._account(name)

    async def discard(self, path: pathlib.Path) -> None:
        """Remove a clone: renamed away at once (so nothing can start using it), then deleted."""
        self.touched(path)
        if self._clones is not None:
            self._clones.pop(path.name, None)
        trash = self._trash(path)
        if trash is not None:
            await asyncio.to_thread(shutil.rmtree, trash, True)

    def _trash(self, path: pathlib.Path) -> pathlib.Path | None:
        trash = self.folder / f".trash-{uuid.uuid4().hex}"
        try:
            path.rename(trash)
        except FileNotFoundError:
            return None
        return trash

    async def _account(self, name: str) -> None:
        assert self._clones is not None
        path = self.folder / name
        try:
            size = await asyncio.to_thread(_disk_usage, path)
        except OSError:
            size = -1
        if size < 0 or not (path / ".git" / META).exists():
            self._clones.pop(name, None)
            return
        now = time.time()
        with contextlib.suppress(OSError):
            os.utime(path / ".git" / META, (now, now))  # the LRU survives a restart
        self._clones[name] = CachedClone(name, size, now)
        victims = to_evict(
            self._clones.values(),
            max_clones=self.max_clones,
            max_bytes=self.max_bytes,
            keep={*self._in_use, name},
        )
        trashes = []
        for victim in victims:  # renamed without awaiting in between: none is in use
            self._clones.pop(victim, None)
            trash = self._trash(self.folder / victim)
            if trash is not None:
                trashes.append(trash)
            logger.debug("evicted the catalog clone %s", victim)
        for trash in trashes:
            await asyncio.to_thread(shutil.rmtree, trash, True)

    def _load(self) -> dict[str, CachedClone]:
        """What a previous run left: clones with their size and last use; trash removed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        found: dict[str, CachedClone] = {}
        for child in self.folder.iterdir():
            if child.name.startswith(".trash-"):
                shutil.rmtree(child, ignore_errors=True)
            elif child.is_dir() and _NAME.fullmatch(child.name):
                meta = child / ".git" / META
                if meta.exists():
                    found[child.name] = CachedClone(
                        child.name, _disk_usage(child), meta.stat().st_mtime
                    )
                else:
                    shutil.rmtree(child, ignore_errors=True)
        return found


def _disk_usage(path: pathlib.Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def clear_leftovers(git_dir: pathlib.Path) -> None:
    """What an interrupted git leaves behind (we hold the repository lock: nobody else runs)."""
    for name in ("index.lock", "shallow.lock", "HEAD.lock", "CHERRY_PICK_HEAD", "REBASE_HEAD"):
        with contextlib.suppress(FileNotFoundError):
            (git_dir / name).unlink()
    for name in ("rebase-merge", "rebase-apply"):
        shutil.rmtree(git_dir / name, ignore_errors=True)
