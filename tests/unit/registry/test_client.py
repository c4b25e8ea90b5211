"""Protocol edges of controller.registry.client that a real registry will not produce on demand.

httpx.MockTransport plays the registry; sleeping and the clock are simulated, so retry and
expiry logic is checked without waiting. Everything a real registry can do is tested against
one in tests/e2e/test_registry_client.py.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from controller import backoff
from controller.registry import auth, client, contents, reference, tokens
from tests import counters

SECRET = "pa55-w0rd-" + "x" * 8
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": client.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "c" * 64,
            "size": 2,
        },
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()

Handler = Callable[[httpx.Request], httpx.Response]


class Harness:
    """A client on a MockTransport, with recorded requests and sleeps, and the request metrics
    it reported."""

    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.moved = counters.Moved()
        self.now = 1000.0

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.now += seconds

        kwargs.setdefault("max_attempts", 4)
        self.client = client.RegistryClient(
            transport=httpx.MockTransport(record),
            sleep=sleep,
            clock=lambda: self.now,
            rng=random.Random(7),  # noqa: S311 - jitter, seeded for repeatability
            **kwargs,
        )

    def reported(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(requests, failures) counted per (operation, status class) since the harness began."""
        labels = ("operation", "status_class")
        requests = self.moved.counts("ade_runner_registry_requests_total", *labels)
        failures = self.moved.counts("ade_runner_registry_request_errors_total", *labels)
        return {(op, cls): (n, failures.get((op, cls), 0.0)) for (op, cls), n in requests.items()}


def manifest_response(request: httpx.Request, *, digest: bool = True) -> httpx.Response:
    headers = {"Content-Type": client.OCI_MANIFEST}
    if digest:
        headers["Docker-Content-Digest"] = MANIFEST_DIGEST
    body = b"" if request.method == "HEAD" else MANIFEST
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(MANIFEST))
    return httpx.Response(200, headers=headers, content=body)


REF = reference.parse("registry.example.com/ade/runner:v1")
LOCAL = reference.parse("127.0.0.1:5000/ade/runner:v1")


# -- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        (email.utils.formatdate(1030.0, usegmt=True), 30.0),
        (email.utils.formatdate(900.0, usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert client.parse_retry_after(value, now=1000.0) == expected


def test_backoff_grows_is_jittered_capped_and_honours_retry_after() -> None:
    """The registry client's numbers in `controller.backoff` (its own table is in test_backoff)."""
    rng = random.Random(1)  # noqa: S311 - jitter, seeded for repeatability

    def delay(attempt: int, retry_after: float | None = None) -> float:
        return backoff.delay(attempt, base=0.5, cap=8.0, jitter=True, at_least=retry_after, rng=rng)

    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 8.0), (500, 8.0)]:
        delays = [delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1, "jittered"
    assert delay(1, retry_after=7.0) == 7.0
    assert delay(5, retry_after=0.1) >= 4.0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(200, False), (401, False), (404, False), (408, True), (429, True), (500, True)],
        *[(501, False), (502, True), (503, True), (504, True), (505, False), (599, True)],
    ],
)
def test_is_retryable(status: int, retryable: bool) -> None:
    assert client.is_retryable(status) is retryable


@pytest.mark.parametrize(
    ("host", "plain"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost:5000", True),
        ("LOCALHOST", True),
        ("[::1]:5000", True),
        ("registry.internal:5000", True),
        ("registry.example.com", False),
        ("10.0.0.1:5000", False),
    ],
)
def test_plain_http_hosts(host: str, plain: bool) -> None:
    assert client.is_plain_http_host(host, frozenset({"registry.internal:5000"})) is plain


def test_platform_matching() -> None:
    arm64 = client.Platform("linux", "arm64", "v8")
    assert arm64.matches(client.Platform.parse("linux/arm64"))
    assert client.Platform("linux", "arm64").matches(client.Platform.parse("linux/arm64/v8"))
    assert client.Platform("linux", "aarch64").matches(client.Platform.parse("linux/arm64"))
    assert client.Platform("linux", "arm").matches(client.Platform.parse("linux/arm/v7"))
    assert not client.Platform("linux", "arm", "v6").matches(client.Platform.parse("linux/arm"))
    assert not client.Platform("unknown", "unknown").matches(client.Platform.parse("linux/amd64"))
    with pytest.raises(ValueError, match="not a platform"):
        client.Platform.parse("linux")


def test_parse_manifest_refuses_schema1_and_unknown_types() -> None:
    descriptor = client.Descriptor("sha256:" + "a" * 64, "", 10)
    with pytest.raises(ValueError, match="schema 1"):
        client.parse_manifest(b'{"schemaVersion": 1}', ref=REF, descriptor=descriptor)
    with pytest.raises(ValueError, match="unsupported"):
        client.parse_manifest(
            b'{"schemaVersion": 2}',
            ref=REF,
            descriptor=client.Descriptor(descriptor.digest, "application/x-thing", 10),
        )
    with pytest.raises(ValueError, match="not a valid digest"):
        client.parse_manifest(
            b'{"schemaVersion":2,"manifests":[{"digest":"md5:x","mediaType":"a","size":1}]}',
            ref=REF,
            descriptor=descriptor,
        )


# -- retries -----------------------------------------------------------------------------------


async def test_429_waits_retry_after_then_succeeds() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "7"})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or manifest_response(request)

    harness = Harness(handler)
    async with harness.client as registry_client:
        found = await registry_client.resolve(ref=LOCAL)
    assert found.digest == MANIFEST_DIGEST
    assert len(harness.sleeps) == 1
    assert harness.sleeps[0] >= 7.0
    assert harness.reported() == {("manifest", "4xx"): (1, 1), ("manifest", "2xx"): (1, 0)}


async def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    answers = iter([httpx.Response(503, headers={"Retry-After": when})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or manifest_response(request)

    harness = Harness(handler)
    async with harness.client as registry_client:
        await registry_client.resolve(ref=LOCAL)
    assert 18.0 <= harness.sleeps[0] <= 21.0


async def test_connection_errors_are_retried_with_growing_backoff() -> None:
    failures = iter(range(2))

    def handler(request: httpx.Request) -> httpx.Response:
        if next(failures, None) is not None:
            raise httpx.ConnectError("refused", request=request)
        return manifest_response(request)

    harness = Harness(handler, backoff=1.0)
    async with harness.client as registry_client:
        await registry_client.resolve(ref=LOCAL)
    assert len(harness.sleeps) == 2
    assert 0.5 <= harness.sleeps[0] <= 1.0
    assert 1.0 <= harness.sleeps[1] <= 2.0
    assert harness.reported() == {("manifest", "error"): (2, 2), ("manifest", "2xx"): (1, 0)}


async def test_exhausted_retries_raise_unavailable_with_the_last_status() -> None:
    harness = Harness(lambda request: httpx.Response(502), max_attempts=3)
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryUnavailable) as caught:
            await registry_client.resolve(ref=LOCAL)
    assert (caught.value.status, caught.value.attempts) == (502, 3)
    assert len(harness.requests) == 3
    assert len(harness.sleeps) == 2, "no sleep after the last attempt"
    assert harness.reported() == {("manifest", "5xx"): (3, 3)}


async def test_connection_refused_until_the_end_has_no_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    harness = Harness(handler, max_attempts=2)
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryUnavailable) as caught:
            await registry_client.get_manifest(ref=LOCAL)
    assert caught.value.status is None
    assert "ConnectTimeout" in str(caught.value)


async def test_a_retry_after_beyond_the_cap_is_returned_not_slept() -> None:
    harness = Harness(lambda r: httpx.Response(429, headers={"Retry-After": "600"}))
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryUnavailable) as caught:
            await registry_client.resolve(ref=LOCAL)
    assert caught.value.retry_after == 600.0
    assert harness.sleeps == []
    assert len(harness.requests) == 1


async def test_501_is_not_retried() -> None:
    harness = Harness(lambda r: httpx.Response(501))
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryProtocolError) as caught:
            await registry_client.get_manifest(ref=LOCAL)
    assert caught.value.status == 501
    assert len(harness.requests) == 1


# -- authentication ----------------------------------------------------------------------------


def bearer_registry(
    *, token_body: Callable[[int], dict[str, Any]], realm: str = "https://auth.example.com/token"
) -> tuple[Handler, list[str]]:
    """A registry that wants `Bearer t<n>` and a token service that hands out t1, t2, ..."""
    issued: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example.com":
            issued.append(request.headers.get("Authorization", ""))
            return httpx.Response(200, json=token_body(len(issued)))
        if request.headers.get("Authorization", "").startswith("Bearer t"):
            return manifest_response(request)
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="registry.example.com"'},
        )

    return handler, issued


async def test_bearer_tokens_are_cached_until_they_expire() -> None:
    handler, issued = bearer_registry(token_body=lambda n: {"token": f"t{n}", "expires_in": 300})
    credentials = {"registry.example.com": auth.Credentials(username="u", password=SECRET)}
    harness = Harness(handler, credentials=credentials)
    async with harness.client as registry_client:
        await registry_client.resolve(ref=REF)
        await registry_client.resolve(ref=REF)
        assert len(issued) == 1
        harness.now += 280  # past 90% of the lifetime: renewed early
        await registry_client.resolve(ref=REF)
    assert len(issued) == 2
    assert issued[0] == "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()
    token_requests = [r for r in harness.requests if r.url.host == "auth.example.com"]
    assert token_requests[0].url.params.get_list("scope") == ["repository:ade/runner:pull"]
    assert token_requests[0].url.params["service"] == "registry.example.com"
    registry_requests = [r for r in harness.requests if r.url.host != "auth.example.com"]
    assert [r.headers.get("Authorization") for r in registry_requests] == [
        None,
        "Bearer t1",
        "Bearer t1",
        "Bearer t2",
    ], "the first 401 teaches the challenge; later requests carry a token from the start"
    assert all(r.url.scheme == "https" for r in harness.requests)


async def test_clients_sharing_a_store_share_tokens_only_per_credentials() -> None:
    """The operator's clients (one per lookup) share one `TokenStore`: a later client sends the
    token at once, with no 401 and no token request; a client with other credentials, or none,
    fetches its own and never sends another's."""
    handler, issued = bearer_registry(token_body=lambda n: {"token": f"t{n}", "expires_in": 300})
    store = client.TokenStore()
    alice = {"registry.example.com": auth.Credentials(username="alice", password=SECRET)}
    bob = {"registry.example.com": auth.Credentials(username="bob", password=SECRET)}
    sent: list[tuple[str, str | None]] = []
    for who, credentials in (("alice", alice), ("alice", alice), ("bob", bob), ("nobody", None)):
        harness = Harness(handler, credentials=credentials, shared=store)
        async with harness.client as registry_client:
            await registry_client.resolve(ref=REF)
        sent += [
            (who, r.headers.get("Authorization"))
            for r in harness.requests
            if r.url.host != "auth.example.com"
        ]
    assert sent == [
        ("alice", None),
        ("alice", "Bearer t1"),
        ("alice", "Bearer t1"),  # a new client: the store's challenge and token, at once
        ("bob", "Bearer t2"),  # the challenge is known, the token is bob's own
        ("nobody", "Bearer t3"),
    ]
    assert len(issued) == 3
    assert "t1" not in repr(store)
    assert len(store) == 3


def test_token_store_keeps_the_most_recently_used_and_forgets_refused_ones() -> None:
    store = tokens.TokenStore(max_tokens=2)
    keys = [("realm", "svc", f"repository:r{n}:pull", "") for n in range(3)]
    store.put(keys[0], tokens.Token("a", expires=100.0), now=0.0)
    store.put(keys[1], tokens.Token("b", expires=100.0), now=0.0)
    assert store.get(keys[0], now=1.0) is not None  # used: kept over keys[1]
    store.put(keys[2], tokens.Token("c", expires=100.0), now=1.0)
    assert [store.get(k, now=2.0) is not None for k in keys] == [True, False, True]
    assert store.get(keys[0], now=100.0) is None, "expired"
    store.forget("c")
    assert store.get(keys[2], now=2.0) is None
    assert tokens.fingerprint(None) == ""
    alice = auth.Credentials(username="alice", password=SECRET)
    assert SECRET not in tokens.fingerprint(alice)
    assert len(tokens.fingerprint(alice)) == 64


async def test_content_kept_by_digest_is_read_once_per_credentials() -> None:
    """What a caller asks to keep (a manifest read by digest, a blob) comes from the registry
    once per set of credentials; a tag, content not asked to be kept, and another client's
    credentials always go to the registry."""
    blob = b'{"config": {}}'
    blob_digest = "sha256:" + hashlib.sha256(blob).hexdigest()

    def handler(request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path:
            return httpx.Response(200, content=blob)
        return manifest_response(request)

    kept = client.Contents()
    alice = {"registry.example.com": auth.Credentials(username="alice", password=SECRET)}
    bob = {"registry.example.com": auth.Credentials(username="bob", password=SECRET)}
    pinned = REF.with_digest(MANIFEST_DIGEST)
    read: dict[str, int] = {}
    for who, credentials in (("alice", alice), ("alice", alice), ("bob", bob), ("nobody", None)):
        harness = Harness(handler, credentials=credentials, kept=kept)
        async with harness.client as registry:
            for _ in range(2):
                assert (await registry.get_manifest(ref=pinned, keep=True)).digest == (
                    MANIFEST_DIGEST
                )
                assert await registry.get_blob(ref=REF, digest=blob_digest, keep=True) == blob
            await registry.get_manifest(ref=REF, keep=True)  # a tag: never kept
            await registry.get_manifest(ref=pinned)  # not asked to keep
            await registry.get_blob(ref=REF, digest=blob_digest)
        read[who] = read.get(who, 0) + len(harness.requests)
    assert read == {"alice": 2 + 3 + 3, "bob": 2 + 3, "nobody": 2 + 3}
    assert len(kept) == 6, "a manifest and a blob per credentials"
    assert SECRET not in repr(kept)


def test_contents_keep_the_most_recently_used_and_nothing_large() -> None:
    kept = contents.Contents(max_entries=2)
    keys = [("registry", "repo", f"sha256:{n}", "") for n in range(3)]
    kept.put(keys[0], b"a", size=1)
    kept.put(keys[1], b"b", size=1)
    assert kept.get(keys[0]) == b"a"  # used: kept over keys[1]
    kept.put(keys[2], b"c", size=1)
    assert [kept.get(k) for k in keys] == [b"a", None, b"c"]
    kept.put(keys[1], b"large", size=contents.MAX_ENTRY_BYTES + 1)
    assert kept.get(keys[1]) is None


async def test_access_token_without_expiry_lives_sixty_seconds() -> None:
    handler, issued = bearer_registry(token_body=lambda n: {"access_token": f"t{n}"})
    harness = Harness(handler)
    async with harness.client as registry_client:
        await registry_client.resolve(ref=REF)
        harness.now += 50
        await registry_client.resolve(ref=REF)
        assert len(issued) == 1
        harness.now += 10
        await registry_client.resolve(ref=REF)
    assert issued == ["", ""], "anonymous: no Authorization to the token service"


async def test_identity_token_is_exchanged_with_a_post() -> None:
    posted: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example.com":
            assert request.method == "POST"
            assert "Authorization" not in request.headers
            posted.append(urllib.parse.parse_qs(request.content.decode()))
            return httpx.Response(200, json={"access_token": "t1"})
        if request.headers.get("Authorization") == "Bearer t1":
            return manifest_response(request)
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.com/t",service=s'}
        )

    credentials = auth.CredentialStore(
        {"registry.example.com": auth.Credentials(username="0000", identity_token=SECRET)}
    )
    harness = Harness(handler, credentials=credentials.lookup)
    async with harness.client as registry_client:
        await registry_client.resolve(ref=REF)
    assert posted[0]["grant_type"] == ["refresh_token"]
    assert posted[0]["refresh_token"] == [SECRET]
    assert posted[0]["scope"] == ["repository:ade/runner:pull"]


async def test_basic_challenge_sends_credentials_and_a_second_401_is_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        good = "Basic " + base64.b64encode(b"u:right").decode()
        if request.headers.get("Authorization") == good:
            return manifest_response(request)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    right = {"registry.example.com": auth.Credentials(username="u", password="right")}
    harness = Harness(handler, credentials=right)
    async with harness.client as registry_client:
        assert (await registry_client.resolve(ref=REF)).digest == MANIFEST_DIGEST

    wrong = {"registry.example.com": auth.Credentials(username="u", password=SECRET)}
    harness = Harness(handler, credentials=wrong)
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryAuthError) as caught:
            await registry_client.resolve(ref=REF)
    assert len(harness.requests) == 2
    assert SECRET not in str(caught.value)
    assert "registry.example.com" in str(caught.value)
    assert caught.value.action == "pull"


async def test_403_is_an_auth_error_at_once() -> None:
    harness = Harness(
        lambda r: httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "no"}]})
    )
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryAuthError) as caught:
            await registry_client.get_manifest(ref=REF)
    assert caught.value.status == 403
    assert "DENIED" in str(caught.value)
    assert len(harness.requests) == 1


async def test_token_service_refusal_names_the_registry_not_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example.com":
            return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "x"}]})
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.com/t"'}
        )

    credentials = {"registry.example.com": auth.Credentials(username="u", password=SECRET)}
    harness = Harness(handler, credentials=credentials)
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryAuthError) as caught:
            await registry_client.resolve(ref=REF)
    message = str(caught.value)
    assert "token service" in message
    assert "ade/runner" in message
    assert SECRET not in message
    assert base64.b64encode(f"u:{SECRET}".encode()).decode() not in message


async def test_credentials_are_never_sent_to_a_plain_http_realm() -> None:
    handler, issued = bearer_registry(
        token_body=lambda n: {"token": f"t{n}"}, realm="http://auth.example.com/token"
    )
    credentials = {"registry.example.com": auth.Credentials(username="u", password=SECRET)}
    harness = Harness(handler, credentials=credentials)
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryProtocolError, match="plain HTTP"):
            await registry_client.resolve(ref=REF)
    assert issued == []


async def test_anonymous_mode_sends_no_credentials() -> None:
    handler, issued = bearer_registry(token_body=lambda n: {"token": f"t{n}"})
    credentials = {"registry.example.com": auth.Credentials(username="u", password=SECRET)}
    harness = Harness(handler, credentials=credentials, anonymous=True)
    async with harness.client as registry_client:
        await registry_client.resolve(ref=REF)
    assert issued == [""]
    assert SECRET not in repr(registry_client)


async def test_docker_hub_goes_to_its_endpoint_with_its_credentials() -> None:
    handler, issued = bearer_registry(token_body=lambda n: {"token": f"t{n}"})
    store = auth.parse_docker_config(
        {"auths": {"https://index.docker.io/v1/": {"username": "hub", "password": SECRET}}}
    )
    harness = Harness(handler, credentials=store)
    async with harness.client as registry_client:
        await registry_client.resolve(ref=reference.parse("alpine"))
    first = harness.requests[0]
    assert str(first.url) == "https://registry-1.docker.io/v2/library/alpine/manifests/latest"
    assert issued[0].startswith("Basic ")


# -- manifests and blobs -----------------------------------------------------------------------


async def test_resolve_falls_back_to_get_without_a_digest_header() -> None:
    harness = Harness(lambda request: manifest_response(request, digest=False))
    async with harness.client as registry_client:
        found = await registry_client.resolve(ref=LOCAL)
    assert found.digest == MANIFEST_DIGEST
    assert found.size == len(MANIFEST)
    assert [r.method for r in harness.requests] == ["HEAD", "GET"]
    assert harness.requests[0].headers["Accept"] == client.ACCEPT


async def test_a_manifest_that_does_not_match_its_digest_is_refused() -> None:
    other = "sha256:" + "e" * 64

    def handler(request: httpx.Request) -> httpx.Response:
        response = manifest_response(request)
        response.headers["Docker-Content-Digest"] = other
        return response

    harness = Harness(handler)
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryProtocolError, match="expected"):
            await registry_client.get_manifest(ref=LOCAL)
        with pytest.raises(client.RegistryProtocolError, match="expected"):
            await registry_client.get_manifest(ref=LOCAL.with_digest(other))


async def test_an_oversized_manifest_is_refused() -> None:
    harness = Harness(lambda r: httpx.Response(200, content=b" " * (client.MAX_MANIFEST_SIZE + 1)))
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryProtocolError, match="larger than"):
            await registry_client.get_manifest(ref=LOCAL)


async def test_blob_redirects_are_followed_without_the_registry_token() -> None:
    blob = b"layer bytes"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    handler, _ = bearer_registry(token_body=lambda n: {"token": f"t{n}"})

    def storage(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.example.net":
            return httpx.Response(200, content=blob)
        if "/blobs/" in request.url.path and request.headers.get("Authorization"):
            return httpx.Response(
                307, headers={"Location": "https://storage.example.net/b?sig=abc"}
            )
        return handler(request)

    harness = Harness(storage)
    async with harness.client as registry_client:
        assert await registry_client.get_blob(ref=REF, digest=digest) == blob
    redirected = harness.requests[-1]
    assert redirected.url.host == "storage.example.net"
    assert "Authorization" not in redirected.headers


async def test_blob_stream_errors_and_digest_mismatch() -> None:
    digest = "sha256:" + hashlib.sha256(b"expected").hexdigest()
    harness = Harness(lambda r: httpx.Response(200, content=b"tampered"))
    async with harness.client as registry_client:
        with pytest.raises(client.DigestMismatch, match="has digest"):
            await registry_client.get_blob(ref=LOCAL, digest=digest)
        with pytest.raises(reference.InvalidReference):
            await registry_client.get_blob(ref=LOCAL, digest="sha256:nope")
    declared = Harness(
        lambda r: httpx.Response(200, headers={"Content-Length": "99999"}, content=b"x" * 99999)
    )
    async with declared.client as registry_client:
        with pytest.raises(client.RegistryProtocolError, match="larger than 100 bytes"):
            await registry_client.get_blob(ref=LOCAL, digest=digest, max_size=100)


# -- conveniences for the reconcile steps ------------------------------------------------------


def test_credentials_from_docker_config() -> None:
    assert client.credentials_from_docker_config(None) is None
    store = client.credentials_from_docker_config(
        {"auths": {"h.io": {"username": "u", "password": SECRET}}}
    )
    assert store is not None
    assert store.lookup("h.io") == auth.Credentials(username="u", password=SECRET)
    with pytest.raises(auth.DockerConfigError):
        client.credentials_from_docker_config(b"[]")


async def test_references_may_be_given_as_text() -> None:
    harness = Harness(manifest_response, insecure_hosts=frozenset({"REGISTRY.internal:5000"}))
    async with harness.client as registry_client:
        found = await registry_client.resolve(ref="registry.internal:5000/ade/runner:v1")
        manifest = await registry_client.get_manifest(ref=f"127.0.0.1:5000/a@{MANIFEST_DIGEST}")
        with pytest.raises(reference.InvalidReference):
            await registry_client.resolve(ref="Not A Reference")
    assert found.digest == manifest.digest == MANIFEST_DIGEST
    assert (
        str(harness.requests[0].url) == "http://registry.internal:5000/v2/ade/runner/manifests/v1"
    )
    assert harness.requests[1].url.path == f"/v2/a/manifests/{MANIFEST_DIGEST}"


async def test_clients_share_one_tls_context_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading the CA bundle costs tens of milliseconds: not once per client (per reconcile).
    built: list[ssl.SSLContext] = []

    def create_ssl_context() -> ssl.SSLContext:
        built.append(ssl.create_default_context())
        return built[-1]

    monkeypatch.setattr(httpx, "create_ssl_context", create_ssl_context)
    client.default_tls.cache_clear()
    try:
        for _ in range(3):
            await client.RegistryClient().aclose()
        await client.RegistryClient(verify=False).aclose()
        assert len(built) == 1
    finally:
        client.default_tls.cache_clear()


# -- a whole answer within the time-out ---------------------------------------------------------


class _Drip(httpx.AsyncByteStream):
    """A body that comes one byte per `interval`: no single read is ever slow."""

    def __init__(self, body: bytes, interval: float) -> None:
        self.body = body
        self.interval = interval

    async def __aiter__(self) -> Any:
        for index in range(len(self.body)):
            await asyncio.sleep(self.interval)
            yield self.body[index : index + 1]


def _dripping(request: httpx.Request) -> httpx.Response:
    if "/token" in request.url.path:
        return httpx.Response(200, stream=_Drip(b'{"token": "t0k"}', 0.05))
    if request.method == "HEAD":
        return manifest_response(request)
    return httpx.Response(
        200,
        headers={"Content-Type": client.OCI_MANIFEST, "Docker-Content-Digest": MANIFEST_DIGEST},
        stream=_Drip(MANIFEST, 0.05),
    )


async def test_a_token_sent_a_byte_at_a_time_is_a_timeout_not_a_hang() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/token" in request.url.path:
            return _dripping(request)
        if "Authorization" not in request.headers:
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.com/token"'},
            )
        return manifest_response(request)

    harness = Harness(handler, timeout=0.2, max_attempts=2)
    started = time.monotonic()
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryUnavailable) as caught:
            await registry_client.resolve(ref=REF)
    assert time.monotonic() - started < 2.0  # two attempts of 0.2 s, not 16 bytes x 0.05 s each
    assert "no whole answer within 0.2s" in str(caught.value)
    assert "registry.example.com" in str(caught.value)


async def test_a_manifest_body_sent_a_byte_at_a_time_is_a_timeout() -> None:
    harness = Harness(_dripping, timeout=0.2)
    async with harness.client as registry_client:
        with pytest.raises(client.RegistryUnavailable, match=r"took longer than 0\.2s"):
            await registry_client.get_manifest(ref=REF)


async def test_a_manifest_not_its_digest_is_a_digest_mismatch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Type": client.OCI_MANIFEST, "Docker-Content-Digest": MANIFEST_DIGEST},
            content=MANIFEST + b" ",
        )

    async with Harness(handler).client as registry_client:
        with pytest.raises(client.DigestMismatch, match=f"expected {MANIFEST_DIGEST}"):
            await registry_client.get_manifest(ref=REF)


# -- deletion ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (405, "UNSUPPORTED"),  # distribution with `storage.delete.enabled: false`
        (409, "DENIED"),  # a lock (ACR: "write-enabled/delete-enabled: false")
    ],
)
async def test_a_registry_that_forbids_deletion_is_refused_once_not_retried(
    status: int, code: str
) -> None:
    body = {"errors": [{"code": code, "message": "The operation is unsupported."}]}
    harness = Harness(lambda r: httpx.Response(status, json=body))
    digest = "sha256:" + "a" * 64
    async with harness.client as registry_client:
        with pytest.raises(client.DeletionRefused) as caught:
            await registry_client.delete_manifest(ref=f"{LOCAL}@{digest}")
    assert caught.value.status == status
    assert code in str(caught.value)
    assert [(r.method, r.url.path) for r in harness.requests] == [
        ("DELETE", f"/v2/ade/runner/manifests/{digest}")
    ]


async def test_tags_pages_are_followed_through_link() -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        last = request.url.params.get("last")
        if last is None:
            link = '</v2/ade/runner/tags/list?n=2&last=b>; rel="next"'
            return httpx.Response(200, json={"tags": ["a", "b"]}, headers={"Link": link})
        return httpx.Response(200, json={"name": "ade/runner", "tags": ["c"]})

    async with Harness(pages).client as registry_client:
        assert await registry_client.list_tags(ref=LOCAL) == ["a", "b", "c"]
