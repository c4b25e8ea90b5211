"""What the hosting emulators (`tests.env.github`, `tests.env.azure_repos`) share around their
answers: the lifecycle (`start`/`stop`, `with`, the port of a `tests.env.httpserver` loopback
server), the record of every request (`Request`, `requests`), the faults `fail_next` queues, and
the HTTP handler that hands each request to the emulator's `answer` and sends what it returns.

Each emulator keeps its own routes, authentication, bodies and error shapes.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar

from tests.env import httpserver
from tests.env.gitserver import GitServer

__all__ = ["Emulator", "Fault", "Handler", "Request", "parse_json", "split_target"]


@dataclasses.dataclass(frozen=True)
class Request:
    """One request as the emulator saw it and answered it (never with its credentials)."""

    method: str
    path: str
    """The URL path as sent, without the query."""
    query: Mapping[str, str]
    path_template: str | None
    """The description's path template the path matched; None: no such path."""
    status: int
    request_json: Any
    """The body, parsed; None when there was none or it was not JSON (`malformed`)."""
    response_json: Any
    """The answer's JSON; None for a body that is not JSON."""
    time: float
    """`time.monotonic()` at arrival."""
    fault: bool = False
    """Answered by `fail_next`."""
    malformed: bool = False
    """The body was not JSON."""
    user_agent: str | None = None


@dataclasses.dataclass
class Fault:
    """A failure `fail_next` queued: `status`, `Retry-After`, how many requests it has left."""

    status: int
    retry_after: int | None
    remaining: int


def split_target(target: str) -> tuple[str, dict[str, str]]:
    """A request target's path and its query (the last value of each name)."""
    url = urllib.parse.urlsplit(target)
    query = {key: values[-1] for key, values in urllib.parse.parse_qs(url.query).items()}
    return url.path, query


def parse_json(raw: bytes) -> tuple[Any, bool]:
    """A request body parsed (None when empty), and whether it was not JSON."""
    if not raw.strip():
        return None, False
    try:
        return json.loads(raw), False
    except ValueError:
        return None, True


R = TypeVar("R", bound=Request)


class Emulator(Generic[R]):
    """Serves `git`'s repositories once started (`start()`/`stop()`, or `with`, which is what the
    emulators' `running` is): each request goes to `answer`. Only `token` is accepted; it belongs
    to `user`."""

    handler: ClassVar[type[Handler]]

    def __init__(self, name: str, git: GitServer, *, token: str, user: str) -> None:
        self.git = git
        self.token = token
        self.user = user
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._requests: list[R] = []
        self._http = httpserver.LoopbackServer(name)

    def start(self) -> None:
        """Serve on 127.0.0.1 and a free port, in a thread."""
        self._http.start(type("Handler", (self.handler,), {"owner": self}))

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._http.port

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """Answer one request (status, body, headers) and record it."""
        raise NotImplementedError

    # -- faults and records ------------------------------------------------------------------

    def fail_next(self, status: int, *, retry_after: int | None = None, times: int = 1) -> None:
        """Answer the next `times` authenticated requests with `status` as the host fails (a
        rate limit with `Retry-After: retry_after` when given, or a server error)."""
        with self._lock:
            self._faults.append(Fault(status, retry_after, times))

    def _take_fault(self) -> Fault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._faults.pop(0)
        return fault

    @property
    def requests(self) -> list[R]:
        """Every request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()


class Handler(http.server.BaseHTTPRequestHandler):
    """Hands every request to `owner.answer` (set on a subclass) and sends its answer."""

    owner: Emulator[Any]
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the owner records requests instead."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        status, data, out = self.owner.answer(self.command, self.path, headers, raw)
        self.send_response(status)
        for key, value in out:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
