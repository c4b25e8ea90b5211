"""Git sources over the git CLI: resolve a ref to a commit, materialize a folder of a commit.

`ls_remote` answers "which commit is `ref` now?" and `fetch_tree` writes the folder `path` of
exactly that commit into a directory, byte for byte and with its file modes. Both run `git` with
`asyncio.create_subprocess_exec` (never a shell) in a throw-away directory that also holds the
SSH key, and kill the whole process group on timeout or cancellation.

Isolation and secrecy:
- Credentials are never in argv, in the URL given to git, or in logs. HTTP Basic/Bearer goes in
  `http.<origin>/.extraHeader`, passed through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/
  `GIT_CONFIG_VALUE_n` (so only that origin ever sees it); SSH uses a 0600 key file, the Secret's
  `known_hosts`, `StrictHostKeyChecking=yes` and `IdentitiesOnly=yes`.
- git never prompts (`GIT_TERMINAL_PROMPT=0`, empty `GIT_ASKPASS`/`SSH_ASKPASS`, ssh `BatchMode`)
  and reads no configuration of the machine (`HOME` in the scratch directory,
  `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_CONFIG_NOSYSTEM=1`, no credential helper); the environment
  is built from nothing, so no `GIT_*` variable of the operator's leaks in. Only the http, https
  and ssh transports are allowed, and fetched objects are fsck-checked.
- Every error message goes through `credentials.scrub` (`errors.redact` plus the literal secret
  values), names the repository URL (redacted) and the ref.

The pieces the catalog writer (`controller.catalog.repository`) shares are public: `run_git`
(one git process, its group killed on cancellation), `environment`, `transport`, `classify` and
`error_detail`.

Errors are typed (`GitError` and its subclasses below): the reconcile steps catch
`errors.StalledError` / `errors.TransientError` or these classes; `reason` is the condition reason.
Inputs the CRD schema and `controller.reconcile.validate` already refuse (another URL scheme,
user information in an HTTP URL, a path leaving the repository) raise `ValueError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pathlib
import posixpath
import re
import shlex
import shutil
import signal
import tarfile
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import IO, ClassVar

from controller import errors
from controller.observe import metrics
from controller.sources import credentials as credentials_
from controller.sources.credentials import Credentials

logger = logging.getLogger(__name__)

_SHA = re.compile(r"[0-9a-fA-F]{40}")
_SHORT_SHA = re.compile(r"[0-9a-fA-F]{7,39}")
_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:.+")

_RAW_ATTRIBUTES = "* -text -ident -filter -working-tree-encoding -export-ignore -export-subst\n"
"""`$GIT_DIR/info/attributes` wins over the tree's .gitattributes: blobs come out unconverted."""


# -- errors ----------------------------------------------------------------------------------


class GitError(errors.ReconcileError):
    """A git operation failed. `url` is redacted; `detail` is git's own words, scrubbed."""

    REASON: ClassVar[str] = "SourceGitFailed"

    def __init__(self, message: str, *, url: str, ref: str, detail: str = "") -> None:
        super().__init__(self.REASON, message)
        self.url = url
        self.ref = ref
        self.detail = detail


class GitAuthFailed(GitError, errors.StalledError):
    """The server refused the credentials (or needs some), or the SSH host key did not match."""

    REASON = "SourceAuthFailed"


class GitRepositoryNotFound(GitError, errors.StalledError):
    """No repository at the URL, or the credentials cannot see it (hosts answer alike)."""

    REASON = "SourceRepositoryNotFound"


class GitRefNotFound(GitError, errors.StalledError):
    """No branch or tag of that name, or the commit does not exist on the server."""

    REASON = "SourceRefNotFound"


class GitPathNotFound(GitError, errors.StalledError):
    """The commit has no folder at `path` (missing, or a file)."""

    REASON = "SourcePathNotFound"


class GitTreeRefused(GitError, errors.StalledError):
    """The folder holds something that cannot be materialized safely (a symlink leaving it)."""

    REASON = "SourceTreeRefused"


class GitUnavailable(GitError, errors.TransientError):
    """Connection refused or reset, DNS, timeouts, HTTP 5xx/429, and any failure not recognized:
    retried with backoff, with git's words in the message."""

    REASON = "SourceUnavailable"


_Kind = type[GitError]

_PATTERNS: tuple[tuple[str, _Kind], ...] = (
    (r"not our ref|couldn't find remote ref|unadvertised object", GitRefNotFound),
    (
        r"repository '[^']*' not found|repository not found|returned error: 404",
        GitRepositoryNotFound,
    ),
    (r"does not appear to be a git repository|TF401019", GitRepositoryNotFound),
    (r"could not be found or you don't have permission", GitRepositoryNotFound),
    (r"could not read (username|password)|terminal prompts disabled", GitAuthFailed),
    (r"authentication failed|returned error: 40[13]|access denied", GitAuthFailed),
    (r"permission denied|permission to \S+ denied", GitAuthFailed),
    (r"host key verification failed|remote host identification has changed", GitAuthFailed),
    (r"returned error: (5\d\d|429)|could not resolve|failed to connect", GitUnavailable),
    (r"couldn't connect|connection (refused|reset|timed out|closed)|timed out", GitUnavailable),
    (r"early EOF|hung up unexpectedly|RPC failed", GitUnavailable),
)
CLASSIFICATION = tuple((re.compile(text, re.IGNORECASE), kind) for text, kind in _PATTERNS)
"""First match wins; anything else is `GitUnavailable` (retrying a permanent failure with backoff
costs little, stalling on a passing one would need a user to notice)."""


def classify(stderr: str) -> _Kind:
    """The error class for git's (LC_ALL=C) stderr."""
    for pattern, kind in CLASSIFICATION:
        if pattern.search(stderr):
            return kind
    return GitUnavailable


_BOILERPLATE = re.compile(
    r"^(hint:|Please make sure you have the correct access rights|and the repository exists)"
)


def error_detail(stderr: str, credentials: Credentials) -> str:
    """git's last few messages, scrubbed, without boilerplate, kept short."""
    lines: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if line and not _BOILERPLATE.match(line) and line not in lines:
            lines.append(line)
    text = credentials_.scrub("; ".join(lines[-4:]), credentials)
    return text if len(text) <= 500 else "..." + text[-497:]


def _error(kind: _Kind, stderr: str, git: _Session) -> GitError:
    url, ref, detail = git.shown_url, git.ref, error_detail(stderr, git.credentials)
    if kind is GitAuthFailed:
        if git.credentials.secret:
            hint = f"check the credentials in Secret {git.credentials.secret!r}"
        elif git.credentials == Credentials():
            hint = "the repository needs credentials: set secretRef"
        else:
            hint = "check the credentials"
        message = f"authentication to {url} failed ({hint})"
    elif kind is GitRepositoryNotFound:
        message = f"repository {url} not found, or the credentials cannot read it"
    elif kind is GitRefNotFound:
        message = f"ref {ref!r} not found in {url}"
        if _SHORT_SHA.fullmatch(ref):
            message += " (give a commit as its full 40-character sha)"
    else:
        message = f"git failed on {url} at {ref!r}"
    if detail:
        message += f": {detail}"
    return kind(credentials_.scrub(message, git.credentials), url=url, ref=ref, detail=detail)


@dataclasses.dataclass(frozen=True)
class Completed:
    """A finished git process: exit status and output (`stderr` is raw: scrub before showing)."""

    returncode: int
    stdout: str
    stderr: str


async def run_git(
    *args: str,
    cwd: pathlib.Path,
    env: Mapping[str, str],
    credentials: Credentials,
    stdout: IO[bytes] | None = None,
) -> Completed:
    """Run `git *args` (never through a shell) with exactly `env`, in its own process group that
    is killed if the caller is cancelled or times out. Logged at DEBUG, scrubbed of `credentials`.
    """
    shown = credentials_.scrub(shlex.join(["git", *args]), credentials)
    logger.debug("running %s", shown)
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout if stdout is not None else asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # one process group: git, git-remote-http, ssh
    )
    try:
        out, err = await process.communicate()
    finally:
        if process.returncode is None:  # timed out or cancelled: leave nothing behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    stderr = err.decode(errors="replace")
    if process.returncode != 0:
        logger.debug(
            "%s exited with %s: %s",
            shown,
            process.returncode,
            credentials_.scrub(stderr, credentials),
        )
    return Completed(process.returncode or 0, (out or b"").decode(errors="replace"), stderr)


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

    async def run(
        self, *args: str, ok: Sequence[int] = (0,), stdout: IO[bytes] | None = None
    ) -> str:
        """Run git; its stdout (unless redirected). A non-`ok` exit raises the classified error."""
        done = await run_git(
            *args, cwd=self.folder, env=self.env, credentials=self.credentials, stdout=stdout
        )
        if done.returncode not in ok:
            raise _error(classify(done.stderr), done.stderr, self)
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
            raise _error(GitRefNotFound, f"{sha} is a {kind.strip()}, not a commit", self)
        return repo


def transport(url: str) -> credentials_.Transport:
    """The transport of `url`; `ValueError` for another scheme, a leading "-" or user
    information in an HTTP URL (credentials come from a Secret, never from the URL)."""
    if url.startswith("-"):
        raise ValueError("a git URL must not start with '-'")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in an HTTP URL are refused: use a Secret")
        return "http"
    if scheme == "ssh" or (not scheme and _SCP_LIKE.fullmatch(url)):
        return "ssh"
    raise ValueError(f"unsupported git URL {errors.redact(url)!r}: use https://, http:// or ssh")


def environment(
    folder: pathlib.Path, url: str, transport: str, credentials: Credentials
) -> dict[str, str]:
    """git's whole environment, built from nothing: only PATH and the proxy variables are
    inherited; messages in English (LC_ALL=C) so that `classify` can read them. It creates
    `folder/home` (and `folder/ssh`, holding the key, for SSH): `folder` is private scratch."""
    home = folder / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C",
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",  # empty: git neither runs a helper nor prompts; it fails at once
        "SSH_ASKPASS": "",
        "SSH_ASKPASS_REQUIRE": "never",
        "GIT_ALLOW_PROTOCOL": "http:https:ssh",
    }
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        for variant in (name, name.lower()):
            if variant in os.environ:
                env[variant] = os.environ[variant]
    config = [
        ("credential.helper", ""),
        ("init.templateDir", ""),
        ("init.defaultBranch", "scratch"),
        ("transfer.fsckObjects", "true"),
        ("gc.auto", "0"),
    ]
    if transport == "http":
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}/"
        if credentials.bearer_token:
            config.append(
                (f"http.{origin}.extraHeader", f"Authorization: Bearer {credentials.bearer_token}")
            )
        elif credentials.basic_header:
            config.append(
                (f"http.{origin}.extraHeader", f"Authorization: {credentials.basic_header}")
            )
    else:
        ssh = folder / "ssh"
        ssh.mkdir(mode=0o700)
        assert credentials.identity is not None
        assert credentials.known_hosts is not None
        # OpenSSH wants LF line ends and a final newline; Secrets made on Windows have CRLF.
        identity = credentials.identity.replace(b"\r\n", b"\n").rstrip(b"\n") + b"\n"
        _write_private(ssh / "identity", identity)
        _write_private(ssh / "known_hosts", credentials.known_hosts)
        env["GIT_SSH_VARIANT"] = "ssh"
        env["GIT_SSH_COMMAND"] = shlex.join([
            "ssh", "-F", "/dev/null", "-i", str(ssh / "identity"),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={ssh / 'known_hosts'}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
        ])  # fmt: skip
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _write_private(path: pathlib.Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


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
    kind = transport(url)
    usable = (credentials or Credentials()).for_transport(kind)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="ade-git-"))
    git = _Session(url, ref, usable, folder, {})
    try:
        git.env = environment(folder, url, kind, usable)
        with metrics.git_operation(purpose="source", operation=operation):
            async with asyncio.timeout(timeout):
                yield git
    except TimeoutError:
        message = f"git timed out after {timeout:g}s on {git.shown_url} at {ref!r}"
        raise GitUnavailable(message, url=git.shown_url, ref=ref) from None
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
        if _SHA.fullmatch(ref):
            await git.fetch_commit(ref.lower(), commit_only=True)
            return ref.lower()
        if ref == "HEAD" or ref.startswith("refs/"):
            candidates = [ref]
        else:
            candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        peeled = [f"{candidate}^{{}}" for candidate in candidates]  # patterns filter these too
        listing = await git.run("ls-remote", "--", url, *candidates, *peeled)
        refs: dict[str, str] = {}
        for line in listing.splitlines():
            sha, _, name = line.partition("\t")
            refs[name] = sha
        for candidate in candidates:
            found = refs.get(f"{candidate}^{{}}") or refs.get(candidate)
            if found:
                logger.debug("%s %s is %s", git.shown_url, candidate, found)
                return found
        raise _error(GitRefNotFound, "", git)


async def fetch_tree(
    *,
    url: str,
    revision: str,
    path: str,
    dest: pathlib.Path,
    credentials: Credentials | None = None,
    timeout: float = 300.0,
) -> None:
    """Write the folder `path` ("." for the root) of commit `revision` into `dest`.

    Only that commit is fetched (depth 1, no tags, no submodules). Files are written as stored
    in git: no line-ending or filter conversion, no `export-ignore`; modes are 0644 or 0755 (the
    executable bit kept); symlinks are kept when they stay inside `path`, otherwise
    `GitTreeRefused` (and so are absolute ones). Submodules come out as empty folders; Git LFS
    files as their pointer files. `dest` is created if needed and must be empty; on failure it
    is left empty.

    Raises what `ls_remote` raises, plus `GitPathNotFound` and `GitTreeRefused`.
    """
    if not _SHA.fullmatch(revision):
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
            raise GitPathNotFound(
                credentials_.scrub(message, git.credentials), url=git.shown_url, ref=sha
            )
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
            raise GitTreeRefused(
                credentials_.scrub(message, git.credentials), url=git.shown_url, ref=sha
            ) from None
        logger.debug("wrote %r of %s at %s into %s", path, git.shown_url, sha, dest)


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
