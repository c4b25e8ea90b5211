"""git on one cached clone, for one write of the catalog writer: sync, edit, commit, push.

The git CLI driver of `controller.catalog.repository`: `open_git` gives a `Git` on one clone of
the `clones` cache, with a private scratch folder, for one write. `Git.sync` makes the clone a
clean checkout of the server's head (a damaged clone is discarded and cloned again once);
`Git.rebuild` rebuilds the operator's push branch on the base head (its own commits replayed with
`rebase --onto`); `Git.apply` runs the edits (`Edit`) in a worker thread and stages what they
changed; `Git.commit`; `Git.push`, fast-forward only or with `--force-with-lease`, tells a lost
race ("rejected", which the writer retries) from a refusal. Every clone, fetch and push is
reported as a `GitOperation` (metrics: `report_git_operation`, purpose "catalog").

git runs through `controller.git`, as for build sources: `process.run_git`, an environment built
from nothing (`environment`), credentials in `http.<origin>.extraHeader` or an SSH key file in a
per-write scratch folder, never in argv, in the URL, in the clone's config, in commit messages,
logs or errors (`credentials.scrub`). Errors are `controller.git.failures` with purpose "catalog"
(reasons `Catalog*`); `Damaged`, a clone that git says is broken, never leaves the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import posixpath
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final, Literal

from controller.catalog.clones import META, CloneCache, clear_leftovers
from controller.git import credentials as credentials_
from controller.git import environment, failures, process, signing
from controller.git.credentials import Credentials
from controller.observe import activity
from controller.observe import metrics as metrics_

logger = logging.getLogger(__name__)

Edit = Callable[[pathlib.Path], list[str]]
"""Edits files under the work tree it is given; returns the paths it changed (relative, or
absolute inside the tree). The edits of a batch run in order in one worker thread, and again
after a lost push race (each time on a fresh checkout of the new head) unless the batch's commit
can be replayed (`replay`), so an edit must be a function of the files it reads. It may raise
(a `errors.StalledError` for a bad file): that fails only its own change. Everything the edits
change is committed; each change is credited with the paths it reported."""


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SIGNING_FAILED = re.compile(r"failed to sign|ssh-keygen|gpg|signing", re.IGNORECASE)

Outcome = tuple[str, ...] | Exception
"""What became of one edit: the paths it changed (staged), or its exception."""


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

PURPOSE: Final = "catalog"


class Damaged(Exception):
    """The clone is damaged; raised inside `Git` only, and answered by recloning once."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# -- pure parts --------------------------------------------------------------------------------


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


def _loose_ref(git_dir: pathlib.Path, ref: str) -> str | None:
    """The sha a loose ref file holds (a fetch writes one), or None (absent, packed, symbolic)."""
    try:
        text = (git_dir / ref).read_text().strip()
    except OSError:
        return None
    return text if _SHA.fullmatch(text) else None


_TREE_KEPT: Final = frozenset({"rev-parse", "diff", "diff-tree", "cat-file", "fetch", "push"})
"""git commands that leave the work tree, the index and HEAD as they are (any other forgets
that the tree was left clean: `CloneCache.left_clean`)."""


def _parse_push(output: str, ref: str) -> tuple[str, str]:
    """(flag, summary) of `ref` in `git push --porcelain` output; ("", "") if not reported."""
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].endswith(f":{ref}"):
            return parts[0], parts[2]
    return "", ""


def _remote_lines(stderr: str, limit: int = 600) -> str:
    """What the server said on a refused push (git's `remote:` lines), joined, at most `limit`
    characters; "" if nothing."""
    said = [
        line.removeprefix("remote:").strip()
        for line in stderr.splitlines()
        if line.startswith("remote:") and line.removeprefix("remote:").strip()
    ]
    text = " / ".join(said)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- git on one clone, for one write ------------------------------------------------------------


class Git:
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
        self.signer: signing.Signer | None = None

    async def sign_with(self, key: signing.SigningKey | None) -> None:
        """Sign every commit made from now on with `key` (placed in the scratch folder, gone
        with it). A `Git` signs with one key: the first it is given; None changes nothing."""
        if key is None or self.signer is not None:
            return
        self.signer = await signing.prepare(self.scratch, key, self.env)
        self.env = environment.with_config({**self.env, **self.signer.env}, self.signer.config)
        logger.debug("commits to %s are signed by %s", self.shown_url, self.signer.fingerprint)

    @property
    def sign_flags(self) -> tuple[str, ...]:
        """For commands that make commits: sign, or do not (whatever a config says)."""
        return ("--gpg-sign",) if self.signer is not None else ("--no-gpg-sign",)

    # -- plumbing

    async def run(
        self, *args: str, env: dict[str, str] | None = None, in_clone: bool = True
    ) -> process.Completed:
        where = ["--git-dir", str(self.clone / ".git"), "--work-tree", str(self.clone)]
        if in_clone and args[0] not in _TREE_KEPT:
            self._touched()
        try:
            waited = f"the git server {self.shown_url} (git {args[0]})"
            async with asyncio.timeout(self.timeout):
                with activity.waiting_on(waited):
                    return await process.run_git(
                        *(where if in_clone else []),
                        *args,
                        cwd=self.clone if in_clone else self.scratch,
                        env=env or self.env,
                        credentials=self.credentials,
                    )
        except TimeoutError:
            raise failures.Unavailable(
                f"git {args[0]} timed out after {self.timeout:g}s on {self.shown_url}",
                purpose=PURPOSE,
                url=self.shown_url,
                ref="",
            ) from None

    async def local(self, *args: str, env: dict[str, str] | None = None) -> str:
        """A command that touches only the clone: any failure means the clone is damaged."""
        done = await self.run(*args, env=env)
        if done.returncode != 0:
            raise Damaged(failures.error_detail(done.stderr, self.credentials) or args[0])
        return done.stdout

    def failure(self, stderr: str, *, branch: str, pushing: bool = False) -> failures.GitError:
        """The typed error for a server's answer."""
        return failures.from_output(
            stderr,
            purpose=PURPOSE,
            url=self.url,
            ref=branch,
            credentials=self.credentials,
            pushing=pushing,
        )

    def report(self, operation: GitOperation) -> None:
        metrics_.report_git_operation(
            purpose=PURPOSE,
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
            fresh = not (self.clone / ".git" / META).exists()
            started = time.monotonic()
            try:
                if fresh:
                    await self.cache.discard(self.clone)  # whatever is there is not a clone
                    await self._init()
                await self._tidy(gc=not fresh)
                head = await self.fetch(branch, fresh=fresh)
                await self.checkout(head)
            except Damaged as damaged:
                if second_try:
                    raise failures.Unavailable(
                        f"the clone of {self.shown_url} is unusable even when fresh: "
                        + damaged.detail,
                        purpose=PURPOSE,
                        url=self.shown_url,
                        ref=branch,
                        detail=damaged.detail,
                    ) from None
                logger.warning(
                    "discarding the damaged clone of %s (%s)", self.shown_url, damaged.detail
                )
                await self.cache.discard(self.clone)
                continue
            except failures.GitError:
                if fresh:  # an empty clone of a repository that cannot be read is worth nothing
                    await self.cache.discard(self.clone)
                self._report_sync(branch, fresh=fresh, started=started, outcome="failed")
                raise
            self._report_sync(branch, fresh=fresh, started=started, outcome="ok")
            return head
        raise AssertionError("unreachable")

    async def checkout_known(self, branch: str) -> str | None:
        """Make the clone a clean checkout of the `branch` head it last fetched, without asking
        the server; that sha, or None when the clone has none (a fresh or foreign folder)."""
        if not (self.clone / ".git" / META).exists():
            return None
        git_dir = self.clone / ".git"
        head = _loose_ref(git_dir, f"refs/remotes/origin/{branch}")  # what fetch and push write
        if head is None:  # packed (by gc), or none
            tracking = f"refs/remotes/origin/{branch}^{{commit}}"
            done = await self.run("rev-parse", "--verify", "--quiet", tracking)
            if done.returncode != 0:
                return None
            head = done.stdout.strip()
        await self._tidy(gc=True)
        left = self.cache.touched(self.clone)
        if left == head and _loose_ref(git_dir, "HEAD") == head:  # HEAD is detached
            return head  # our last write left the tree a clean checkout of this head
        await self.checkout(head)
        return head

    def left_clean(self, head: str) -> None:
        """The work tree is a clean checkout of `head` now (a commit of every edit, pushed):
        the next `checkout_known` of `head` need not check it out again."""
        self.cache.left_clean(self.clone, head)

    def _touched(self) -> None:
        """The work tree is about to change: nothing is known of it until the next checkout."""
        self.cache.touched(self.clone)

    async def _tidy(self, *, gc: bool) -> None:
        """Clear what an interrupted git left behind; `git gc` when this use is due for one."""
        await asyncio.to_thread(clear_leftovers, self.clone / ".git")
        if gc and self.cache.gc_due(self.clone):
            await self.local("gc", "--quiet", "--prune=now")

    async def checkout(self, head: str) -> None:
        """Make the work tree a clean checkout of `head` (detached)."""
        await self.local("checkout", "--quiet", "--force", "--detach", head)
        await self.local("clean", "-ffdxq")
        self.left_clean(head)

    async def refresh(self, branch: str) -> str:
        """Fetch the server's `branch` head into the clone, leaving the work tree; that sha."""
        started = time.monotonic()
        try:
            head = await self.fetch(branch, fresh=False)
        except failures.GitError:
            self._report_sync(branch, fresh=False, started=started, outcome="failed")
            raise
        self._report_sync(branch, fresh=False, started=started, outcome="ok")
        return head

    def _report_sync(
        self, branch: str, *, fresh: bool, started: float, outcome: Literal["ok", "failed"]
    ) -> None:
        operation: Literal["clone", "fetch"] = "clone" if fresh else "fetch"
        seconds = time.monotonic() - started
        self.report(GitOperation(operation, self.shown_url, branch, seconds, outcome))

    async def _init(self) -> None:
        await asyncio.to_thread(self.clone.mkdir, parents=True)
        done = await self.run("init", "--quiet", "--", str(self.clone), in_clone=False)
        if done.returncode != 0:
            detail = failures.error_detail(done.stderr, self.credentials)
            raise failures.Unavailable(
                f"cannot create a clone in {self.clone}: {detail}",
                purpose=PURPOSE,
                url=self.shown_url,
                ref="",
                detail=detail,
            )
        for key, value in (("core.logAllRefUpdates", "false"), ("core.autocrlf", "false")):
            await self.local("config", key, value)
        meta = json.dumps({"url": self.shown_url}) + "\n"
        await asyncio.to_thread((self.clone / ".git" / META).write_text, meta)

    async def fetch(self, branch: str, *, fresh: bool, extra: Sequence[str] = ()) -> str:
        """Fetch `branch` (depth 1 unless `extra` says otherwise) into its tracking ref; its sha.
        A failure that looks local (corruption, or unrecognized on a cached clone) is `Damaged`.
        """
        tracking = f"refs/remotes/origin/{branch}"
        done = await self.run(
            "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
            *(extra or ["--depth=1"]), "--", self.url, f"+refs/heads/{branch}:{tracking}",
        )  # fmt: skip
        if done.returncode != 0:
            explained = failures.classify(done.stderr) is not None
            if failures.CORRUPT.search(done.stderr) or (not fresh and not explained):
                raise Damaged(
                    failures.error_detail(done.stderr, self.credentials) or "fetch failed"
                )
            raise self.failure(done.stderr, branch=branch)
        loose = await asyncio.to_thread(_loose_ref, self.clone / ".git", tracking)
        if loose is not None:  # as git reads it (a loose ref wins over packed-refs), no process
            return loose
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
        except failures.RefNotFound:
            return base_head, ""
        except Damaged as damaged:
            # Nothing is left once the base is excluded (the branch is merged: "error processing
            # shallow info"), or the server cannot exclude: fetch the tip alone, for the lease.
            try:
                remote = await self.fetch(push_branch, fresh=False)
            except failures.RefNotFound:
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
            "rebase", "--quiet", "--no-autosquash", *self.sign_flags,
            "--onto", base_head, parents[0], remote, env=env,
        )  # fmt: skip
        if done.returncode != 0:
            await self.run("rebase", "--abort")
            await self.checkout(base_head)
            logger.warning(
                "the own commits of %s on %s conflict with %s at %s: it restarts from there (%s)",
                push_branch, self.shown_url, base, base_head[:12],
                failures.error_detail(done.stderr + done.stdout, self.credentials),
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
        self._touched()
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
        done = await self.run(
            "commit", "--quiet", "--no-verify", "--cleanup=whitespace", *self.sign_flags,
            "--file", str(path), env=env,
        )  # fmt: skip
        if done.returncode != 0:
            detail = failures.error_detail(done.stderr, self.credentials) or "commit"
            if self.signer is not None and _SIGNING_FAILED.search(done.stderr):
                raise signing.SigningFailed(
                    f"signing the commit for {self.shown_url} failed: {detail}"
                )
            raise Damaged(detail)
        made = _loose_ref(self.clone / ".git", "HEAD")  # detached: the commit's sha
        return made or (await self.local("rev-parse", "--verify", "HEAD")).strip()

    async def push(
        self, *, ref: str, lease: str | None, attempt: int, changes: int, commit: str = "HEAD"
    ) -> Literal["ok", "rejected"]:
        """Push `commit` to `ref`: fast-forward only, or with `--force-with-lease=ref:lease`. A
        lost race is "rejected"; a refusal by the server raises `failures.PushRefused`. A landed
        push moves the clone's tracking ref of the branch too (the next write starts there)."""
        branch = ref.removeprefix("refs/heads/")
        force = [] if lease is None else [f"--force-with-lease={ref}:{lease}"]
        started = time.monotonic()
        done = await self.run(
            "push", "--porcelain", "--no-verify", *force, "--", self.url, f"{commit}:{ref}"
        )
        flag, summary = _parse_push(done.stdout, ref)
        outcome: Literal["ok", "rejected", "failed"] = "ok"
        if done.returncode != 0 or flag == "!":
            outcome = "rejected" if failures.LOST_RACE.search(summary) else "failed"
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
        if outcome == "ok":  # the server's branch is now `commit`: so is the clone's idea of it
            await self.local("update-ref", f"refs/remotes/origin/{branch}", commit)
            return "ok"
        if outcome == "rejected":
            logger.info("push to %s of %s rejected %s: retrying", branch, self.shown_url, summary)
            return "rejected"
        if "[remote rejected]" in summary:
            said = _remote_lines(done.stderr)  # why: a protected branch's rule, a hook's message
            reason = credentials_.scrub(
                summary + (f"; the server says: {said}" if said else ""), self.credentials
            )
            raise failures.PushRefused(
                f"{self.shown_url} refused the push to {branch!r}: {reason}",
                purpose=PURPOSE,
                url=self.shown_url,
                ref=branch,
                detail=reason,
            )
        raise self.failure(
            done.stderr + ("\n" + summary if summary else ""), branch=branch, pushing=True
        )


@contextlib.asynccontextmanager
async def open_git(
    *,
    url: str,
    credentials: Credentials | None,
    clone: pathlib.Path,
    cache: CloneCache,
    timeout: float,
    metrics: MetricsHook | None,
) -> AsyncIterator[Git]:
    """A `Git` with its scratch folder, removed afterwards (SSH and signing keys included)."""
    usable = environment.usable(url, credentials)
    scratch = pathlib.Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="ade-catalog-"))
    git: Git | None = None
    try:
        env = await asyncio.to_thread(environment.environment, scratch, url, usable)
        git = Git(
            url=url,
            credentials=usable,
            clone=clone,
            scratch=scratch,
            env=env,
            cache=cache,
            timeout=timeout,
            metrics=metrics,
        )
        yield git
    finally:
        if git is not None and git.signer is not None:
            await git.signer.close()
        await asyncio.to_thread(shutil.rmtree, scratch, True)


def identity(env: dict[str, str], name: str, email: str) -> dict[str, str]:
    """`env` with `name <email>` as the author and the committer of the commits git makes."""
    return {
        **env,
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
