"""A real OCI registry on loopback (Debian's `docker-registry`, distribution 2.8) and a fault proxy.

`Registry(folder, token_server)` runs `/usr/bin/docker-registry` over plain HTTP on 127.0.0.1
with filesystem storage under `folder`, deletes enabled, and token auth against a
`tokenserver.TokenServer` (or no auth at all when it is None). `FaultProxy` sits in front of a
registry and answers the next K requests itself (429 with `Retry-After`, 503, ...) so retry
behaviour can be proved against the real thing; it records when every request arrived.

Install the registry with `apt-get install -y docker-registry` (`hack/` does it for CI).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import http.server
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from tests.env import httpserver, process
from tests.env.tokenserver import TokenServer

BINARY = pathlib.Path(os.environ.get("ADE_REGISTRY_BIN", "/usr/bin/docker-registry"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def docker_config_json(host: str, *, user: str, password: str) -> str:
    """A `.dockerconfigjson` with Basic credentials for `host` (what `kubectl create secret
    docker-registry` writes)."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}})


def available() -> bool:
    """Whether the registry binary is installed (tests skip with a hint when it is not)."""
    return BINARY.exists()


class Registry:
    """`docker-registry serve` in `folder`; `host` is "127.0.0.1:PORT" once started."""

    def __init__(
        self, folder: pathlib.Path, token_server: TokenServer | None, *, port: int = 0
    ) -> None:
        """`port` 0 picks a free port."""
        self.folder = folder
        self.token_server = token_server
        self.storage = folder / "storage"
        self.log = folder / "registry.log"
        self.config = folder / "config.yml"
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": secrets.token_hex(16)},
        }
        if self.token_server is not None:
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.token_server.ca_bundle),
                }
            }
        return config

    def start(self, *, timeout: float = 30.0) -> None:
        if not available():
            raise RuntimeError(f"{BINARY} is missing: apt-get install -y docker-registry")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        # JSON is YAML: no YAML writer needed.
        self.config.write_text(json.dumps(self._config(), indent=2))
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(BINARY), "serve", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {self._proc.returncode}:\n{self.logs()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:
                    del response
                    return
            except urllib.error.HTTPError as error:
                if error.code == 401:  # token auth on: answering is what we wait for
                    return
                last = str(error)
            except OSError as error:
                last = str(error)
            time.sleep(0.05)
        raise TimeoutError(f"docker-registry not ready after {timeout}s: {last}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        process.terminate(self._proc)
        self._proc = None

    def cleanup(self) -> None:
        """Stop and remove the stored blobs."""
        self.stop()
        shutil.rmtree(self.storage, ignore_errors=True)

    def blob_path(self, digest: str) -> pathlib.Path:
        """Where filesystem storage keeps a blob's bytes (to corrupt it in a test)."""
        algorithm, _, hexdigest = digest.partition(":")
        return (
            self.storage
            / "docker/registry/v2/blobs"
            / algorithm
            / hexdigest[:2]
            / hexdigest
            / "data"
        )

    def tags(self, repository: str) -> list[str]:
        """The tags filesystem storage holds for `repository` (none: the repository is absent)."""
        folder = self.storage / "docker/registry/v2/repositories" / repository / "_manifests/tags"
        return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@contextlib.contextmanager
def running(folder: pathlib.Path, token_server: TokenServer | None) -> Iterator[Registry]:
    registry = Registry(folder, token_server)
    try:
        registry.start()
        yield registry
    finally:
        registry.cleanup()


# -- fault injection ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProxiedRequest:
    time: float
    """`time.monotonic()` when the request arrived."""
    method: str
    path: str
    status: int
    injected: bool
    """True when the proxy answered itself instead of forwarding."""


@dataclasses.dataclass
class _Fault:
    remaining: int
    status: int
    headers: dict[str, str]


_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


class FaultProxy:
    """A loopback HTTP reverse proxy to `upstream` ("127.0.0.1:PORT") that can inject faults.

    `fail_next(k, status=429, retry_after=2)` answers the next k requests with that status (and
    `Retry-After` when given) without forwarding them; everything else is forwarded with its
    Host header kept, so the registry builds upload URLs that point back at the proxy.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[ProxiedRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._http = httpserver.LoopbackServer("fault-proxy")

    def start(self) -> None:
        self._http.start(type("Handler", (_ProxyHandler,), {"owner": self}))

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._http.port}"

    def fail_next(self, count: int, *, status: int, retry_after: str | int | None = None) -> None:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        with self._lock:
            self._faults.append(_Fault(count, status, headers))

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def recorded(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self.requests)

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            while self._faults and self._faults[0].remaining <= 0:
                self._faults.pop(0)
            if not self._faults:
                return None
            self._faults[0].remaining -= 1
            return self._faults[0]

    def _record(self, arrived: float, method: str, path: str, status: int, injected: bool) -> None:
        with self._lock:
            self.requests.append(ProxiedRequest(arrived, method, path, status, injected))


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `requests` is the log."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        arrived = time.monotonic()
        body = self._body()
        fault = self.owner._take_fault()
        if fault is not None:
            payload = json.dumps(
                {"errors": [{"code": "TOOMANYREQUESTS", "message": "injected by FaultProxy"}]}
            ).encode()
            self.owner._record(arrived, self.command, self.path, fault.status, True)
            self.send_response(fault.status)
            for key, value in fault.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(self.upstream_host, timeout=60)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except OSError:
            self.owner._record(arrived, self.command, self.path, 502, True)
            self.send_error(502)
            return
        finally:
            connection.close()
        self.owner._record(arrived, self.command, self.path, response.status, False)
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() in _HOP_BY_HOP or key.lower() in ("content-length", "date", "server"):
                continue
            self.send_header(key, value)
        if self.command == "HEAD":
            length = response.getheader("Content-Length")
            if length is not None:
                self.send_header("Content-Length", length)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    @property
    def upstream_host(self) -> str:
        return self.owner.upstream

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()
