"""The fault proxy of the test environment (`tests.env.faultproxy`) against a small upstream on
loopback: each fault as a client sees it, rule matching, TLS on both sides, and the pacing check
that the end-to-end fault tests rely on (a retry before `Retry-After` is a violation)."""

from __future__ import annotations

import hashlib
import http.server
import json
import pathlib
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.env import certs, faultproxy, httpserver
from tests.env.faultproxy import (
    CorruptManifest,
    Delay,
    Drip,
    Exchange,
    FaultProxy,
    Reset,
    Rule,
    Status,
    Truncate,
)

MANIFEST = json.dumps({"schemaVersion": 2, "layers": []}, separators=(",", ":")).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = MANIFEST if "manifests" in self.path else f"hello {self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Content-Digest", DIGEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Docker-Content-Digest", DIGEST)
        self.send_header("Content-Length", str(len(MANIFEST)))
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def upstream() -> Iterator[httpserver.LoopbackServer]:
    server = httpserver.LoopbackServer("upstream")
    server.start(_Upstream)
    yield server
    server.stop()


@pytest.fixture
def proxy(upstream: httpserver.LoopbackServer) -> Iterator[FaultProxy]:
    with FaultProxy(f"127.0.0.1:{upstream.port}") as running:
        yield running


def client(timeout: float = 5.0, **kwargs: Any) -> httpx.Client:
    return httpx.Client(timeout=timeout, **kwargs)


def test_forwards_untouched_with_the_host_header_kept(proxy: FaultProxy) -> None:
    with client() as http:
        answer = http.get(f"{proxy.url}/v2/")
        posted = http.post(f"{proxy.url}/echo", content=b"x" * 70_000)
    assert answer.status_code == 200
    assert answer.text == f"hello {proxy.host}"
    assert posted.status_code == 201
    assert posted.content == b"x" * 70_000
    seen = proxy.exchanges()
    assert [(e.method, e.path, e.status, e.fault) for e in seen] == [
        ("GET", "/v2/", 200, None),
        ("POST", "/echo", 201, None),
    ]
    assert not any(e.injected for e in seen)


def test_status_with_retry_after_for_the_first_n_matching(proxy: FaultProxy) -> None:
    rule = proxy.add(Rule(Status(429, retry_after=1.5), method="GET", path="/v2/a", times=2))
    with client() as http:
        statuses = [http.get(f"{proxy.url}/v2/{name}").status_code for name in "aab"]
        third = http.get(f"{proxy.url}/v2/a")
    assert statuses == [429, 429, 200]
    assert third.status_code == 200
    assert rule.hits == 2
    assert rule.spent
    told = proxy.injected()
    assert [e.retry_after for e in told] == [1.5, 1.5]
    assert all(e.fault == "429" for e in told)


def test_a_rule_matches_method_path_and_header(proxy: FaultProxy) -> None:
    proxy.add(Rule(Status(503), method="HEAD", path=r"manifests/v\d", headers={"User-Agent": "op"}))
    with client() as http:
        other_agent = http.head(f"{proxy.url}/v2/r/manifests/v1", headers={"User-Agent": "x"})
        other_method = http.get(f"{proxy.url}/v2/r/manifests/v1", headers={"User-Agent": "op"})
        hit = http.head(f"{proxy.url}/v2/r/manifests/v1", headers={"User-Agent": "my-op/1"})
    assert (other_agent.status_code, other_method.status_code, hit.status_code) == (200, 200, 503)


def test_always_until_cleared(proxy: FaultProxy) -> None:
    proxy.add(Rule(Status(502), times=None))
    with client() as http:
        assert [http.get(f"{proxy.url}/x").status_code for _ in range(4)] == [502] * 4
        proxy.clear()
        assert http.get(f"{proxy.url}/x").status_code == 200
    assert len(proxy.exchanges()) == 5


def test_reset_is_a_connection_error(proxy: FaultProxy) -> None:
    proxy.add(Rule(Reset()))
    with client() as http:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            http.get(f"{proxy.url}/x")
        assert http.get(f"{proxy.url}/x").status_code == 200
    assert [e.status for e in proxy.exchanges()] == [0, 200]


def test_delay_past_the_clients_timeout_is_a_timeout(proxy: FaultProxy) -> None:
    proxy.add(Rule(Delay(1.0)))
    started = time.monotonic()
    with client(timeout=0.3) as http, pytest.raises(httpx.ReadTimeout):
        http.get(f"{proxy.url}/x")
    assert time.monotonic() - started < 1.0


def test_drip_sends_headers_then_the_body_byte_by_byte(proxy: FaultProxy) -> None:
    proxy.add(Rule(Drip(0.05)))
    started = time.monotonic()
    with client() as http:
        answer = http.get(f"{proxy.url}/v2/r/manifests/v1")
    assert answer.content == MANIFEST
    assert time.monotonic() - started >= 0.05 * (len(MANIFEST) - 1)


def test_a_drip_never_trips_a_per_read_timeout(proxy: FaultProxy) -> None:
    """What a client with only a read timeout sees: every byte comes in time, the answer never
    ends (the reason the registry client has a deadline per request)."""
    proxy.add(Rule(Drip(0.1)))
    with client(timeout=0.5) as http, http.stream("GET", f"{proxy.url}/v2/r/manifests/v1") as s:
        started = time.monotonic()
        read = 0
        for chunk in s.iter_raw():
            read += len(chunk)
            if time.monotonic() - started > 1.0:
                break
    assert 0 < read < len(MANIFEST)


def test_truncate_declares_the_whole_body_and_sends_half(proxy: FaultProxy) -> None:
    proxy.add(Rule(Truncate()))
    with client() as http:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            http.get(f"{proxy.url}/v2/r/manifests/v1")
        assert http.get(f"{proxy.url}/v2/r/manifests/v1").content == MANIFEST


def test_corrupt_manifest_keeps_the_digest_header_and_changes_the_bytes(
    proxy: FaultProxy,
) -> None:
    proxy.add(Rule(CorruptManifest(), method="GET", path="/manifests/"))
    with client() as http:
        answer = http.get(f"{proxy.url}/v2/r/manifests/v1")
    assert answer.headers["Docker-Content-Digest"] == DIGEST
    assert json.loads(answer.content) == json.loads(MANIFEST)
    assert "sha256:" + hashlib.sha256(answer.content).hexdigest() != DIGEST
    assert int(answer.headers["Content-Length"]) == len(answer.content)


def test_upstream_down_is_a_502(upstream: httpserver.LoopbackServer) -> None:
    with FaultProxy(f"127.0.0.1:{upstream.port}") as proxy:
        upstream.stop()
        with client() as http:
            assert http.get(f"{proxy.url}/x").status_code == 502


def test_terminates_and_reoriginates_tls(tmp_path: pathlib.Path) -> None:
    pki = certs.Authority(tmp_path / "pki")
    served = pki.issue("upstream", "127.0.0.1", hosts=("127.0.0.1",))
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(served.cert, served.key)
    upstream = httpserver.LoopbackServer("tls-upstream")
    upstream.start(_Upstream, tls=server_tls)
    mine = pki.issue("proxy", "127.0.0.1", hosts=("127.0.0.1",))
    proxy_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    proxy_tls.load_cert_chain(mine.cert, mine.key)
    trust = ssl.create_default_context(cafile=str(pki.cert))
    try:
        with FaultProxy(f"127.0.0.1:{upstream.port}", tls=proxy_tls, upstream_tls=trust) as proxy:
            assert proxy.url.startswith("https://")
            proxy.add(Rule(Reset()))
            with httpx.Client(verify=trust, timeout=5) as http:
                with pytest.raises(
                    (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError)
                ):
                    http.get(f"{proxy.url}/x")
                assert http.get(f"{proxy.url}/x").text == f"hello {proxy.host}"
    finally:
        upstream.stop()


def test_a_retry_that_waited_is_no_violation_one_that_did_not_is(proxy: FaultProxy) -> None:
    proxy.add(Rule(Status(503, retry_after=0.4), path="/a", times=2))
    with client() as http:
        http.get(f"{proxy.url}/a")
        time.sleep(0.5)
        http.get(f"{proxy.url}/a")  # waited: fine (and told to wait again)
        http.get(f"{proxy.url}/a")  # at once: a violation
    (violation,) = proxy.violations()
    assert violation.path == "/a"
    assert violation.retry_after == 0.4
    assert violation.waited < 0.4
    assert "Retry-After said 0.4s" in str(violation)


def _exchange(
    at: float, path: str, *, agent: str = "c", retry_after: float | None = None
) -> Exchange:
    return Exchange(at, "GET", path, agent, 429 if retry_after else 200, None, retry_after, at)


def test_violations_pair_each_answer_with_the_next_same_request() -> None:
    exchanges = [
        _exchange(0.0, "/a", retry_after=2),
        _exchange(0.5, "/b"),  # another path: not the retry
        _exchange(1.0, "/a", agent="someone-else"),  # another client: not the retry
        _exchange(2.5, "/a"),  # the retry, 2.5 s later: fine
        _exchange(3.0, "/c", retry_after=1),
        _exchange(3.2, "/c"),  # 0.2 s: a violation
        _exchange(4.0, "/d", retry_after=1),  # never retried: nothing to say
    ]
    found = faultproxy.violations(exchanges)
    assert [(v.path, v.retry_after, round(v.waited, 3)) for v in found] == [("/c", 1, 0.2)]


def test_a_body_fault_never_takes_a_head_request(proxy: FaultProxy) -> None:
    """A HEAD answer has no body: counting it as truncated would claim a fault never served."""
    rule = proxy.add(Rule(Truncate(), path="/manifests/"))
    with client() as http:
        head = http.head(f"{proxy.url}/v2/r/manifests/v1")
        assert head.status_code == 200
        assert rule.hits == 0
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            http.get(f"{proxy.url}/v2/r/manifests/v1")
    assert rule.hits == 1
