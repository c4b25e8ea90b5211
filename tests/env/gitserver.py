"""A real git server on loopback: bare repositories over smart HTTP behind HTTP Basic auth.

`git http-backend` (from the machine's git) runs as a CGI program for every request, exactly as
behind Apache or nginx in production; this module is the web server around it, on the standard
library: it checks Basic credentials (401 with `WWW-Authenticate` otherwise), passes the request
to the backend with the CGI variables (`REMOTE_USER`, `Git-Protocol` as `GIT_PROTOCOL`,
`Content-Encoding: gzip` as `HTTP_CONTENT_ENCODING`, which the backend inflates itself), streams
the request body in (de-chunking `Transfer-Encoding: chunked`) and the response out (chunked).
Pushes are enabled (`http.receivepack`). Every request is recorded (method, path, user, status,
body encoding) for assertions; passwords are never recorded.

Repositories are set up and inspected through the file system (`create_repo`, `commit`, `tag`,
`head`, `log`), never through the server, so a test sees exactly what clients changed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hmac
import http.server
import io
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
import typing
import urllib.parse
from collections.abc import Iterator, Mapping, Set
from typing import IO, Any, NamedTuple, cast

from tests.env import httpserver

REALM = "ade-test-git"
FileContent = bytes | str | None
"""Content of a file to commit; None deletes the file."""


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request as the server saw it. `user` is None unless authenticated."""

    method: str
    path: str
    query: str
    user: str | None
    status: int
    content_encoding: str | None
    chunked: bool


class Commit(NamedTuple):
    sha: str
    subject: str


def git_env(home: pathlib.Path) -> dict[str, str]:
    """An environment for setup commands that ignores the machine's git configuration."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.test",
        "GIT_COMMITTER_NAME": "Test Author",
        "GIT_COMMITTER_EMAIL": "author@example.test",
    }


class GitServer:
    """Serves the bare repositories `<folder>/<name>.git` to `users` ({name: password}), and to
    holders of `tokens` ({token: user}) sent as `Authorization: Bearer`."""

    def __init__(
        self,
        folder: pathlib.Path,
        users: Mapping[str, str],
        *,
        tokens: Mapping[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.folder = folder
        self.users = dict(users)
        self.tokens = dict(tokens or {})  # Bearer tokens: {token: user name}
        self.backend_log = folder / "http-backend.log"
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        """The port to bind (0: a free one); once started, the port bound."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind 127.0.0.1 (on `port`, or a free one) and serve in a thread."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._httpd = _Server(("127.0.0.1", self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting connections and close the socket (clients then get "refused")."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> GitServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}.git"

    def url_with_user(self, name: str, user: str | None = None) -> str:
        """The URL with `user:password@` in it. For tests driving the git CLI only."""
        user = user or next(iter(self.users))
        password = urllib.parse.quote(self.users[user], safe="")
        login = urllib.parse.quote(user, safe="")
        return f"http://{login}:{password}@127.0.0.1:{self.port}/{name}.git"

    def path(self, name: str) -> pathlib.Path:
        return self.folder / f"{name}.git"

    # -- repositories ------------------------------------------------------------------------

    def create_repo(
        self,
        name: str,
        files: Mapping[str, FileContent],
        branch: str = "main",
        executable: Set[str] = frozenset(),
        *,
        symlinks: Mapping[str, str] | None = None,
        message: str = "Initial commit",
    ) -> str:
        """Create the bare repository `name` with one commit of `files` on `branch`; its sha."""
        bare = self.path(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
        for key, value in (
            ("http.receivepack", "true"),  # pushes over HTTP (also implied by REMOTE_USER)
            ("uploadpack.allowFilter", "true"),  # partial clone filters, as the big hosts do
        ):
            self._git("--git-dir", str(bare), "config", key, value)
        return self.commit(
            name, files, message, branch=branch, executable=executable, symlinks=symlinks
        )

    def commit(
        self,
        name: str,
        files: Mapping[str, FileContent],
        message: str,
        branch: str = "main",
        executable: Set[str] = frozenset(),
        *,
        symlinks: Mapping[str, str] | None = None,
    ) -> str:
        """Commit `files` (None deletes) and `symlinks` ({path: target}) on `branch`; its sha.

        Goes through a work tree cloned from the bare repository and pushed back to it. A branch
        that does not exist yet starts from the repository's HEAD (or from nothing).
        """
        bare = self.path(name)
        with tempfile.TemporaryDirectory(dir=self.folder, prefix="worktree-") as scratch:
            work = pathlib.Path(scratch)
            self._git("clone", "--quiet", str(bare), str(work))
            exists = self._git(
                "-C", str(work), "rev-parse", "--verify", "--quiet", f"origin/{branch}", check=False
            )
            if exists:
                self._git("-C", str(work), "checkout", "--quiet", "-B", branch, f"origin/{branch}")
            else:
                self._git("-C", str(work), "checkout", "--quiet", "-B", branch)
            for relative, content in files.items():
                target = work / relative
                if content is None:
                    self._git("-C", str(work), "rm", "--quiet", "--", relative)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content.encode() if isinstance(content, str) else content)
                target.chmod(0o755 if relative in executable else 0o644)
                self._git("-C", str(work), "add", "--", relative)
            for relative, link in (symlinks or {}).items():
                target = work / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(link)
                self._git("-C", str(work), "add", "--", relative)
            self._git("-C", str(work), "commit", "--quiet", "--allow-empty", "-m", message)
            self._git("-C", str(work), "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
            return self._git("-C", str(work), "rev-parse", "HEAD")

    def tag(self, name: str, tag: str, *, target: str = "main", message: str | None = None) -> str:
        """Tag `target`: annotated when `message` is given, else lightweight; the commit sha."""
        bare = self.path(name)
        annotate = ["-a", "-m", message] if message is not None else []
        self._git("--git-dir", str(bare), "tag", *annotate, "--", tag, target)
        return self._git("--git-dir", str(bare), "rev-parse", f"{target}^{{commit}}")

    def move_branch(self, name: str, sha: str, branch: str = "main") -> None:
        """Point `branch` at `sha`, as a force-push would (e.g. back to an older commit)."""
        self._git("--git-dir", str(self.path(name)), "update-ref", f"refs/heads/{branch}", sha)

    def head(self, name: str, branch: str = "main") -> str:
        """The sha `branch` points at now, read from disk."""
        return self._git("--git-dir", str(self.path(name)), "rev-parse", f"refs/heads/{branch}")

    def log(self, name: str, branch: str = "main", *, path: str | None = None) -> list[Commit]:
        """The commits on `branch` (that touch `path`, when given), newest first."""
        out = self._git(
            "--git-dir", str(self.path(name)), "log", "--format=%H %s", f"refs/heads/{branch}",
            *(["--", path] if path else []),
        )  # fmt: skip
        return [Commit(*line.split(" ", 1)) for line in out.splitlines()]

    def commit_time(self, name: str, revision: str) -> int:
        """The committer time of `revision` (seconds since 1970)."""
        out = self._git("--git-dir", str(self.path(name)), "log", "-1", "--format=%ct", revision)
        return int(out.strip())

    def changes(self, name: str, branch: str = "main") -> dict[str, int]:
        """How many commits on `branch` touched each path (one `git log` for all of them)."""
        out = self._git(
            "--git-dir", str(self.path(name)), "log", "--format=", "--name-only",
            f"refs/heads/{branch}",
        )  # fmt: skip
        counts: dict[str, int] = {}
        for path in filter(None, out.splitlines()):
            counts[path] = counts.get(path, 0) + 1
        return counts

    def show(self, name: str, revision: str = "refs/heads/main") -> str:
        """`git show` of `revision`: the commit's author, message and diff."""
        return self._git("--git-dir", str(self.path(name)), "show", "--stat", "--patch", revision)

    def signatures(self, name: str, *revisions: str) -> list[tuple[str, str, str]]:
        """(`%G?`, signer, subject) of each commit `git log revisions` lists, as this server's
        git sees them after `require_signed`: "G" is a good signature by a trusted key, "N" none.
        """
        bare = self.path(name)
        shown = subprocess.run(
            ["git", "--git-dir", str(bare), "log", "--format=%G?%x00%GS%x00%s", *revisions],
            env={**git_env(self.folder), "GNUPGHOME": str(bare / "gnupg")},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        return [cast(tuple[str, str, str], tuple(line.split("\0"))) for line in shown.splitlines()]

    def require_signed(
        self, name: str, *, ssh_keys: Mapping[str, str] | None = None, openpgp_key: bytes = b""
    ) -> None:
        """Refuse, in a pre-receive hook as a protected branch does, any push that brings a
        commit `git verify-commit` does not accept: unsigned, or signed by a key not trusted here.
        `ssh_keys`: principal -> public key line (git's `gpg.ssh.allowedSignersFile`);
        `openpgp_key`: an armoured public key (or keys), imported into the repository's GnuPG home.
        """
        bare = self.path(name)
        allowed = bare / "allowed_signers"
        allowed.write_text(
            "".join(
                f'{who} namespaces="git" {key.strip()}\n' for who, key in (ssh_keys or {}).items()
            )
        )
        self._git("--git-dir", str(bare), "config", "gpg.ssh.allowedSignersFile", str(allowed))
        home = bare / "gnupg"
        home.mkdir(mode=0o700, exist_ok=True)
        if openpgp_key:
            gpg_env = {**git_env(self.folder), "GNUPGHOME": str(home)}

            def gpg(*args: str, given: bytes = b"") -> str:
                return subprocess.run(
                    ["gpg", "--batch", "--quiet", *args],
                    input=given,
                    env=gpg_env,
                    check=True,
                    capture_output=True,
                    timeout=60,
                ).stdout.decode()

            gpg("--import", given=openpgp_key)
            # trusted as a host trusts a key registered with it (`%G?` then says G, not U)
            listing = gpg("--with-colons", "--list-keys")
            prints = [line.split(":")[9] for line in listing.splitlines() if line[:4] == "fpr:"]
            gpg("--import-ownertrust", given="".join(f"{fp}:6:\n" for fp in prints).encode())
        hook = bare / "hooks" / "pre-receive"
        hook.write_text(_SIGNED_ONLY.replace("@GNUPGHOME@", str(home)))
        hook.chmod(0o755)

    def requests_for(self, name: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(f"/{name}.git/")]

    def _git(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["git", *args],
            env={**git_env(self.folder), "GITSERVER_ADMIN": "1"},
            cwd=self.folder,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"git {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result.stdout.strip() if result.returncode == 0 else ""

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


_SIGNED_ONLY = """#!/bin/sh
# Installed by GitServer.require_signed: every new commit must be signed by a trusted key.
# Setup commits (GitServer.commit, a local push) stand for the admin's, as a host's bypass list.
[ -n "$GITSERVER_ADMIN" ] && exit 0
export GNUPGHOME=@GNUPGHOME@
zero=0000000000000000000000000000000000000000
while read -r _ new ref; do
  [ "$new" = "$zero" ] && continue
  # the commits this push brings: none the repository already has (on any branch)
  for commit in $(git rev-list "$new" --not --all); do
    if ! git verify-commit "$commit" >/dev/null 2>&1; then
      echo "$ref: commit $commit is not signed by a trusted key" >&2
      exit 1
    fi
  done
done
"""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, git: GitServer) -> None:
        self.git = git
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        httpserver.no_delay(sock)
        return sock, address


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are recorded in `GitServer.requests` instead."""

    def _serve(self) -> None:
        git = self.server.git
        path, _, query = self.path.partition("?")
        encoding = self.headers.get("Content-Encoding")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        user = self._authenticate(git.users, git.tokens)
        status = 401 if user is None else self._run_backend(git, path, query, user, chunked)
        if user is None:
            self._refuse()
        git._record(Request(self.command, path, query, user, status, encoding, chunked))

    def _authenticate(self, users: Mapping[str, str], tokens: Mapping[str, str]) -> str | None:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            for token, user in tokens.items():
                if hmac.compare_digest(token.encode(), value.strip().encode()):
                    return user
            return None
        if scheme.lower() != "basic":
            return None
        try:
            name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = users.get(name)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return name

    def _refuse(self) -> None:
        body = b"authentication required\n"
        self.send_response(401)
        self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if self._has_body():  # unread: the connection cannot be reused
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _has_body(self) -> bool:
        return "Transfer-Encoding" in self.headers or int(self.headers.get("Content-Length", 0)) > 0

    def _run_backend(self, git: GitServer, path: str, query: str, user: str, chunked: bool) -> int:
        env = {
            **git_env(git.folder),
            "GIT_PROJECT_ROOT": str(git.folder),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "REMOTE_USER": user,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        if not chunked and self.headers.get("Content-Length"):
            env["CONTENT_LENGTH"] = self.headers["Content-Length"]
        for header, value in self.headers.items():
            if header.lower() not in {"authorization", "content-type", "content-length"}:
                env["HTTP_" + header.upper().replace("-", "_")] = value
        if "HTTP_GIT_PROTOCOL" in env:
            env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"]
        with git.backend_log.open("ab") as log:
            backend = subprocess.Popen(
                ["git", "http-backend"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert backend.stdin is not None
        assert backend.stdout is not None
        feeder = threading.Thread(target=self._feed, args=(backend.stdin, chunked), daemon=True)
        feeder.start()
        try:
            return self._relay(backend.stdout)
        finally:
            feeder.join(timeout=60)
            backend.stdout.close()
            backend.wait(timeout=60)

    def _feed(self, sink: IO[bytes], chunked: bool) -> None:
        """Stream the request body to the backend, de-chunked; the backend inflates gzip."""
        blocks = self._body(chunked)
        try:
            for block in blocks:
                sink.write(block)
        except BrokenPipeError:  # the backend answered without reading it all (an error)
            for _ in blocks:
                pass  # drain it, so that the next request on this connection starts in sync
        finally:
            with contextlib.suppress(BrokenPipeError):
                sink.close()

    def _body(self, chunked: bool) -> Iterator[bytes]:
        if chunked:
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk
        remaining = int(self.headers.get("Content-Length", 0))
        while remaining > 0:
            block = self.rfile.read(min(remaining, 65536))
            if not block:
                return
            remaining -= len(block)
            yield block

    def _relay(self, stdout: IO[bytes]) -> int:
        """Turn the CGI response (headers, blank line, body) into an HTTP/1.1 chunked response."""
        source = typing.cast(io.BufferedReader, stdout)
        status, reason = 200, "OK"
        headers: list[tuple[str, str]] = []
        while True:
            raw = source.readline()
            if not raw:  # the backend died before its headers
                status, reason = 500, "Backend Failed"
                headers.clear()
                break
            line = raw.rstrip(b"\r\n").decode("latin-1")
            if not line:
                break
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code, _, reason = value.strip().partition(" ")
                status = int(code)
            else:
                headers.append((name, value.strip()))
        self.send_response(status, reason or None)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while block := source.read1(65536):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
        self.wfile.write(b"0\r\n\r\n")
        return status


@contextlib.contextmanager
def running(
    folder: pathlib.Path, users: Mapping[str, str], *, tokens: Mapping[str, str] | None = None
) -> Iterator[GitServer]:
    server = GitServer(folder, users, tokens=tokens)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
