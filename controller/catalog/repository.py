"""Catalog write-back on the git CLI: a clone cache, batched commits, pushes retried in-process.

The I/O edge of `controller.catalog`: what to change in a manifest is an edit callback (the pure
YAML engine lives next door); this module clones, applies, commits and pushes.

- `CloneCache`: one shallow working clone per (repository URL, branch) in a folder the caller
  owns; reused with `fetch --depth=1` and a hard reset to the remote head; an LRU over clones,
  bounded in count and in bytes, evicts whole clones; a damaged clone (a broken `.git`, a fetch
  or checkout failing on corruption) is discarded and cloned again, transparently.
- `CatalogWriter.submit(change)`: the changes for one (url, branch, push_branch) that arrive
  within `window` seconds of the first one, or while a write to that repository is in flight,
  are applied one after the other on one work tree and leave in ONE commit and ONE push. Each
  submitter gets its own `Result` or its own exception (an edit that raises fails only itself).
- A push rejected because the branch moved is retried in-process after a short jittered backoff:
  fetch, reset to the new head, apply every edit of the batch again (changes submitted meanwhile
  join), commit, push; bounded attempts, then `CatalogPushRejected` (Transient). The base branch
  is never force-pushed, so a writer that moves it faster than a fetch-then-push round trip
  starves this one (as it would any writer that does not force).
- With `push_branch` (the operator's own branch, e.g. for pull requests) that branch is rebuilt on
  the base head at every write, its own commits replayed (`rebase --onto`), and pushed with
  `--force-with-lease`: it never falls behind, and the base branch is never touched.
- Writes to one repository (URL + branch) are serialized in the process (`repository_lock`).

Secrecy and isolation are those of `controller.sources.git`, whose pieces are reused: git runs
from `run_git` with an environment built from nothing (`environment`), credentials in
`http.<origin>.extraHeader` or an SSH key file in a per-write scratch folder, never in argv, in
the URL, in the clone's config, in commit messages, logs or errors (`credentials.scrub`).
Errors are typed (`CatalogError` subclasses, with condition reasons `Catalog*`).

One process owns a cache folder; clones are shallow (depth 1), so the history is the server's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import pathlib
import posixpath
import re
import secrets
import shutil
import tempfile
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from typing import ClassVar, Literal

from controller import errors
from controller.observe import metrics as metrics_
from controller.sources import credentials as credentials_
from controller.sources import git as git_
from controller.sources.credentials import Credentials

logger = logging.getLogger(__name__)

Edit = Callable[[pathlib.Path], list[str]]
"""Edits files under the work tree it is given; returns the paths it changed (relative, or
absolute inside the tree). The edits of a batch run in order in one worker thread, and again on
every push attempt (each time on a fresh checkout of the new head), so an edit must be a function
of the files it reads. It may raise (a `errors.StalledError` for a bad file): that fails only its
own change. Everything the edits change is committed; each change is credited with the paths it
reported."""


# -- errors ----------------------------------------------------------------------------------


class CatalogError(errors.ReconcileError):
    """Writing to the catalog repository failed. `url` is redacted; `detail` is git's own words,
    scrubbed; `branch` is the branch written (the push branch when there is one)."""

    REASON: ClassVar[str] = "CatalogGitFailed"

    def __init__(self, message: str, *, url: str, branch: str, detail: str = "") -> None:
        super().__init__(self.REASON, message)
        self.url = url
        self.branch = branch
        self.detail = detail

    def copy(self) -> CatalogError:
        """The same error as a new object: each submitter of a batch raises its own."""
        return type(self)(self.message, url=self.url, branch=self.branch, detail=self.detail)


class CatalogAuthFailed(CatalogError, errors.StalledError):
    """The server refused the credentials, needs some, or lets them read but not push."""

    REASON = "CatalogAuthFailed"


class CatalogRepositoryNotFound(CatalogError, errors.StalledError):
    """No repository at the URL, or the credentials cannot see it (hosts answer alike)."""

    REASON = "CatalogRepositoryNotFound"


class CatalogBranchNotFound(CatalogError, errors.StalledError):
    """The base branch does not exist (the writer never creates a base branch)."""

    REASON = "CatalogBranchNotFound"


class CatalogPushRefused(CatalogError, errors.StalledError):
    """The server refused the push itself (a protected branch, a hook): retrying cannot help."""

    REASON = "CatalogPushRefused"


class CatalogPushRejected(CatalogError, errors.TransientError):
    """Every push attempt lost the race to another writer of the branch; retry later."""

    REASON = "CatalogPushRejected"


class CatalogUnavailable(CatalogError, errors.TransientError):
    """Network, server, time-out or any failure not recognized; retry with backoff."""

    REASON = "CatalogUnavailable"


_KINDS: dict[type[git_.GitError], type[CatalogError]] = {
    git_.GitAuthFailed: CatalogAuthFailed,
    git_.GitRepositoryNotFound: CatalogRepositoryNotFound,
    git_.GitRefNotFound: CatalogBranchNotFound,
}

_CORRUPT = re.compile(
    r"corrupt|bad object|not a git repository|unable to read|loose object|object file .* empty"
    r"|invalid object|missing (blob|tree|commit)|bad tree|broken link|packed object|index file"
    r"|unknown index entry|bad signature|did not send all necessary objects|could not parse"
    r"|bad (revision|ref)|invalid (sha1|ref)|shallow file|unable to (create|write|lock)",
    re.IGNORECASE,
)
"""Failures that say the clone is damaged (not the server): discard it and clone again."""

_LOST_RACE = re.compile(
    r"\[rejected\]|\[remote rejected\] \((failed to (update|lock) ref|cannot lock ref"
    r"|incorrect old value|atomic transaction failed|stale info)",
    re.IGNORECASE,
)
"""A push that lost a race: refused by the client (not a fast-forward, stale lease) or by the
server's compare-and-swap of the ref (another push landed between advertisement and update)."""


class _Damaged(Exception):
    """The clone is damaged; raised inside `_Git` only, and answered by recloning once."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# -- what submitters give and get --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Change:
    """One edit of a catalog repository, as a reconcile step submits it."""

    url: str
    branch: str
    apply: Edit
    message: str
    author_name: str
    author_email: str
    credentials: Credentials | None = None
    push_branch: str = ""
    """Empty: push to `branch`. Else: the operator's own branch, rebuilt on `branch` each time."""


@dataclasses.dataclass(frozen=True)
class Result:
    """What became of one change."""

    commit: str
    """A commit of `ref` on the server in which the change holds: the commit made for its batch,
    or, when nothing in the batch changed anything, the head it was checked against."""
    ref: str
    """The ref that holds it: `refs/heads/<push_branch or branch>` (the base branch when a push
    branch does not exist and nothing needed one)."""
    files: tuple[str, ...]
    """The paths the edit reported that the commit changes, sorted."""
    changed: bool
    """False when the edit found nothing to change (then `files` is empty and, if no other change
    of its batch changed anything, no commit was made)."""
    settled_at: datetime.datetime | None = None
    """When the batch's push landed (or the head was checked): wall-clock, UTC."""


@dataclasses.dataclass(frozen=True)
class GitOperation:
    """One git operation against a server, for metrics: `operation` is "clone" (a fresh clone),
    "fetch" (into a cached clone) or "push"; `attempt` counts the pushes of one batch (so
    retries are `attempt - 1`); `outcome` "rejected" is a push that lost a race."""

    operation: Literal["clone", "fetch", "push"]
    url: str
    branch: str
    seconds: float
    outcome: Literal["ok", "rejected", "failed"]
    attempt: int = 1
    changes: int = 0


MetricsHook = Callable[[GitOperation], None]


# -- pure parts --------------------------------------------------------------------------------

_BAD_BRANCH = re.compile(
    r"^[-/.]|\.\.|//|@\{|[\x00-\x20\x7f~^:?*\[\\]|[/.]$|\.lock$|\.lock/|/\.|^@$"
)
_BAD_IDENTITY = re.compile(r"[<>\x00-\x1f\x7f]")


def check_change(change: Change) -> None:
    """Refuse what git would misread: `ValueError` naming the field. The URL is checked by
    `controller.sources.git.transport` (scheme, no credentials in it)."""
    git_.transport(change.url)
    for field, value in (("branch", change.branch), ("push_branch", change.push_branch)):
        if (field == "branch" or value) and _BAD_BRANCH.search(value or "-"):
            raise ValueError(f"{field} {value!r} is not a valid branch name")
    if change.push_branch == change.branch:
        raise ValueError("push_branch must differ from branch (leave it empty to push to branch)")
    for field, value in (
        ("author_name", change.author_name),
        ("author_email", change.author_email),
    ):
        if not value.strip() or _BAD_IDENTITY.search(value):
            raise ValueError(f"{field} {value!r} must be one line without '<' or '>'")


def batch_message(messages: Sequence[str], *, co_authors: Iterable[tuple[str, str]] = ()) -> str:
    """The commit message of a batch: the one message when there is one (duplicates count once),
    else a summary line, a blank line and each message as a bullet (its body indented); then a
    `Co-authored-by` trailer for each other author."""
    unique: list[str] = []
    for message in messages:
        text = "\n".join(line.rstrip() for line in message.strip().splitlines())
        if text and text not in unique:
            unique.append(text)
    if not unique:
        text = "Update catalog"
    elif len(unique) == 1:
        text = unique[0]
    else:
        items = []
        for message in unique:
            subject, _, body = message.partition("\n")
            body = body.strip("\n")
            item = f"- {subject}"
            if body:
                item += "\n" + "\n".join(f"  {line}" if line else "" for line in body.splitlines())
            items.append(item)
        text = f"Apply {len(unique)} catalog changes\n\n" + "\n".join(items)
    trailers = [f"Co-authored-by: {name} <{email}>" for name, email in dict.fromkeys(co_authors)]
    return text + ("\n\n" + "\n".join(trailers) if trailers else "") + "\n"


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


def _backoff(attempt: int, *, base: float, cap: float) -> float:
    """Exponential from `base`, capped, with "equal jitter" (half fixed, half random)."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay / 2 + secrets.SystemRandom().uniform(0, delay / 2)


def _relative(path: str, worktree: pathlib.Path) -> str | None:
    """A path an edit reported, relative to the work tree in git's form; None if outside."""
    if os.path.isabs(path):
        try:
            path = os.path.relpath(path, worktree)
        except ValueError:
            return None
    normal = posixpath.normpath(path.replace(os.sep, "/"))
    if normal in (".", "..") or normal.startswith("../") or normal.startswith("/"):
        return None
    return normal


def _run_edits(
    edits: Sequence[Edit], worktree: pathlib.Path, failed: dict[int, Exception]
) -> dict[int, set[str]]:
    """Run the edits not in `failed`, in order, in this (worker) thread: the paths each one
    reported. Stops at the first that raises, adding it to `failed`."""
    reported: dict[int, set[str]] = {}
    for index, edit in enumerate(edits):
        if index in failed:
            continue
        try:
            paths = edit(worktree)
        except Exception as error:
            failed[index] = error
            break
        relative = (_relative(str(path), worktree) for path in paths or ())
        reported[index] = {path for path in relative if path is not None}
    return reported


def _parse_push(output: str, ref: str) -> tuple[str, str]:
    """(flag, summary) of `ref` in `git push --porcelain` output; ("", "") if not reported."""
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].endswith(f":{ref}"):
            return parts[0], parts[2]
    return "", ""


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

_META = "ade-catalog-clone.json"
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

    def path(self, *, url: str, branch: str) -> pathlib.Path:
        return self.folder / clone_name(url=url, branch=branch)

    def gc_due(self, path: pathlib.Path) -> bool:
        """Whether the clone at `path` is due for a `git gc` (counted per use)."""
        self._uses[path.name] += 1
        return self.gc_every > 0 and self._uses[path.name] % self.gc_every == 0

    def clones(self) -> list[CachedClone]:
        """The clones known now (after the first `use`), least recently used first."""
        return sorted((self._clones or {}).values(), key=lambda clone: clone.last_used)

    @contextlib.asynccontextmanager
    async def use(self, *, url: str, branch: str) -> AsyncIterator[pathlib.Path]:
        """The clone folder of (url, branch), which may not exist yet (`_Git.sync` makes it).
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
        if size < 0 or not (path / ".git" / _META).exists():
            self._clones.pop(name, None)
            return
        now = time.time()
        with contextlib.suppress(OSError):
            os.utime(path / ".git" / _META, (now, now))  # the LRU survives a restart
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
                meta = child / ".git" / _META
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


def _clear_leftovers(git_dir: pathlib.Path) -> None:
    """What an interrupted git leaves behind (we hold the repository lock: nobody else runs)."""
    for name in ("index.lock", "shallow.lock", "HEAD.lock", "CHERRY_PICK_HEAD", "REBASE_HEAD"):
        with contextlib.suppress(FileNotFoundError):
            (git_dir / name).unlink()
    for name in ("rebase-merge", "rebase-apply"):
        shutil.rmtree(git_dir / name, ignore_errors=True)


# -- git on one clone, for one write ------------------------------------------------------------


class _Git:
    """git on one cached clone with a private scratch folder (HOME, SSH key, message file)."""

    def __init__(
        self,
        *,
        url: str,
        credentials: Credentials,
        clone: pathlib.Path,
        scratch: pathlib.Path,
        env: dict[str, str],
        cache: CloneCache,
        timeout: float,
        metrics: MetricsHook | None,
    ) -> None:
        self.url = url
        self.credentials = credentials
        self.clone = clone
        self.scratch = scratch
        self.env = env
        self.cache = cache
        self.timeout = timeout
        self.metrics = metrics
        self.shown_url = credentials_.scrub(url, credentials)

    # -- plumbing

    async def run(
        self, *args: str, env: dict[str, str] | None = None, in_clone: bool = True
    ) -> git_.Completed:
        where = ["--git-dir", str(self.clone / ".git"), "--work-tree", str(self.clone)]
        try:
            async with asyncio.timeout(self.timeout):
                return await git_.run_git(
                    *(where if in_clone else []),
                    *args,
                    cwd=self.clone if in_clone else self.scratch,
                    env=env or self.env,
                    credentials=self.credentials,
                )
        except TimeoutError:
            raise CatalogUnavailable(
                f"git {args[0]} timed out after {self.timeout:g}s on {self.shown_url}",
                url=self.shown_url,
                branch="",
            ) from None

    async def local(self, *args: str, env: dict[str, str] | None = None) -> str:
        """A command that touches only the clone: any failure means the clone is damaged."""
        done = await self.run(*args, env=env)
        if done.returncode != 0:
            raise _Damaged(git_.error_detail(done.stderr, self.credentials) or args[0])
        return done.stdout

    def failure(self, stderr: str, *, branch: str, pushing: bool = False) -> CatalogError:
        """The typed error for a server's answer."""
        detail = git_.error_detail(stderr, self.credentials)
        kind = _KINDS.get(git_.classify(stderr), CatalogUnavailable)
        url = self.shown_url
        if kind is CatalogAuthFailed:
            if self.credentials.secret:
                hint = f"check the credentials in Secret {self.credentials.secret!r}"
            elif self.credentials == Credentials():
                hint = "the repository needs credentials"
            else:
                hint = "check the credentials"
            if pushing:
                hint += "; they must allow pushing"
            message = f"authentication to {url} failed ({hint})"
        elif kind is CatalogRepositoryNotFound:
            message = f"repository {url} not found, or the credentials cannot read it"
        elif kind is CatalogBranchNotFound:
            message = f"branch {branch!r} not found in {url}"
        else:
            message = f"git {'push to' if pushing else 'fetch from'} {url} ({branch!r}) failed"
        if detail:
            message += f": {detail}"
        return kind(
            credentials_.scrub(message, self.credentials), url=url, branch=branch, detail=detail
        )

    def report(self, operation: GitOperation) -> None:
        metrics_.report_git_operation(
            purpose="catalog",
            operation=operation.operation,
            result=operation.outcome,
            seconds=operation.seconds,
            attempt=operation.attempt,
        )
        if self.metrics is not None:
            try:
                self.metrics(operation)
            except Exception:
                logger.exception("the catalog metrics hook failed")

    # -- the clone

    async def sync(self, branch: str) -> str:
        """Make the clone a clean checkout of the server's `branch` head; that sha. A damaged
        clone is discarded and cloned again once."""
        for second_try in (False, True):
            fresh = not (self.clone / ".git" / _META).exists()
            started = time.monotonic()
            try:
                if fresh:
                    await self.cache.discard(self.clone)  # whatever is there is not a clone
                    await self._init()
                await asyncio.to_thread(_clear_leftovers, self.clone / ".git")
                if not fresh and self.cache.gc_due(self.clone):
                    await self.local("gc", "--quiet", "--prune=now")
                head = await self.fetch(branch, fresh=fresh)
                await self.local("checkout", "--quiet", "--force", "--detach", head)
                await self.local("clean", "-ffdxq")
            except _Damaged as damaged:
                if second_try:
                    raise CatalogUnavailable(
                        f"the clone of {self.shown_url} is unusable even when fresh: "
                        + damaged.detail,
                        url=self.shown_url,
                        branch=branch,
                        detail=damaged.detail,
                    ) from None
                logger.warning(
                    "discarding the damaged clone of %s (%s)", self.shown_url, damaged.detail
                )
                await self.cache.discard(self.clone)
                continue
            except CatalogError:
                if fresh:  # an empty clone of a repository that cannot be read is worth nothing
                    await self.cache.discard(self.clone)
                self.report(
                    GitOperation(
                        "clone" if fresh else "fetch",
                        self.shown_url,
                        branch,
                        time.monotonic() - started,
                        "failed",
                    )
                )
                raise
            self.report(
                GitOperation(
                    "clone" if fresh else "fetch",
                    self.shown_url,
                    branch,
                    time.monotonic() - started,
                    "ok",
                )
            )
            return head
        raise AssertionError("unreachable")

    async def _init(self) -> None:
        await asyncio.to_thread(self.clone.mkdir, parents=True)
        done = await self.run("init", "--quiet", "--", str(self.clone), in_clone=False)
        if done.returncode != 0:
            detail = git_.error_detail(done.stderr, self.credentials)
            raise CatalogUnavailable(
                f"cannot create a clone in {self.clone}: {detail}",
                url=self.shown_url,
                branch="",
                detail=detail,
            )
        for key, value in (("core.logAllRefUpdates", "false"), ("core.autocrlf", "false")):
            await self.local("config", key, value)
        meta = json.dumps({"url": self.shown_url}) + "\n"
        await asyncio.to_thread((self.clone / ".git" / _META).write_text, meta)

    async def fetch(self, branch: str, *, fresh: bool, extra: Sequence[str] = ()) -> str:
        """Fetch `branch` (depth 1 unless `extra` says otherwise) into its tracking ref; its sha.
        A failure that looks local (corruption, or unrecognized on a cached clone) is `_Damaged`.
        """
        tracking = f"refs/remotes/origin/{branch}"
        done = await self.run(
            "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
            *(extra or ["--depth=1"]), "--", self.url, f"+refs/heads/{branch}:{tracking}",
        )  # fmt: skip
        if done.returncode != 0:
            explained = any(p.search(done.stderr) for p, _ in git_.CLASSIFICATION)
            if _CORRUPT.search(done.stderr) or (not fresh and not explained):
                raise _Damaged(git_.error_detail(done.stderr, self.credentials) or "fetch failed")
            raise self.failure(done.stderr, branch=branch)
        return (await self.local("rev-parse", "--verify", f"{tracking}^{{commit}}")).strip()

    # -- the push branch

    async def rebuild(
        self, *, base: str, base_head: str, push_branch: str, env: dict[str, str]
    ) -> tuple[str, str]:
        """Check out `push_branch` rebuilt on `base_head`: its own commits (those not on `base`,
        which the server finds: `fetch --shallow-exclude`) replayed with `rebase --onto`.
        Returns (the sha checked out, the lease: the branch's sha on the server, "" if none).

        When the own commits cannot be replayed (a conflict with the new base, merges in them,
        or a server that cannot exclude), the branch restarts from the base head, with a warning.
        """
        tracking = f"refs/remotes/origin/{push_branch}"
        exclude = [f"--shallow-exclude=refs/heads/{base}"]
        try:
            remote = await self.fetch(push_branch, fresh=False, extra=exclude)
        except CatalogBranchNotFound:
            return base_head, ""
        except _Damaged as damaged:
            # Nothing is left once the base is excluded (the branch is merged: "error processing
            # shallow info"), or the server cannot exclude: fetch the tip alone, for the lease.
            try:
                remote = await self.fetch(push_branch, fresh=False)
            except CatalogBranchNotFound:
                return base_head, ""
            if "shallow info" not in damaged.detail:
                logger.warning(
                    "cannot tell the own commits of %s on %s (%s): it restarts from %s",
                    push_branch, self.shown_url, damaged.detail, base,
                )  # fmt: skip
            return base_head, remote
        listing = await self.local("rev-list", "--parents", tracking)
        commits = [line.split() for line in listing.splitlines()]
        roots = [commit[0] for commit in commits if len(commit) == 1]
        parents = []
        if len(roots) == 1 and all(len(commit) <= 2 for commit in commits):
            raw = await self.local("cat-file", "commit", roots[0])
            header = raw.partition("\n\n")[0].splitlines()
            parents = [line.split()[1] for line in header if line.startswith("parent ")]
        if len(parents) != 1:
            logger.warning(
                "the own commits of %s on %s are not a straight line: it restarts from %s",
                push_branch, self.shown_url, base,
            )  # fmt: skip
            return base_head, remote
        await self.fetch(push_branch, fresh=False, extra=["--deepen=1"])  # their parent
        done = await self.run(
            "rebase", "--quiet", "--no-autosquash", "--onto", base_head, parents[0], remote,
            env=env,
        )  # fmt: skip
        if done.returncode != 0:
            await self.run("rebase", "--abort")
            await self.local("checkout", "--quiet", "--force", "--detach", base_head)
            await self.local("clean", "-ffdxq")
            logger.warning(
                "the own commits of %s on %s conflict with %s at %s: it restarts from there (%s)",
                push_branch, self.shown_url, base, base_head[:12],
                git_.error_detail(done.stderr + done.stdout, self.credentials),
            )  # fmt: skip
            return base_head, remote
        head = (await self.local("rev-parse", "--verify", "HEAD")).strip()
        logger.debug("rebuilt %s of %s on %s: %s", push_branch, self.shown_url, base, head)
        return head, remote

    # -- edits, commit, push

    async def apply(self, edits: Sequence[Edit]) -> list[Outcome]:
        """Run the edits in order on the work tree (one worker thread) and stage the result; for
        each edit, the paths it reported that the staged tree changes, or its exception. An edit
        that raises is dropped and the others run again from a clean tree (it may have written
        half its files); the commit holds exactly what the others changed."""
        failed: dict[int, Exception] = {}
        while True:
            reported = await asyncio.to_thread(_run_edits, edits, self.clone, failed)
            if len(reported) == len(edits) - len(failed):
                break
            await self.local("reset", "--quiet", "--hard")
            await self.local("clean", "-ffdxq")
        await self.local("add", "--all")
        staged = await self.local("diff", "--cached", "--name-only", "--no-renames", "-z", "HEAD")
        changed = set(staged.split("\0")) - {""}
        outcomes: list[Outcome] = []
        for index in range(len(edits)):
            error = failed.get(index)
            outcomes.append(
                error if error is not None else tuple(sorted(changed & reported.pop(index)))
            )
        return outcomes

    async def commit(self, *, message: str, env: dict[str, str]) -> str:
        """Commit the index (which differs from HEAD); its sha."""
        path = self.scratch / "message"
        await asyncio.to_thread(path.write_text, message)
        await self.local(
            "commit", "--quiet", "--no-verify", "--cleanup=whitespace", "--file", str(path), env=env
        )
        return (await self.local("rev-parse", "--verify", "HEAD")).strip()

    async def push(
        self, *, ref: str, lease: str | None, attempt: int, changes: int
    ) -> Literal["ok", "rejected"]:
        """Push HEAD to `ref`: fast-forward only, or with `--force-with-lease=ref:lease`. A lost
        race is "rejected"; a refusal by the server raises `CatalogPushRefused`."""
        branch = ref.removeprefix("refs/heads/")
        force = [] if lease is None else [f"--force-with-lease={ref}:{lease}"]
        started = time.monotonic()
        done = await self.run(
            "push", "--porcelain", "--no-verify", *force, "--", self.url, f"HEAD:{ref}"
        )
        flag, summary = _parse_push(done.stdout, ref)
        outcome: Literal["ok", "rejected", "failed"] = "ok"
        if done.returncode != 0 or flag == "!":
            outcome = "rejected" if _LOST_RACE.search(summary) else "failed"
        self.report(
            GitOperation(
                "push",
                self.shown_url,
                branch,
                time.monotonic() - started,
                outcome,
                attempt,
                changes,
            )
        )
        if outcome == "ok":
            return "ok"
        if outcome == "rejected":
            logger.info("push to %s of %s rejected %s: retrying", branch, self.shown_url, summary)
            return "rejected"
        if "[remote rejected]" in summary:
            reason = credentials_.scrub(summary, self.credentials)
            raise CatalogPushRefused(
                f"{self.shown_url} refused the push to {branch!r}: {reason}",
                url=self.shown_url,
                branch=branch,
                detail=reason,
            )
        raise self.failure(
            done.stderr + ("\n" + summary if summary else ""), branch=branch, pushing=True
        )


@contextlib.asynccontextmanager
async def _open(
    *,
    url: str,
    credentials: Credentials | None,
    clone: pathlib.Path,
    cache: CloneCache,
    timeout: float,
    metrics: MetricsHook | None,
) -> AsyncIterator[_Git]:
    """A `_Git` with its scratch folder, removed afterwards (SSH key included)."""
    usable = (credentials or Credentials()).for_transport(git_.transport(url))
    scratch = pathlib.Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="ade-catalog-"))
    try:
        env = await asyncio.to_thread(git_.environment, scratch, url, git_.transport(url), usable)
        yield _Git(
            url=url,
            credentials=usable,
            clone=clone,
            scratch=scratch,
            env=env,
            cache=cache,
            timeout=timeout,
            metrics=metrics,
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


def _identity(env: dict[str, str], name: str, email: str) -> dict[str, str]:
    return {
        **env,
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


# -- the writer: batches, one lock per repository, retries ----------------------------------------


@dataclasses.dataclass(eq=False)
class _Pending:
    change: Change
    future: asyncio.Future[Result]
    submitted: float


@dataclasses.dataclass(eq=False)
class _Lane:
    """The changes waiting for one (url, branch, push_branch), and the task that writes them."""

    url: str
    branch: str
    push_branch: str
    pending: list[_Pending] = dataclasses.field(default_factory=list)
    worker: asyncio.Task[None] | None = None

    def take(self) -> list[_Pending]:
        taken = [pending for pending in self.pending if not pending.future.done()]
        self.pending.clear()
        return taken


Outcome = tuple[str, ...] | Exception


class CatalogWriter:
    """Writes `Change`s to catalog repositories in batches; one per operator process.

    `window`: how long the first change of a batch waits for others (seconds). `max_attempts`:
    pushes per batch before `CatalogPushRejected`; between them `backoff` doubling up to
    `max_backoff`, jittered. `timeout`: per git command. `metrics`: called for every clone, fetch
    and push (`GitOperation`).
    """

    def __init__(
        self,
        *,
        cache: CloneCache,
        window: float = 0.2,
        max_attempts: int = 15,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
        timeout: float = 120.0,
        metrics: MetricsHook | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.cache = cache
        self.window = window
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.metrics = metrics
        self._lanes: dict[tuple[str, str, str], _Lane] = {}

    async def submit(self, change: Change) -> Result:
        """Write `change` (batched with others for the same repository); its `Result`.

        Raises the exception of its edit, or for the whole batch `CatalogAuthFailed`,
        `CatalogRepositoryNotFound`, `CatalogBranchNotFound`, `CatalogPushRefused`,
        `CatalogPushRejected`, `CatalogUnavailable`, `credentials.CredentialsInvalid`;
        `ValueError` at once for a malformed change. Cancelling the caller withdraws the change
        unless its batch is already being pushed.
        """
        check_change(change)
        loop = asyncio.get_running_loop()
        key = (change.url, change.branch, change.push_branch)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(*key)
        future: asyncio.Future[Result] = loop.create_future()
        lane.pending.append(_Pending(change, future, loop.time()))
        if lane.worker is None:
            lane.worker = asyncio.create_task(
                self._work(lane), name=f"catalog writer {credentials_.scrub(change.url, None)}"
            )
        return await future

    async def aclose(self) -> None:
        """Wait until every submitted change is written (or failed)."""
        while workers := [lane.worker for lane in self._lanes.values() if lane.worker]:
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        try:
            while lane.pending:
                first = min(pending.submitted for pending in lane.pending)
                await asyncio.sleep(max(0.0, first + self.window - loop.time()))
                async with repository_lock(url=lane.url, branch=lane.branch):
                    batch = lane.take()
                    if batch:
                        await self._write(lane, batch)
        finally:
            lane.worker = None
            for pending in lane.take():  # only when cancelled: nobody will write these
                pending.future.cancel()
            if self._lanes.get((lane.url, lane.branch, lane.push_branch)) is lane:
                del self._lanes[(lane.url, lane.branch, lane.push_branch)]

    async def _write(self, lane: _Lane, batch: list[_Pending]) -> None:
        """Write one batch and settle every future in it (it grows while retrying)."""
        try:
            ref, head, outcomes = await self._attempts(lane, batch)
        except CatalogError as error:
            for pending in batch:
                _settle(pending, error.copy())
        except asyncio.CancelledError:
            for pending in batch:
                pending.future.cancel()
            raise
        except Exception as error:
            for pending in batch:
                _settle(pending, error)
        else:
            now = datetime.datetime.now(datetime.UTC)
            for pending in batch:
                outcome = outcomes.get(pending)
                if isinstance(outcome, Exception):
                    _settle(pending, outcome)
                elif outcome is not None:
                    _settle(pending, Result(head, ref, outcome, bool(outcome), now))

    async def _attempts(
        self, lane: _Lane, batch: list[_Pending]
    ) -> tuple[str, str, dict[_Pending, Outcome]]:
        """Apply, commit and push until the push lands: (ref, the sha of ref, outcomes)."""
        url, base, push_branch = lane.url, lane.branch, lane.push_branch
        ref = f"refs/heads/{push_branch or base}"
        credentials = batch[-1].change.credentials
        async with (
            self.cache.use(url=url, branch=base) as clone,
            _open(
                url=url,
                credentials=credentials,
                clone=clone,
                cache=self.cache,
                timeout=self.timeout,
                metrics=self.metrics,
            ) as git,
        ):
            attempt, recloned = 0, False
            while attempt < self.max_attempts:
                attempt += 1
                if attempt > 1:
                    batch.extend(lane.take())  # arrived meanwhile: they ride along
                live = [pending for pending in batch if not pending.future.done()]
                if not live:
                    return ref, "", {}
                try:
                    written = await self._attempt(git, lane, live, attempt)
                except _Damaged as damaged:  # broke under our hands: once more on a fresh clone
                    if recloned:
                        raise CatalogUnavailable(
                            f"the clone of {git.shown_url} keeps breaking: {damaged.detail}",
                            url=git.shown_url,
                            branch=base,
                            detail=damaged.detail,
                        ) from None
                    logger.warning("the clone of %s broke: %s", git.shown_url, damaged.detail)
                    await self.cache.discard(clone)
                    attempt, recloned = attempt - 1, True
                    continue
                if written is not None:
                    return written
                if attempt < self.max_attempts:
                    await asyncio.sleep(_backoff(attempt, base=self.backoff, cap=self.max_backoff))
            raise CatalogPushRejected(
                f"push to {push_branch or base!r} of {git.shown_url} rejected {attempt} times:"
                " the branch moved every time",
                url=git.shown_url,
                branch=push_branch or base,
            )

    async def _attempt(
        self, git: _Git, lane: _Lane, live: list[_Pending], attempt: int
    ) -> tuple[str, str, dict[_Pending, Outcome]] | None:
        """One try: check out the head, apply every edit, commit, push. (ref, sha, outcomes), or
        None when the push lost a race."""
        base, push_branch = lane.branch, lane.push_branch
        first = live[0].change
        head = base_head = await git.sync(base)
        lease: str | None = None
        if push_branch:
            env = _identity(git.env, first.author_name, first.author_email)
            head, lease = await git.rebuild(
                base=base, base_head=base_head, push_branch=push_branch, env=env
            )
        applied = await git.apply([pending.change.apply for pending in live])
        outcomes: dict[_Pending, Outcome] = dict(zip(live, applied, strict=True))
        for pending, outcome in outcomes.items():
            if isinstance(outcome, Exception):
                shown = credentials_.scrub(str(outcome), pending.change.credentials)
                logger.info("an edit of %s failed: %s", git.shown_url, shown)
        changed = [p.change for p in live if not isinstance(outcomes[p], Exception) and outcomes[p]]
        commit = None  # nothing changed (or the edits undid each other): no empty commit
        if changed:
            author = (changed[0].author_name, changed[0].author_email)
            others = [(c.author_name, c.author_email) for c in changed]
            message = batch_message(
                [c.message for c in changed], co_authors=[a for a in others if a != author]
            )
            for pending in live:
                message = credentials_.scrub(message, pending.change.credentials)
            commit = await git.commit(message=message, env=_identity(git.env, *author))
        new_head = commit or head
        if not push_branch:
            if commit is None:
                return f"refs/heads/{base}", base_head, outcomes
            lease = None
        elif lease == "" and commit is None:  # no branch yet, and nothing for one
            return f"refs/heads/{base}", base_head, outcomes
        elif new_head == lease:  # the branch is already what it should be
            return f"refs/heads/{push_branch}", new_head, outcomes
        ref = f"refs/heads/{push_branch or base}"
        verdict = await git.push(ref=ref, lease=lease, attempt=attempt, changes=len(live))
        if verdict != "ok":
            return None
        if commit is not None:
            metrics_.report_catalog_commit()
        return ref, new_head, outcomes


def _settle(pending: _Pending, outcome: Result | Exception) -> None:
    if pending.future.done():
        return
    if isinstance(outcome, Exception):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)
