"""A fault-injecting HTTP(S) reverse proxy on loopback, put in front of one test service.

`FaultProxy(upstream)` listens on 127.0.0.1 and forwards every request to `upstream`
("127.0.0.1:PORT") with its Host header kept (so a registry's upload URLs and an Entra ID
discovery document point back at the proxy), buffering bodies both ways. Tests drive it with
rules (`add(Rule(...))`): the first matching rule with uses left decides what happens to a
request, else it is forwarded untouched. The faults:

| fault | what the client sees |
|---|---|
| `Reset()` | the connection closed with a TCP reset, no answer |
| `Status(503, retry_after=2)` | that status (and `Retry-After`), never forwarded |
| `Delay(s)` | the answer, `s` seconds late (past a client's read timeout: a time-out) |
| `Drip(interval)` | the status line and headers, then the body one byte per `interval` |
| `Truncate()` | the status and the full `Content-Length`, half of the body, then closed |
| `CorruptManifest()` | the answer's JSON re-indented, `Docker-Content-Digest` kept: a mismatch |

TLS: with `tls=` (a server context, e.g. a certificate for 127.0.0.1 from the service's own test
CA) the proxy terminates TLS, and with `upstream_tls=` (a client context trusting the service's
CA) it re-originates TLS, so a client is pointed at the proxy with the same trust it had.

Every request is recorded (`exchanges()`: arrival time, method, path, status, the fault, the
`Retry-After` sent and when its answer left); `violations()` lists the retries that came before
the `Retry-After` the proxy gave had passed (the next request of the same method, path and
User-Agent after such an answer).
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import json
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any

from tests.env import httpserver

# -- the faults ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reset:
    """Close the connection with a TCP reset before answering."""


@dataclasses.dataclass(frozen=True)
class Status:
    """Answer `status` (with `Retry-After: retry_after` when given) without forwarding."""

    status: int
    retry_after: float | None = None


@dataclasses.dataclass(frozen=True)
class Delay:
    """Forward, and answer `seconds` late."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class Drip:
    """Forward; send the status and headers at once, then the body one byte per `interval`."""

    interval: float


@dataclasses.dataclass(frozen=True)
class Truncate:
    """Forward; declare the whole body, send the first `keep` of it, close the connection."""

    keep: float = 0.5


@dataclasses.dataclass(frozen=True)
class CorruptManifest:
    """Forward; re-indent a JSON body (same document, other bytes) keeping every header but the
    length, so its `Docker-Content-Digest` no longer matches."""


Fault = Reset | Status | Delay | Drip | Truncate | CorruptManifest
_BODY_FAULTS = (Drip, Truncate, CorruptManifest)
"""Faults of an answer's body: a HEAD request (no body) never matches them."""


def kind(fault: Fault) -> str:
    """A short name of the fault for records and test ids: `reset`, `503`, `delay`, ..."""
    if isinstance(fault, Status):
        return str(fault.status)
    return {
        Reset: "reset",
        Delay: "delay",
        Drip: "drip",
        Truncate: "truncate",
        CorruptManifest: "corrupt-manifest",
    }[type(fault)]


@dataclasses.dataclass
class Rule:
    """Which requests get `fault`: `method` (None: any), `path` (a regular expression searched
    in the path with its query), `headers` (name -> a substring its value must hold), for the
    first `times` of them (None: all)."""

    fault: Fault
    method: str | None = None
    path: str = ""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    times: int | None = 1
    hits: int = 0
    """How many requests it answered so far."""

    def matches(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if method == "HEAD" and isinstance(self.fault, _BODY_FAULTS):
            return False  # no body to cut, drip or change: the fault would not happen
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path and re.search(self.path, path) is None:
            return False
        return all(
            needle.lower() in (headers.get(name.lower()) or "").lower()
            for name, needle in self.headers.items()
        )

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times


# -- the record ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One request as the proxy handled it."""

    time: float
    """`time.monotonic()` when the request arrived."""
    method: str
    path: str
    """The path with its query."""
    user_agent: str
    status: int
    """The status sent (0: none, the connection was reset)."""
    fault: str | None
    """`kind()` of the fault applied, None when forwarded untouched."""
    retry_after: float | None = None
    """The `Retry-After` the answer carried (seconds), if any."""
    answered: float = 0.0
    """`time.monotonic()` when the answer's headers left."""

    @property
    def injected(self) -> bool:
        return self.fault is not None


@dataclasses.dataclass(frozen=True)
class Violation:
    """A retry that came before the `Retry-After` the proxy had given had passed."""

    method: str
    path: str
    retry_after: float
    waited: float

    def __str__(self) -> str:
        return (
            f"{self.method} {self.path}: came again after {self.waited:.3f}s,"
            f" Retry-After said {self.retry_after:g}s"
        )


def violations(exchanges: list[Exchange]) -> list[Violation]:
    """For every answer with `Retry-After`, the next request of the same method, path and
    User-Agent: a violation when it arrived sooner than `Retry-After` after the answer left."""
    found: list[Violation] = []
    for index, told in enumerate(exchanges):
        if told.retry_after is None:
            continue
        key = (told.method, told.path, told.user_agent)
        following = (e for e in exchanges[index + 1 :] if (e.method, e.path, e.user_agent) == key)
        retry = next(following, None)
        if retry is None:
            continue
        waited = retry.time - told.answered
        if waited < told.retry_after:
            found.append(Violation(told.method, told.path, told.retry_after, waited))
    return found


# -- the proxy -----------------------------------------------------------------------------------


_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


class FaultProxy:
    """The proxy to `upstream`; `start()`/`stop()` or `with`; `host` and `url` once started."""

    def __init__(
        self,
        upstream: str,
        *,
        name: str = "fault-proxy",
        tls: ssl.SSLContext | None = None,
        upstream_tls: ssl.SSLContext | None = None,
        upstream_timeout: float = 60.0,
    ) -> None:
        self.upstream = upstream
        self.name = name
        self.tls = tls
        self.upstream_tls = upstream_tls
        self.upstream_timeout = upstream_timeout
        self._rules: list[Rule] = []
        self._exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = httpserver.LoopbackServer(name)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._http.start(type("Handler", (_Handler,), {"owner": self}), tls=self.tls)

    def stop(self) -> None:
        self._stopping.set()
        self._http.stop()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._http.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://{self.host}"

    # -- rules and records -----------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        """Apply `fault` to requests matching `rule` (checked in the order added)."""
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail_next(self, count: int, *, status: int, retry_after: str | int | None = None) -> None:
        """Answer the next `count` requests, whatever they are, with `status`."""
        seconds = None if retry_after is None else float(retry_after)
        self.add(Rule(Status(status, retry_after=seconds), times=count))

    def clear(self) -> None:
        """Drop every rule (the faults stop; the records stay)."""
        with self._lock:
            self._rules.clear()

    def reset(self) -> None:
        """Drop every rule and every record."""
        with self._lock:
            self._rules.clear()
            self._exchanges.clear()

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    recorded = exchanges

    def injected(self) -> list[Exchange]:
        return [e for e in self.exchanges() if e.injected]

    def violations(self) -> list[Violation]:
        return violations(self.exchanges())

    def _take(self, method: str, path: str, headers: Mapping[str, str]) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, headers):
                    rule.hits += 1
                    return rule.fault
        return None

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def _connect(self) -> http.client.HTTPConnection:
        host, _, port = self.upstream.rpartition(":")
        if self.upstream_tls is not None:
            return http.client.HTTPSConnection(
                host, int(port), timeout=self.upstream_timeout, context=self.upstream_tls
            )
        return http.client.HTTPConnection(host, int(port), timeout=self.upstream_timeout)


@dataclasses.dataclass
class _Upstream:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `exchanges()` is the log."""

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

    # -- one request -----------------------------------------------------------------------

    def _handle(self) -> None:
        arrived = time.monotonic()
        body = self._body()
        lowered = {k.lower(): v for k, v in self.headers.items()}
        fault = self.owner._take(self.command, self.path, lowered)
        record = Exchange(arrived, self.command, self.path, lowered.get("user-agent", ""), 0, None)
        if fault is not None:
            record = dataclasses.replace(record, fault=kind(fault))
        try:
            if isinstance(fault, Reset):
                self.owner._record(record)
                self._reset()
                return
            if isinstance(fault, Status):
                self._answer_status(fault, record)
                return
            if isinstance(fault, Delay) and self.owner._stopping.wait(fault.seconds):
                return
            upstream = self._forward(body)
            if upstream is None:
                self.owner._record(dataclasses.replace(record, status=502, answered=arrived))
                self.send_error(502)
                return
            if isinstance(fault, CorruptManifest):
                upstream.body = _reindent(upstream.body)
            answered = time.monotonic()
            self.owner._record(
                dataclasses.replace(record, status=upstream.status, answered=answered)
            )
            self._relay(upstream, fault)
        except OSError:  # the client went away (a time-out on its side): nothing to answer
            self.close_connection = True

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

    def _forward(self, body: bytes) -> _Upstream | None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers.pop("Content-Length", None)
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        connection = self.owner._connect()
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()
        return _Upstream(response.status, response.reason, response.getheaders(), data)

    def _answer_status(self, fault: Status, record: Exchange) -> None:
        payload = json.dumps(
            {
                "errors": [{"code": "UNAVAILABLE", "message": "injected by FaultProxy"}],
                "error": {"code": "InjectedFault", "message": "injected by FaultProxy"},
            }
        ).encode()
        self.send_response(fault.status)
        if fault.retry_after is not None:
            value = fault.retry_after
            self.send_header("Retry-After", str(int(value)) if value.is_integer() else f"{value:g}")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        # Recorded before the headers leave: a HEAD's answer is complete with them, and a
        # client that gets it can retry (and the test read the records) before a record made
        # after the send exists.
        self.owner._record(
            dataclasses.replace(
                record, status=fault.status, retry_after=fault.retry_after,
                answered=time.monotonic(),
            )
        )  # fmt: skip
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _relay(self, upstream: _Upstream, fault: Fault | None) -> None:
        self.send_response(upstream.status, upstream.reason)
        for key, value in upstream.headers:
            if key.lower() in _HOP_BY_HOP or key.lower() in ("content-length", "date", "server"):
                continue
            self.send_header(key, value)
        declared = {k.lower(): v for k, v in upstream.headers}.get("content-length")
        if self.command == "HEAD":
            if declared is not None:
                self.send_header("Content-Length", declared)
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(upstream.body)))
        self.end_headers()
        if isinstance(fault, Truncate):
            self.wfile.write(upstream.body[: int(len(upstream.body) * fault.keep)])
            self.wfile.flush()
            self.close_connection = True
            self._reset()
            return
        if isinstance(fault, Drip):
            for index in range(len(upstream.body)):
                self.wfile.write(upstream.body[index : index + 1])
                self.wfile.flush()
                if self.owner._stopping.wait(fault.interval):
                    self.close_connection = True
                    return
            return
        self.wfile.write(upstream.body)

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): the client reads a reset, not an answer."""
        self.close_connection = True
        raw = self.connection
        try:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if isinstance(raw, ssl.SSLSocket):  # no TLS close_notify: a plain reset
                raw = socket.socket(fileno=raw.detach())
            raw.close()
        except OSError:
            pass


def _reindent(body: bytes) -> bytes:
    """The same JSON document in other bytes (what a digest then fails to match)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body + b"\n"
    return json.dumps(document, indent=1).encode() + b"\n"
