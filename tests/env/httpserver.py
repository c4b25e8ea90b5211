"""One loopback HTTP(S) server in a background thread: the start, stop and port that the test
environment's fake services share (the registry's token server, the registry fault proxy, the
ARM emulator). Each service keeps its own handler; this only runs it. Writes leave at once
(`no_delay`), as from a real server.

With a TLS context, each connection's handshake happens in that connection's thread (not in the
accepting loop), so a client that connects and stalls cannot block the others.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from typing import Any


def no_delay(sock: socket.socket) -> None:
    """Send each write at once (TCP_NODELAY), as real servers do (Go's net/http, nginx): the
    handlers write the headers and the body apart, and with Nagle's algorithm the body waits for
    the client's delayed ACK of the headers, 40 ms on Linux, on every kept-alive request."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        no_delay(sock)
        if self.context is None:
            return sock, address
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address


class LoopbackServer:
    """`start(handler)` serves on 127.0.0.1 and a free port; `stop()` shuts down and joins."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(
        self,
        handler: type[http.server.BaseHTTPRequestHandler],
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        server = _Server(("127.0.0.1", 0), handler, bind_and_activate=False)
        server.context = tls
        server.server_bind()
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        assert self._server is not None, f"{self.name} not started"
        port: int = self._server.server_address[1]
        return port
