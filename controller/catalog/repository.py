"""Catalog write-back: changes batched into one commit and one push, pushes retried in-process.

The writer of `controller.catalog`: what to change in a manifest is an edit callback (the pure
YAML engine lives next door); this module batches the changes and retries the pushes. The rest is
in its own modules: the clone cache and the per-repository lock (`clones`), git on one clone
(`gitcli`); the typed errors are `controller.git.failures` with purpose "catalog" (reasons
`Catalog*`). The names callers use are re-exported here (the errors as `Catalog*`).

- `CatalogWriter.submit(change)`: the changes for one (url, branch, push_branch) that arrive
  while a batch collects, or while a write to that repository is in flight, are applied one
  after the other on one work tree and leave in ONE commit and ONE push. A batch on a quiet
  lane collects until `window` seconds pass with no new change (a lone change goes after
  `window`), at most `max_window`; changes that come while a batch of several is written wait
  until `max_window` after it left. So a wave of changes reaching the writer a few at a time
  (rebuilds verified by a handful of reconciles) takes one commit per `max_window`, not one per
  push round trip. With `eager`, the writer is told who is still coming (`expect`: a RunnerImage
  whose build is in flight) and a batch leaves as soon as nobody else is expected on its lane: a
  lone change does not wait out a window, and a wave leaves the moment its last change is in
  (or `max_window` after its first, when some are still coming).
  Each submitter gets its own `Result` or its own exception (an edit that raises fails only
  itself).
- A push rejected because the branch moved is retried in-process as `retrying.RetryPolicy` says
  (the first retry at once, then a short jittered backoff): fetch, reset to the new head, apply
  every edit of the batch again (changes submitted meanwhile join), commit, push. Each round of
  `max_attempts` lost pushes is reported to the submitters (`CatalogPushRejected`, Transient)
  but never drops a change for contention: `enqueue` keeps it queued (its `Ticket` is waited for
  again), and the next round starts within `max_round_backoff`; `submit` withdraws it. When
  the other writers' commits cannot have changed what the edits do (`Change.depends_on`), the
  retry is shorter: the batch's commit replayed on the new head (`replay`), which keeps the
  window between the fetch and the push small enough to land against a writer pushing a few
  times a second (changes submitted meanwhile then wait for the next batch rather than make it
  slow). The base branch is never force-pushed, so a writer that moves it faster than a
  fetch-then-push round trip delays this one until it pauses (as it would any writer that does
  not force).
- With `push_branch` (the operator's own branch, e.g. for pull requests) that branch is rebuilt on
  the base head at every write, its own commits replayed (`rebase --onto`), and pushed with
  `--force-with-lease`: it never falls behind, and the base branch is never touched.
- A head seen moments ago is not fetched again before a push (`freshness`): while a build runs
  (`expect`), the branch is fetched in the background, and the change that follows is committed on
  that head and pushed as a compare-and-swap of it (`--force-with-lease=<branch>:<head>`, a
  fast-forward: never a force). A head that moved meanwhile costs one rejected push, then the
  fetch-and-replay above; after a lost race the writer fetches first again for a while.
- Writes to one repository (URL + branch) are serialized in the process (`repository_lock`).
- A clone that breaks under a write is discarded and the write tried once more on a fresh clone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import pathlib
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from controller import errors, failpoints
from controller.catalog import freshness, retrying
from controller.catalog import replay as replay_
from controller.catalog.clones import CachedClone, CloneCache, clone_name, repository_lock, to_evict
from controller.catalog.gitcli import (
    PURPOSE,
    Damaged,
    Edit,
    Git,
    GitOperation,
    MetricsHook,
    Outcome,
    identity,
    open_git,
)
from controller.git import credentials as credentials_
from controller.git import environment, failures, refs
from controller.git.credentials import Credentials
from controller.git.failures import AuthFailed as CatalogAuthFailed
from controller.git.failures import GitError as CatalogError
from controller.git.failures import PushRefused as CatalogPushRefused
from controller.git.failures import PushRejected as CatalogPushRejected
from controller.git.failures import RefNotFound as CatalogBranchNotFound
from controller.git.failures import RepositoryNotFound as CatalogRepositoryNotFound
from controller.git.failures import Unavailable as CatalogUnavailable
from controller.git.signing import SigningKey
from controller.observe import metrics as metrics_

RetryPolicy = retrying.RetryPolicy

__all__ = [
    "CachedClone",
    "CatalogAuthFailed",
    "CatalogBranchNotFound",
    "CatalogError",
    "CatalogPushRefused",
    "CatalogPushRejected",
    "CatalogRepositoryNotFound",
    "CatalogUnavailable",
    "CatalogWriter",
    "Change",
    "CloneCache",
    "Edit",
    "GitOperation",
    "MetricsHook",
    "Result",
    "RetryPolicy",
    "Ticket",
    "Withdrawn",
    "batch_message",
    "check_change",
    "clone_name",
    "repository_lock",
    "to_evict",
]

logger = logging.getLogger(__name__)


# -- what submitters give and get --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Change:
    """One edit of a catalog repository, as a reconcile step submits it."""

    url: str
    branch: str
    apply: Edit
    message: str | Callable[[tuple[str, ...]], str]
    """The commit message, or a function of the files the edit changed that gives it."""
    author_name: str
    author_email: str
    credentials: Credentials | None = None
    signing: SigningKey | None = None
    """The key that signs the commit (None: unsigned). A batch's commits are signed when any of
    its changes names a key, with the key of the last such change when the batch's writes began
    (changes to one branch share its credentials the same way)."""
    push_branch: str = ""
    """Empty: push to `branch`. Else: the operator's own branch, rebuilt on `branch` each time."""
    submitter: str = ""
    """Who submits it (e.g. `namespace/name`): its submission meets its `CatalogWriter.expect`."""
    depends_on: Callable[[str], bool] | None = None
    """Whether a change at this path (relative, posix) by another writer could change what
    `apply` does, besides the files it changed (e.g. a path its globs match). With it, a push that
    lost a race to changes that touch none of those is retried by replaying the batch's commit on
    the new head (`replay`) instead of running the edits again; None: always run them again."""


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
    settled_at: datetime.datetime | None = dataclasses.field(default=None, compare=False)
    """When the batch's push landed (or the head was checked): wall-clock, UTC."""


# -- pure parts --------------------------------------------------------------------------------

_BAD_IDENTITY = re.compile(r"[<>\x00-\x1f\x7f]")


def check_change(change: Change) -> None:
    """Refuse what git would misread: `ValueError` naming the field. The URL is checked by
    `controller.git.environment.transport` (scheme, no credentials in it), the branches by
    `controller.git.refs.valid_branch`."""
    environment.transport(change.url)
    for field, value in (("branch", change.branch), ("push_branch", change.push_branch)):
        if (field == "branch" or value) and not refs.valid_branch(value):
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


# -- the writer: batches, one lock per repository, retries ----------------------------------------


@dataclasses.dataclass(eq=False)
class _Pending:
    change: Change
    future: asyncio.Future[Result]
    submitted: float
    lost: failures.PushRejected | None = None
    """The last round of pushes its batch lost entirely (the change stays queued)."""
    notice: asyncio.Future[None] | None = None
    """Resolved when a round is lost: wakes `Ticket.wait`."""

    def round_lost(self, error: failures.PushRejected) -> None:
        self.lost = error
        if self.notice is not None and not self.notice.done():
            self.notice.set_result(None)


class Withdrawn(errors.TransientError):
    """`Ticket.wait` on a change that was withdrawn (`Ticket.withdraw`) meanwhile."""


class Ticket:
    """A change queued in the writer (`CatalogWriter.enqueue`): it stays queued, through any
    number of lost races, until it is written, fails for another reason, or is withdrawn."""

    def __init__(self, pending: _Pending) -> None:
        self._pending = pending

    def done(self) -> bool:
        """Whether the change is settled (written, failed or withdrawn)."""
        return self._pending.future.done()

    def withdraw(self) -> None:
        """Take the change back (a batch already being pushed may still carry it)."""
        self._pending.future.cancel()

    @property
    def waited(self) -> bool:
        """Whether a caller is in `wait` now."""
        return self._pending.notice is not None

    def commit(self) -> str:
        """The commit that holds the change once written; "" before, or when it failed."""
        future = self._pending.future
        if not future.done() or future.cancelled() or future.exception() is not None:
            return ""
        return future.result().commit

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the loop) once the change is settled."""
        self._pending.future.add_done_callback(lambda _: callback())

    async def wait(self) -> Result:
        """The change's `Result` once written (or its batch's error); `CatalogPushRejected`
        when, first, a round of its batch's pushes lost every race: then the change is still
        queued and retried (wait again, or withdraw it). Cancelling the caller leaves it queued.
        """
        pending = self._pending
        if not pending.future.done():
            notice = pending.notice = asyncio.get_running_loop().create_future()
            waited: set[asyncio.Future[Any]] = {pending.future, notice}
            try:
                await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            finally:
                pending.notice = None
        if pending.future.cancelled():
            raise Withdrawn("CatalogChangeWithdrawn", "the catalog change was taken back")
        if pending.future.done():
            return pending.future.result()
        assert pending.lost is not None
        raise pending.lost.copy()


@dataclasses.dataclass(eq=False)
class _Lane:
    """The changes waiting for one (url, branch, push_branch), and the task that writes them."""

    url: str
    branch: str
    push_branch: str
    pending: list[_Pending] = dataclasses.field(default_factory=list)
    worker: asyncio.Task[None] | None = None
    left: float | None = None
    """When the last batch, if it held several changes, was taken to be written (loop time)."""
    moved: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set when a change is submitted or an expected one is no longer expected: the batch's
    due time may have moved."""

    def take(self) -> list[_Pending]:
        taken = [pending for pending in self.pending if not pending.future.done()]
        self.pending.clear()
        return taken


class CatalogWriter:
    """Writes `Change`s to catalog repositories in batches; one per operator process.

    `window`: how long a batch waits for one more change (seconds): it is written once `window`
    passes with no new one, or `max_window` after its first change, whichever comes first;
    changes that came while a batch of several was written wait until `max_window` after it
    left (`max_window` shorter than `window` counts as `window`: batches as before, each
    `window` after its first change). Lost races are retried as `retrying.RetryPolicy` says:
    rounds of `max_attempts` pushes, `backoff` doubling up to `max_backoff` (jittered) between
    them, the first retry at once; a round lost entirely is reported to its submitters
    (`CatalogPushRejected`) and the next starts `round_backoff` (doubling to
    `max_round_backoff`) later: contention never drops a queued change. `timeout`: per git
    command. `metrics`: called for every clone, fetch and push (`GitOperation`). `eager`: the
    windows give way to what is known of who is coming (`expect`) on a quiet lane: a batch
    leaves at once when no change expected on its lane is missing from it, else it waits for
    them, at most `max_window` after its first change. In a wave (a batch of several left less
    than `max_window` ago) the windows rule. `trust_seen_head`: how long (seconds) a head the
    clone saw is pushed on without a fetch first (`freshness`; 0: always fetch first).
    """

    def __init__(
        self,
        *,
        cache: CloneCache,
        window: float = 0.2,
        max_window: float = 5.0,
        max_attempts: int = 25,
        backoff: float = 0.02,
        max_backoff: float = 0.1,
        round_backoff: float = 0.25,
        max_round_backoff: float = 1.0,
        timeout: float = 120.0,
        metrics: MetricsHook | None = None,
        eager: bool = False,
        trust_seen_head: float = freshness.SEEN_SECONDS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.cache = cache
        self.window = window
        self.max_window = max(window, max_window)
        self.policy = retrying.RetryPolicy(
            attempts=max_attempts,
            base=backoff,
            cap=max_backoff,
            round_base=round_backoff,
            round_cap=max_round_backoff,
        )
        self.timeout = timeout
        self.metrics = metrics
        self.eager = eager
        self._lanes: dict[tuple[str, str, str], _Lane] = {}
        self._expected: dict[str, tuple[str, str, str]] = {}
        """Submitter -> the lane a change of theirs is coming to (`expect`)."""
        self._heads = freshness.Heads(seen_for=trust_seen_head)
        self._credentials: dict[str, Credentials | None] = {}
        """URL -> the credentials its last change came with (what a prefetch uses)."""
        self._prefetches: dict[freshness.Key, asyncio.Task[None]] = {}

    def expect(self, submitter: str, *, url: str, branch: str, push_branch: str = "") -> None:
        """`submitter` has work in flight that ends in a change to this lane (a build): with
        `eager`, a batch there waits for it, within the windows. Replaces what it expected."""
        lane = (url, branch, push_branch)
        previous = self._expected.get(submitter)
        self._expected[submitter] = lane
        if previous is not None and previous != lane:
            self._moved(previous)
        if previous != lane:
            self._prefetch(url, branch)

    def unexpect(self, submitter: str) -> None:
        """`submitter` is no longer coming (its change is in, its work failed, it is gone)."""
        lane = self._expected.pop(submitter, None)
        if lane is not None:
            self._moved(lane)

    def expected(self, *, url: str, branch: str, push_branch: str = "") -> frozenset[str]:
        """Who is expected on this lane (and has not submitted yet)."""
        lane = (url, branch, push_branch)
        return frozenset(who for who, where in self._expected.items() if where == lane)

    def _moved(self, key: tuple[str, str, str]) -> None:
        lane = self._lanes.get(key)
        if lane is not None:
            lane.moved.set()

    async def submit(self, change: Change) -> Result:
        """Write `change` (batched with others for the same repository); its `Result`.

        Raises the exception of its edit, or for the whole batch `CatalogAuthFailed`,
        `CatalogRepositoryNotFound`, `CatalogBranchNotFound`, `CatalogPushRefused`,
        `CatalogUnavailable`, `credentials.CredentialsInvalid`; `CatalogPushRejected` when a
        round of pushes lost every race (then the change is withdrawn: `enqueue` keeps it);
        `ValueError` at once for a malformed change. Cancelling the caller withdraws the change
        unless its batch is already being pushed.
        """
        ticket = self.enqueue(change)
        try:
            return await ticket.wait()
        except (failures.PushRejected, asyncio.CancelledError):
            ticket.withdraw()
            raise

    def enqueue(self, change: Change) -> Ticket:
        """Queue `change` (batched with others for the same repository) and return at once;
        the `Ticket` tells what became of it. Lost races never drop it (see `Ticket.wait`).
        `ValueError` at once for a malformed change."""
        check_change(change)
        loop = asyncio.get_running_loop()
        self._credentials[change.url] = change.credentials
        key = (change.url, change.branch, change.push_branch)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(*key)
        future: asyncio.Future[Result] = loop.create_future()
        pending = _Pending(change, future, loop.time())
        lane.pending.append(pending)
        if change.submitter:
            self._expected.pop(change.submitter, None)
        lane.moved.set()
        if lane.worker is None:
            lane.worker = asyncio.create_task(
                self._work(lane), name=f"catalog writer {credentials_.scrub(change.url, None)}"
            )
        return Ticket(pending)

    async def aclose(self) -> None:
        """Wait until every submitted change is written (or failed)."""
        while workers := [lane.worker for lane in self._lanes.values() if lane.worker]:
            await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.gather(*self._prefetches.values(), return_exceptions=True)

    # -- prefetch: the head fetched while a build runs, so the write can push at once --------

    def _prefetch(self, url: str, branch: str) -> None:
        """Fetch `branch` in the background (someone started work that ends in a change to it):
        when the change comes, its commit is made on a head seen moments ago and pushed without
        a fetch first (`freshness`). Only with credentials a change to `url` came with, when no
        write or prefetch of the branch is under way and its head was not just seen."""
        key = (url, branch)
        if key in self._prefetches or url not in self._credentials:
            return
        loop = asyncio.get_running_loop()
        if not self._heads.prefetch_due(key, loop.time()):
            return
        if any(lane.worker for (u, b, _), lane in self._lanes.items() if (u, b) == key):
            return  # a write is under way: it fetches
        task = loop.create_task(
            self._prefetch_now(url, branch, self._credentials[url]),
            name=f"catalog prefetch {credentials_.scrub(url, None)}",
        )
        self._prefetches[key] = task
        task.add_done_callback(lambda _: self._prefetches.pop(key, None))

    @contextlib.asynccontextmanager
    async def _git(
        self, url: str, branch: str, credentials: Credentials | None
    ) -> AsyncIterator[tuple[pathlib.Path, Git]]:
        """The cached clone of (url, branch) and git on it (hold `repository_lock` first)."""
        async with (
            self.cache.use(url=url, branch=branch) as clone,
            open_git(
                url=url,
                credentials=credentials,
                clone=clone,
                cache=self.cache,
                timeout=self.timeout,
                metrics=self.metrics,
            ) as git,
        ):
            yield clone, git

    async def _prefetch_now(self, url: str, branch: str, credentials: Credentials | None) -> None:
        key = (url, branch)
        loop = asyncio.get_running_loop()
        try:
            async with repository_lock(url=url, branch=branch):
                if not self._heads.prefetch_due(key, loop.time()):
                    return
                async with self._git(url, branch, credentials) as (_, git):
                    await git.sync(branch)
                    self._heads.saw(key, loop.time())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # only a head start: the write itself reports failures
            shown = credentials_.scrub(str(error), credentials)
            logger.debug("prefetching %s failed: %s", credentials_.scrub(url, None), shown)

    async def _work(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        try:
            while lane.pending:
                # each wait ends at the batch's due time, or when a change (or an expected one
                # no longer coming) may have moved it
                while (wait := self._due(lane) - loop.time()) > 0:
                    lane.moved.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.moved.wait(), timeout=wait)
                async with repository_lock(url=lane.url, branch=lane.branch):
                    batch = lane.take()
                    if batch:
                        lane.left = loop.time() if len(batch) > 1 else None
                        await self._write(lane, batch)
        finally:
            lane.worker = None
            for pending in lane.take():  # only when cancelled: nobody will write these
                pending.future.cancel()
            if self._lanes.get((lane.url, lane.branch, lane.push_branch)) is lane:
                del self._lanes[(lane.url, lane.branch, lane.push_branch)]

    def _due(self, lane: _Lane) -> float:
        """When the batch collecting in `lane` is to be written (loop time). On a lane that was
        quiet: once `window` passes without a new change (a lone change: `window` after it),
        at most `max_window` after its first. When its first change came while a batch of
        several changes was being written (changes keep coming), less than `max_window` after
        that one left: `max_window` after it left. `eager`, on a quiet lane: at once when no
        expected change is missing, else `max_window` after its first."""
        live = [p for p in lane.pending if not p.future.done()]
        submitted = [p.submitted for p in live] or [0.0]
        first, last = min(submitted), max(submitted)
        if lane.left is not None and first < lane.left + self.max_window:
            # a wave (changes keep coming, some from objects not reconciled yet, so not
            # expected either): one commit per max_window
            return max(first + self.window, lane.left + self.max_window)
        if self.eager and live:
            # known: nobody else is coming (go now), or someone is (collect, up to max_window)
            return first + self.max_window if self._awaited(lane, live) else 0.0
        return max(first + self.window, min(last + self.window, first + self.max_window))

    def _awaited(self, lane: _Lane, live: list[_Pending]) -> bool:
        """Whether a change expected on `lane` is not among `live` yet."""
        key = (lane.url, lane.branch, lane.push_branch)
        here = {pending.change.submitter for pending in live}
        return any(where == key and who not in here for who, where in self._expected.items())

    async def _write(self, lane: _Lane, batch: list[_Pending]) -> None:
        """Write one batch and settle every future in it (it grows while retrying)."""
        try:
            ref, head, outcomes = await self._attempts(lane, batch)
        except failures.GitError as error:
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

    async def _attempts(self, lane: _Lane, batch: list[_Pending]) -> _Written:
        """Apply, commit and push until the push lands: (ref, the sha of ref, outcomes)."""
        url, base, push_branch = lane.url, lane.branch, lane.push_branch
        ref = f"refs/heads/{push_branch or base}"
        credentials = batch[-1].change.credentials
        async with self._git(url, base, credentials) as (clone, git):
            attempt, recloned, rounds = 0, False, 0
            lost: _Lost | None = None
            while True:
                attempt += 1
                if attempt > 1 and (lost is None or lost.replayable is None or rounds):
                    batch.extend(lane.take())  # arrived meanwhile: they ride along
                    rounds = 0
                live = [pending for pending in batch if not pending.future.done()]
                if not live:
                    return ref, "", {}
                keys = [p.change.signing for p in live if p.change.signing is not None]
                await git.sign_with(keys[-1] if keys else None)
                try:
                    written: _Written | _Lost | None = None
                    if (
                        lost is not None
                        and lost.replayable is not None
                        and lost.live == tuple(live)
                    ):
                        written = await self._replay(git, lane, lost, lost.replayable, attempt)
                    if written is None:
                        speculate = lost is None and not push_branch and _replayable(live)
                        written = await self._attempt(git, lane, live, attempt, speculate)
                except Damaged as damaged:  # broke under our hands: once more on a fresh clone
                    if recloned:
                        raise failures.Unavailable(
                            f"the clone of {git.shown_url} keeps breaking: {damaged.detail}",
                            purpose=PURPOSE,
                            url=git.shown_url,
                            ref=base,
                            detail=damaged.detail,
                        ) from None
                    logger.warning("the clone of %s broke: %s", git.shown_url, damaged.detail)
                    self._heads.forget((url, base))
                    await self.cache.discard(clone)
                    attempt, recloned, lost = attempt - 1, True, None
                    continue
                if isinstance(written, tuple):
                    return written
                lost = written
                if lost is not None and lost.replayable is None and _replayable(lost.live):
                    what = await replay_.replayable(git, lost.commit, lost.parent)
                    lost = dataclasses.replace(lost, replayable=what)
                after = self.policy.after_lost(attempt)
                if after.round_lost is not None:
                    rejected = failures.PushRejected(
                        f"push to {push_branch or base!r} of {git.shown_url} rejected"
                        f" {self.policy.attempts} times in a row: the branch moved every time"
                        " (the change stays queued and is pushed again)",
                        purpose=PURPOSE,
                        url=git.shown_url,
                        ref=push_branch or base,
                    )
                    logger.warning("%s; round %d", rejected.message, after.round_lost)
                    for pending in live:
                        pending.round_lost(rejected)
                    rounds = after.round_lost  # changes that came meanwhile join the next round
                await asyncio.sleep(after.delay)

    async def _attempt(
        self, git: Git, lane: _Lane, live: list[_Pending], attempt: int, speculate: bool = False
    ) -> _Written | _Lost | None:
        """One try: check out the head, apply every edit, commit, push. (ref, sha, outcomes); or
        when the push lost a race, what replaying its commit needs (None with a push branch).

        With `speculate` (a first try on the base branch, every change saying what it depends
        on), the edits run on the head the clone last fetched, and only then is the server asked
        for its head: when it moved, the commit is replayed on it (`replay`), or the edits run
        again there when the new commits touch what they depend on. So the window between
        reading the branch and pushing holds a fetch, a replay and the push, not the edits.
        When that head was seen moments ago and nobody else pushed lately (`freshness`), the
        server is not asked first: the push is a compare-and-swap of the head, and a lost one
        comes back as `_Lost` for the replay."""
        base, push_branch = lane.branch, lane.push_branch
        first = live[0].change
        key = (lane.url, base)
        known = await git.checkout_known(base) if speculate else None
        if known is None:
            head = base_head = await git.sync(base)
            self._saw(key)
        else:
            head = base_head = known
        lease: str | None = None
        if push_branch:
            env = identity(git.env, first.author_name, first.author_email)
            head, lease = await git.rebuild(
                base=base, base_head=base_head, push_branch=push_branch, env=env
            )
        outcomes, commit, author_env = await _apply_and_commit(git, live)
        swap: str | None = None  # push as a compare-and-swap of the known head, unfetched
        if known is not None and commit is not None and self._optimistic(key):
            swap = known
        elif known is not None:
            # read what a replay needs before asking the server: outside the window
            what = None if commit is None else await replay_.replayable(git, commit, known)
            fresh = await git.refresh(base)
            self._saw(key)
            if fresh != known:
                moved = await _onto(git, live, what, parent=known, fresh=fresh, env=author_env)
                if moved is None:  # the new commits touch what the edits read: run them there
                    return await self._attempt(git, lane, live, attempt)
                commit = moved or None
                head = base_head = fresh
        new_head = commit or head
        if not push_branch:
            if commit is None:
                return f"refs/heads/{base}", base_head, outcomes
            lease = swap
        elif lease == "" and commit is None:  # no branch yet, and nothing for one
            return f"refs/heads/{base}", base_head, outcomes
        elif new_head == lease:  # the branch is already what it should be
            return f"refs/heads/{push_branch}", new_head, outcomes
        ref = f"refs/heads/{push_branch or base}"
        verdict = await git.push(
            ref=ref, lease=lease, attempt=attempt, changes=len(live), commit=new_head
        )
        if not push_branch:
            self._pushed(key, verdict)
        if verdict != "ok":
            if push_branch or commit is None:
                return None
            return _Lost(tuple(live), outcomes, parent=head, commit=commit, env=author_env)
        if commit is not None:
            if not push_branch:  # the tree holds exactly the commit now on the branch
                git.left_clean(commit)
            failpoints.hit(failpoints.Point.CATALOG_PUSHED)
            metrics_.report_catalog_commit()
        return ref, new_head, outcomes

    def _saw(self, key: freshness.Key) -> None:
        self._heads.saw(key, asyncio.get_running_loop().time())

    def _pushed(self, key: freshness.Key, verdict: str) -> None:
        now = asyncio.get_running_loop().time()
        if verdict == "ok":
            self._heads.saw(key, now)
        else:
            self._heads.lost_race(key, now)

    def _optimistic(self, key: freshness.Key) -> bool:
        return self._heads.optimistic(key, asyncio.get_running_loop().time())

    async def _replay(
        self, git: Git, lane: _Lane, lost: _Lost, what: replay_.Replayable, attempt: int
    ) -> _Written | _Lost | None:
        """The short retry: the lost commit replayed on the new head and pushed. None when the
        edits must run again (see `replay`)."""
        key = (lane.url, lane.branch)
        head = await git.refresh(lane.branch)
        self._saw(key)
        live = lost.live
        made = await replay_.replay(
            git, what, onto=head, depends_on=_depends_on(live), env=lost.env
        )
        if made is None:
            logger.debug("the edits of %s run again on %s", git.shown_url, head[:12])
            return None
        ref = f"refs/heads/{lane.branch}"
        verdict = await git.push(
            ref=ref, lease=None, attempt=attempt, changes=len(live), commit=made
        )
        self._pushed(key, verdict)
        if verdict != "ok":
            moved = dataclasses.replace(what, commit=made, parent=head)
            return dataclasses.replace(lost, parent=head, commit=made, replayable=moved)
        failpoints.hit(failpoints.Point.CATALOG_PUSHED)
        metrics_.report_catalog_commit()
        return ref, made, lost.outcomes


_Written = tuple[str, str, dict["_Pending", Outcome]]
"""A batch written: (the ref, its sha on the server, each change's outcome)."""


@dataclasses.dataclass(frozen=True, eq=False)
class _Lost:
    """A commit of a batch (on base branch `parent`) whose push lost a race."""

    live: tuple[_Pending, ...]
    outcomes: dict[_Pending, Outcome]
    parent: str
    commit: str
    env: dict[str, str]
    """git's environment with the commit's author and committer."""
    replayable: replay_.Replayable | None = None


async def _apply_and_commit(
    git: Git, live: list[_Pending]
) -> tuple[dict[_Pending, Outcome], str | None, dict[str, str]]:
    """Every edit applied on the checked-out head, and one commit of what changed: (each
    change's outcome, the commit or None when nothing changed, git's environment with the
    commit's author)."""
    applied = await git.apply([pending.change.apply for pending in live])
    outcomes: dict[_Pending, Outcome] = dict(zip(live, applied, strict=True))
    for pending, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            shown = credentials_.scrub(str(outcome), pending.change.credentials)
            logger.info("an edit of %s failed: %s", git.shown_url, shown)
    changed = [p for p in live if not isinstance(outcomes[p], Exception) and outcomes[p]]
    if not changed:  # nothing changed (or the edits undid each other): no empty commit
        return outcomes, None, git.env
    author = (changed[0].change.author_name, changed[0].change.author_email)
    others = [(p.change.author_name, p.change.author_email) for p in changed]
    message = batch_message(
        [_message(p.change, outcomes[p]) for p in changed],
        co_authors=[a for a in others if a != author],
    )
    for pending in live:
        message = credentials_.scrub(message, pending.change.credentials)
    author_env = identity(git.env, *author)
    return outcomes, await git.commit(message=message, env=author_env), author_env


def _message(change: Change, outcome: Outcome) -> str:
    if isinstance(change.message, str):
        return change.message
    return change.message(outcome if isinstance(outcome, tuple) else ())


def _depends_on(live: Sequence[_Pending]) -> Callable[[str], bool]:
    """Whether some change of a batch depends on a path (any path, for one that does not say)."""

    def depends_on(path: str) -> bool:
        return any(p.change.depends_on is None or p.change.depends_on(path) for p in live)

    return depends_on


async def _onto(
    git: Git,
    live: Sequence[_Pending],
    what: replay_.Replayable | None,
    *,
    parent: str,
    fresh: str,
    env: dict[str, str],
) -> str | None:
    """A speculative try's result moved onto the server's head `fresh`: its commit (`what`)
    replayed there, "" when there was no commit and the new commits cannot change that, None
    when the edits must run again on `fresh`."""
    if what is None:
        theirs = await replay_.diff(git, parent, fresh)
        return "" if replay_.replays_safely(theirs, {}, _depends_on(live)) else None
    return await replay_.replay(git, what, onto=fresh, depends_on=_depends_on(live), env=env)


def _replayable(live: Iterable[_Pending]) -> bool:
    """Whether every change of a batch says what it depends on (so its commit may be replayed)."""
    return all(pending.change.depends_on is not None for pending in live)


def _settle(pending: _Pending, outcome: Result | Exception) -> None:
    if pending.future.done():
        return
    if isinstance(outcome, Exception):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)
