"""Git sources over the git CLI: resolve a ref to a commit, materialize a folder of a commit.

`ls_remote` answers "which commit is `ref` now?" and `fetch_tree` writes the folder `path` of
exactly that commit into a directory, byte for byte and with its file modes. Both run git through
`controller.git` (`process.run_git`: never a shell, the whole process group killed on timeout or
cancellation) in a throw-away directory holding git's isolated environment and the SSH key
(`environment`), and report one git operation each (`metrics.report_git_operation`, purpose
"source").

Every error message goes through `credentials.scrub` (`errors.redact` plus the literal secret
values), names the repository URL (redacted) and the ref. Errors are `controller.git.failures`
with purpose "source" (reasons `Source*`), under the names callers know (`GitAuthFailed`, ...,
below); the reconcile steps catch `errors.StalledError` / `errors.TransientError`. Inputs the CRD
schema and `controller.reconcile.validate` already refuse (another URL scheme, user information
in an HTTP URL, a path leaving the repository) raise `ValueError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import pathlib
import posixpath
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from typing import IO, Final

from controller.git import credentials as credentials_
from controller.git import environment, failures, process, refs
from controller.git.credentials import Credentials
from controller.observe import activity, metrics

logger = logging.getLogger(__name__)

PURPOSE: Final = "source"

_RAW_ATTRIBUTES = "* -text -ident -filter -working-tree-encoding -export-ignore -export-subst\n"
"""`$GIT_DIR/info/attributes` wins over the tree's .gitattributes: blobs come out unconverted."""

# The error names callers know; each is raised with purpose "source" (reasons `Source*`).
GitError = failures.GitError
GitAuthFailed = failures.AuthFailed
GitRepositoryNotFound = failures.RepositoryNotFound
GitRefNotFound = failures.RefNotFound
GitPathNotFound = failures.PathNotFound
GitTreeRefused = failures.TreeRefused
GitUnavailable = failures.Unavailable


# -- the session: a scratch directory, an environment, a deadline ----------------------------


@dataclasses.dataclass
class _Session:
    url: str
    ref: str
    credentials: Credentials
    folder: pathlib.Path
    env: dict[str, str]

    @property
    def shown_url(self) -> str:
        return credentials_.scrub(self.url, self.credentials)

    def error(self, kind: type[failures.GitError] | None, stderr: str) -> failures.GitError:
        """The typed error for git's `stderr` (`kind`, else what it says)."""
        return failures.from_output(
            stderr,
            purpose=PURPOSE,
            url=self.url,
            ref=self.ref,
            credentials=self.credentials,
            kind=kind,
        )

    async def run(
        self, *args: str, ok: Sequence[int] = (0,), stdout: IO[bytes] | None = None
    ) -> str:
        """Run git; its stdout (unless redirected). A non-`ok` exit raises the classified error."""
        with activity.waiting_on(f"the git server {self.shown_url} (git {args[0]})"):
            done = await process.run_git(
                *args, cwd=self.folder, env=self.env, credentials=self.credentials, stdout=stdout
            )
        if done.returncode not in ok:
            raise self.error(None, done.stderr)
        return done.stdout

    async def fetch_commit(self, sha: str, *, commit_only: bool) -> str:
        """Fetch exactly `sha` (depth 1) into a scratch bare repository; its git dir."""
        repo = str(self.folder / "repo.git")
        await self.run("init", "--quiet", "--bare", repo)
        with_filter = ["--filter=tree:0"] if commit_only else []
        await self.run(
            "--git-dir", repo, "fetch", "--quiet", "--depth=1", "--no-tags",
            "--no-recurse-submodules", "--no-write-fetch-head", *with_filter,
            "--", self.url, sha,
        )  # fmt: skip
        kind = await self.run("--git-dir", repo, "cat-file", "-t", sha)
        if kind.strip() != "commit":
            raise self.error(GitRefNotFound, f"{sha} is a {kind.strip()}, not a commit")
        return repo

    def refused(self, kind: type[failures.GitError], message: str) -> failures.GitError:
        """An error of ours (not git's) about the ref, its message scrubbed."""
        scrubbed = credentials_.scrub(message, self.credentials)
        return kind(scrubbed, purpose=PURPOSE, url=self.shown_url, ref=self.ref)


@contextlib.asynccontextmanager
async def _session(
    *,
    url: str,
    ref: str,
    credentials: Credentials | None,
    timeout: float,
    operation: str,
) -> AsyncIterator[_Session]:
    """A scratch directory (removed afterwards, key included) and a deadline for all of it;
    timed and counted as the git `operation` (metrics)."""
    usable = environment.usable(url, credentials)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="ade-git-"))
    git = _Session(url, ref, usable, folder, {})
    try:
        git.env = environment.environment(folder, url, usable)
        started, result = time.monotonic(), "failed"
        try:
            async with asyncio.timeout(timeout):
                yield git
            result = "ok"
        finally:
            metrics.report_git_operation(
                purpose=PURPOSE,
                operation=operation,
                result=result,
                seconds=time.monotonic() - started,
            )
    except TimeoutError:
        message = f"git timed out after {timeout:g}s on {git.shown_url} at {ref!r}"
        raise git.refused(GitUnavailable, message) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- the operations --------------------------------------------------------------------------


async def ls_remote(
    *,
    url: str,
    ref: str,
    credentials: Credentials | None = None,
    timeout: float = 60.0,
) -> str:
    """The commit sha `ref` points at now on the server at `url`.

    `ref` is, in this order of lookup:
    - a full 40-hex sha: verified to exist on the server by fetching that one commit object,
      without trees or blobs (`git fetch --depth=1 --filter=tree:0 origin <sha>` into a scratch
      repository; a server without partial-clone support sends the commit's tree as well), then
      returned lower-cased. Short shas are not resolved (`GitRefNotFound` says so);
    - `HEAD` or a full ref name (`refs/...`): taken as is;
    - a name: the branch `refs/heads/<ref>`, else the tag `refs/tags/<ref>` (the order of
      `git clone --branch`); an annotated tag is peeled to its commit (`^{}`).

    Raises `GitAuthFailed`, `GitRepositoryNotFound`, `GitRefNotFound`, `GitUnavailable` (also on
    timeout) and `credentials.CredentialsInvalid` when the Secret does not fit the URL.
    """
    async with _session(
        url=url, ref=ref, credentials=credentials, timeout=timeout, operation="ls-remote"
    ) as git:
        if refs.FULL_SHA.fullmatch(ref):
            await git.fetch_commit(ref.lower(), commit_only=True)
            return ref.lower()
        if ref == "HEAD" or ref.startswith("refs/"):
            candidates = [ref]
        else:
            candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        peeled = [f"{candidate}^{{}}" for candidate in candidates]  # patterns filter these too
        listing = await git.run("ls-remote", "--", url, *candidates, *peeled)
        advertised: dict[str, str] = {}
        for line in listing.splitlines():
            sha, _, name = line.partition("\t")
            advertised[name] = sha
        for candidate in candidates:
            found = advertised.get(f"{candidate}^{{}}") or advertised.get(candidate)
            if found:
                logger.debug("%s %s is %s", git.shown_url, candidate, found)
                return found
        raise git.error(GitRefNotFound, "")


async def fetch_tree(
    *,
    url: str,
    revision: str,
    path: str,
    dest: pathlib.Path,
    credentials: Credentials | None = None,
    timeout: float = 300.0,
) -> int:
    """Write the folder `path` ("." for the root) of commit `revision` into `dest`; return the
    commit's time (seconds since 1970, the committer's: what reproducible builds stamp).

    Only that commit is fetched (depth 1, no tags, no submodules). Files are written as stored
    in git: no line-ending or filter conversion, no `export-ignore`; modes are 0644 or 0755 (the
    executable bit kept); symlinks are kept when they stay inside `path`, otherwise
    `GitTreeRefused` (and so are absolute ones). Submodules come out as empty folders; Git LFS
    files as their pointer files. `dest` is created if needed and must be empty; on failure it
    is left empty.

    Raises what `ls_remote` raises, plus `GitPathNotFound` and `GitTreeRefused`.
    """
    if not refs.FULL_SHA.fullmatch(revision):
        raise ValueError(f"revision must be a full 40-hex commit sha, not {revision!r}")
    inside = posixpath.normpath(path.strip("/") or ".")
    if path.startswith("/") or inside == ".." or inside.startswith("../"):
        raise ValueError(f"path {path!r} must stay inside the repository")
    inside = "" if inside == "." else inside
    await asyncio.to_thread(_prepare, dest)
    sha = revision.lower()
    async with _session(
        url=url, ref=sha, credentials=credentials, timeout=timeout, operation="fetch"
    ) as git:
        repo = await git.fetch_commit(sha, commit_only=False)
        await asyncio.to_thread(_write_raw_attributes, pathlib.Path(repo))
        kind = await git.run("--git-dir", repo, "cat-file", "-t", f"{sha}:{inside}", ok=(0, 128))
        if kind.strip() != "tree":
            message = f"folder {path!r} not found in {git.shown_url} at {sha}"
            raise git.refused(GitPathNotFound, message)
        tarball = git.folder / "tree.tar"
        with tarball.open("wb") as sink:
            await git.run(
                "--git-dir", repo, "archive", "--format=tar", f"{sha}:{inside}", stdout=sink
            )
        try:
            await asyncio.to_thread(_extract, tarball, dest)
        except tarfile.FilterError as error:
            member = error.tarinfo
            message = (
                f"{posixpath.join(inside, member.name)} in {git.shown_url} at {sha}: symlink to"
                f" {member.linkname!r} leaves the folder {path!r}"
            )
            raise git.refused(GitTreeRefused, message) from None
        logger.debug("wrote %r of %s at %s into %s", path, git.shown_url, sha, dest)
        committed = await git.run("--git-dir", repo, "log", "-1", "--format=%ct", sha)
    return int(committed.strip() or 0)


def _prepare(dest: pathlib.Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty")


def _write_raw_attributes(repo: pathlib.Path) -> None:
    (repo / "info").mkdir(exist_ok=True)
    (repo / "info" / "attributes").write_text(_RAW_ATTRIBUTES)


def _extract(tarball: pathlib.Path, dest: pathlib.Path) -> None:
    """Unpack with tarfile's "data" filter: no absolute or escaping links, no devices, and no
    group/other write bits (0664/0775 from git archive become 0644/0755). On a refused member,
    empty `dest` again and re-raise."""
    with tarfile.open(tarball) as archive:
        try:
            archive.extractall(dest, filter="data")
        except tarfile.FilterError:
            for child in dest.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            raise
