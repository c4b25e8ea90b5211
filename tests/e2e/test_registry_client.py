"""The registry client against a real distribution registry behind an ACR-like token server.

Images are pushed with `tests.env.oci` (independent of the client), then read back with
`controller.registry.client`: digests, manifests, indexes, blobs, credentials from a docker
config, anonymous pull behind the switch, and retries proved on recorded request times through
`FaultProxy`.
"""

from __future__ import annotations

import base64
import json
import pathlib
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from controller.registry import auth, client, reference
from tests import counters
from tests.env import kube, oci
from tests.env.registry import FaultProxy, Registry
from tests.env.tokenserver import TokenServer, User

pytestmark = pytest.mark.e2e

READER_PASSWORD = "rd-" + secrets.token_urlsafe(16)
PUSHER_PASSWORD = "pu-" + secrets.token_urlsafe(16)
IDENTITY_TOKEN = "id-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(
        tmp_path_factory.mktemp("token-server"),
        users={
            "pusher": User(PUSHER_PASSWORD, frozenset({"pull", "push", "delete"})),
            "reader": User(READER_PASSWORD, frozenset({"pull"})),
            "00000000-0000-0000-0000-000000000000": User(
                secrets.token_urlsafe(16), frozenset({"pull"}), identity_token=IDENTITY_TOKEN
            ),
        },
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry"), token_server) as running:
        yield running


@pytest.fixture(scope="module")
def pusher(registry: Registry) -> Iterator[oci.Pusher]:
    with oci.Pusher(registry.host, username="pusher", password=PUSHER_PASSWORD) as push:
        yield push


RUNNER = oci.Image(
    layers=[
        [
            oci.directory("scripts"),
            oci.file("scripts/deploy.sh", "#!/bin/sh\necho deploy\n", 0o755),
        ],
        [oci.file("scripts/delete.sh", "#!/bin/sh\necho delete\n", 0o755), oci.whiteout("tmp/x")],
    ],
    entrypoint=["/bin/sh", "-c"],
    cmd=["/scripts/deploy.sh"],
)


@pytest.fixture(scope="module")
def runner_image(pusher: oci.Pusher) -> oci.Built:
    return pusher.push_image("ade/runner", RUNNER, tag="v1")


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(registry.host) as running:
        yield running


def reader(host: str) -> dict[str, auth.Credentials]:
    return {host: auth.Credentials(username="reader", password=READER_PASSWORD)}


def make_client(**kwargs: Any) -> client.RegistryClient:
    """Fast backoff so retry tests take milliseconds unless Retry-After says otherwise."""
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("max_backoff", 0.05)
    kwargs.setdefault("timeout", 10.0)
    return client.RegistryClient(**kwargs)


def ref(host: str, text: str) -> reference.Reference:
    return reference.parse(f"{host}/{text}")


# -- digests and credentials -------------------------------------------------------------------


async def test_resolve_returns_the_pushed_digest(
    registry: Registry, runner_image: oci.Built
) -> None:
    async with make_client(credentials=reader(registry.host)) as registry_client:
        found = await registry_client.resolve(ref=ref(registry.host, "ade/runner:v1"))
    assert found.digest == runner_image.digest
    assert found.media_type == client.OCI_MANIFEST
    assert found.size == runner_image.manifest.size


async def test_credentials_from_a_dockerconfigjson(
    registry: Registry, token_server: TokenServer, runner_image: oci.Built
) -> None:
    payload = json.dumps(
        {
            "auths": {
                f"http://{registry.host}/v2/": {
                    "auth": base64.b64encode(f"reader:{READER_PASSWORD}".encode()).decode()
                },
                "other.example.com": {"username": "x", "password": "y"},
            }
        }
    )
    store = auth.parse_docker_config(payload)
    assert READER_PASSWORD not in repr(store)
    token_server.clear()
    async with make_client(credentials=store.lookup) as registry_client:
        found = await registry_client.resolve(ref=ref(registry.host, "ade/runner:v1"))
        again = await registry_client.resolve(ref=ref(registry.host, "ade/runner:v1"))
    assert found.digest == again.digest == runner_image.digest
    records = token_server.recorded()
    # One token, reused for the second call: tokens are cached per (realm, service, scope).
    assert [(r.user, r.grant, r.status) for r in records] == [("reader", "basic", 200)]
    assert [str(a) for a in records[0].granted] == ["repository:ade/runner:pull"]


async def test_identity_token_uses_the_refresh_token_grant(
    registry: Registry, token_server: TokenServer, runner_image: oci.Built
) -> None:
    store = auth.parse_docker_config(
        {
            "auths": {
                registry.host: {
                    "username": "00000000-0000-0000-0000-000000000000",
                    "identitytoken": IDENTITY_TOKEN,
                }
            }
        }
    )
    assert IDENTITY_TOKEN not in repr(store.lookup(registry.host))
    token_server.clear()
    async with make_client(credentials=store) as registry_client:
        found = await registry_client.resolve(ref=ref(registry.host, "ade/runner:v1"))
    assert found.digest == runner_image.digest
    assert [(r.grant, r.status) for r in token_server.recorded()] == [("refresh_token", 200)]


async def test_wrong_password_is_an_auth_error_without_the_password(
    registry: Registry, token_server: TokenServer, runner_image: oci.Built
) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(12)
    credentials = {registry.host: auth.Credentials(username="reader", password=wrong)}
    token_server.clear()
    async with make_client(credentials=credentials) as registry_client:
        with pytest.raises(client.RegistryAuthError) as caught:
            await registry_client.resolve(ref=ref(registry.host, "ade/runner:v1"))
    error = caught.value
    assert (error.registry, error.repository, error.action) == (registry.host, "ade/runner", "pull")
    assert error.status == 401
    assert not error.anonymous
    for text in (str(error), repr(error), repr(error.args)):
        assert wrong not in text
        assert base64.b64encode(f"reader:{wrong}".encode()).decode() not in text
    assert registry.host in str(error)
    assert "ade/runner" in str(error)
    assert "pull" in str(error)
    records = token_server.recorded()
    assert [(r.user, r.status) for r in records] == [("reader", 401)]
    assert wrong not in repr(records)


async def test_a_user_without_access_to_push_gets_no_push_grant(
    registry: Registry, token_server: TokenServer
) -> None:
    token_server.clear()
    with (
        oci.Pusher(registry.host, username="reader", password=READER_PASSWORD) as denied,
        pytest.raises(oci.PushError),
    ):
        denied.push_image("ade/forbidden", oci.Image(layers=[[oci.file("a", "b")]]), tag="v1")
    granted = [a for r in token_server.recorded() for a in r.granted]
    assert granted
    assert all("push" not in a.actions for a in granted)


# -- anonymous pull ----------------------------------------------------------------------------


def set_anonymous_pull(token_server: TokenServer, enabled: bool, *, token: str) -> int:
    """What the Azure emulator will do: flip the switch through the admin endpoint."""
    request = urllib.request.Request(
        f"{token_server.url}/_admin/anonymous-pull",
        data=json.dumps({"enabled": enabled}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


async def test_anonymous_pull_follows_the_switch(
    registry: Registry, token_server: TokenServer, runner_image: oci.Built
) -> None:
    token_server.set_anonymous_pull(False)
    token_server.clear()
    target = ref(registry.host, "ade/runner:v1")
    try:
        async with make_client(anonymous=True, credentials=reader(registry.host)) as anonymous:
            with pytest.raises(client.RegistryAuthError) as caught:
                await anonymous.resolve(ref=target)
            assert caught.value.anonymous
            assert "anonymous" in str(caught.value)

            assert set_anonymous_pull(token_server, True, token="not-the-token") == 401
            assert not token_server.anonymous_pull
            assert set_anonymous_pull(token_server, True, token=token_server.admin_token) == 200
            assert token_server.anonymous_pull

            # Same client: the refused token is dropped and a new one is fetched.
            found = await anonymous.resolve(ref=target)
            manifest = await anonymous.get_manifest(ref=target, platform="linux/amd64")
    finally:
        token_server.set_anonymous_pull(False)
    assert found.digest == runner_image.digest
    assert manifest.digest == runner_image.digest
    records = token_server.recorded()
    assert {r.user for r in records} == {None}, "anonymous mode never sends credentials"
    assert [str(a) for r in records for a in r.granted] == [
        "repository:ade/runner:",
        "repository:ade/runner:pull",
    ]


# -- not found ---------------------------------------------------------------------------------


async def test_missing_tag_and_repository_are_manifest_not_found(
    registry: Registry, runner_image: oci.Built
) -> None:
    async with make_client(credentials=reader(registry.host)) as registry_client:
        with pytest.raises(client.ManifestNotFound) as caught:
            await registry_client.resolve(ref=ref(registry.host, "ade/runner:no-such-tag"))
        assert caught.value.reference == "no-such-tag"
        with pytest.raises(client.ManifestNotFound) as by_get:
            await registry_client.get_manifest(ref=ref(registry.host, "ade/runner:no-such-tag"))
        assert "MANIFEST_UNKNOWN" in str(by_get.value), "a GET carries the registry's error code"
        with pytest.raises(client.ManifestNotFound) as no_repo:
            await registry_client.get_manifest(ref=ref(registry.host, "ade/no-such-repo:v1"))
        assert no_repo.value.repository == "ade/no-such-repo"  # 2.8 says MANIFEST_UNKNOWN here too
        with pytest.raises(client.BlobNotFound) as blob:
            await registry_client.get_blob(
                ref=ref(registry.host, "ade/runner"), digest=oci.sha256(b"never pushed")
            )
        assert blob.value.digest == oci.sha256(b"never pushed")


# -- retries through the fault proxy -----------------------------------------------------------


async def test_429_retry_waits_at_least_retry_after(
    registry: Registry, proxy: FaultProxy, runner_image: oci.Built
) -> None:
    moved = counters.Moved()
    proxy.fail_next(1, status=429, retry_after=1)
    async with make_client(credentials=reader(proxy.host)) as registry_client:
        found = await registry_client.resolve(ref=ref(proxy.host, "ade/runner:v1"))
    assert found.digest == runner_image.digest
    seen = proxy.recorded()
    assert seen[0].status == 429
    assert seen[0].injected
    assert seen[1].time - seen[0].time >= 1.0, "the retry came before Retry-After"
    assert [r.status for r in seen[1:]] == [401, 200]
    labels = ("operation", "status_class")
    requests = moved.counts("ade_runner_registry_requests_total", *labels)
    failures = moved.counts("ade_runner_registry_request_errors_total", *labels)
    assert {k: n for k, n in requests.items() if k[0] == "manifest"} == {
        ("manifest", "4xx"): 2,  # the 429 and the 401 challenge
        ("manifest", "2xx"): 1,
    }
    assert {k: n for k, n in failures.items() if k[0] == "manifest"} == {("manifest", "4xx"): 1}


async def test_503_is_retried_then_succeeds(
    registry: Registry, proxy: FaultProxy, runner_image: oci.Built
) -> None:
    proxy.fail_next(2, status=503)
    async with make_client(credentials=reader(proxy.host), max_attempts=3) as registry_client:
        manifest = await registry_client.get_manifest(ref=ref(proxy.host, "ade/runner:v1"))
    assert manifest.digest == runner_image.digest
    assert [(r.method, r.status, r.injected) for r in proxy.recorded()] == [
        ("GET", 503, True),
        ("GET", 503, True),
        ("GET", 401, False),
        ("GET", 200, False),
    ]


async def test_503_until_attempts_run_out_is_unavailable(
    registry: Registry, proxy: FaultProxy
) -> None:
    proxy.fail_next(10, status=503)
    async with make_client(credentials=reader(proxy.host), max_attempts=3) as registry_client:
        with pytest.raises(client.RegistryUnavailable) as caught:
            await registry_client.resolve(ref=ref(proxy.host, "ade/runner:v1"))
    assert caught.value.status == 503
    assert caught.value.attempts == 3
    assert len(proxy.recorded()) == 3


async def test_a_long_retry_after_is_handed_to_the_caller(
    registry: Registry, proxy: FaultProxy
) -> None:
    proxy.fail_next(1, status=429, retry_after=3600)
    async with make_client(credentials=reader(proxy.host), max_retry_after=30) as registry_client:
        with pytest.raises(client.RegistryUnavailable) as caught:
            await registry_client.resolve(ref=ref(proxy.host, "ade/runner:v1"))
    assert caught.value.retry_after == 3600
    assert caught.value.status == 429
    # the proxy records an injected answer once it has sent it: the client may have it first
    recorded = kube.wait_for(proxy.recorded, timeout=5, what="the proxy's record of the 429")
    assert len(recorded) == 1, "no in-process wait of an hour, no second request"


async def test_registry_down_is_unavailable(tmp_path: pathlib.Path) -> None:
    plain = Registry(tmp_path / "plain", None)
    plain.start()
    try:
        with oci.Pusher(plain.host) as push:
            built = push.push_image("ade/plain", oci.Image(layers=[[oci.file("x", "y")]]), tag="v1")
        target = ref(plain.host, "ade/plain:v1")
        async with make_client(max_attempts=2) as registry_client:
            assert (await registry_client.resolve(ref=target)).digest == built.digest
            plain.stop()
            with pytest.raises(client.RegistryUnavailable) as caught:
                await registry_client.resolve(ref=target)
    finally:
        plain.cleanup()
    assert caught.value.status is None
    assert caught.value.attempts == 2
    assert plain.host in str(caught.value)


# -- indexes, manifests and blobs --------------------------------------------------------------


@pytest.mark.parametrize("media", ["oci", "docker"])
async def test_index_platform_selection(
    registry: Registry, pusher: oci.Pusher, media: oci.MediaKind
) -> None:
    images = [
        oci.Image(layers=[[oci.file("arch", "amd64")]], media=media),
        oci.Image(
            layers=[[oci.file("arch", "arm64")]],
            platform=oci.Platform("linux", "arm64", "v8"),
            media=media,
        ),
    ]
    index_digest, built = pusher.push_index(f"ade/multi-{media}", images, tag="v1", media=media)
    target = ref(registry.host, f"ade/multi-{media}:v1")
    async with make_client(credentials=reader(registry.host)) as registry_client:
        resolved = await registry_client.resolve(ref=target)
        whole = await registry_client.get_manifest(ref=target)
        arm = await registry_client.get_manifest(ref=target, platform="linux/arm64")
        amd = await registry_client.get_manifest(
            ref=target, platform=client.Platform("linux", "amd64")
        )
        with pytest.raises(client.PlatformNotFound) as missing:
            await registry_client.get_manifest(ref=target, platform="windows/amd64")
    assert resolved.digest == index_digest
    assert isinstance(whole, client.Index)
    assert whole.descriptor.media_type == (oci.OCI_INDEX if media == "oci" else oci.DOCKER_LIST)
    assert [m.digest for m in whole.manifests] == [b.digest for b in built]
    assert arm.digest == built[1].digest
    assert amd.digest == built[0].digest
    assert arm.reference.digest == built[1].digest
    assert arm.layers[0].digest == built[1].layers[0].blob.digest
    assert missing.value.available == ("linux/amd64", "linux/arm64/v8")


async def test_docker_media_type_manifest(registry: Registry, pusher: oci.Pusher) -> None:
    image = oci.Image(layers=[[oci.file("a", "docker")], [oci.file("b", "two")]], media="docker")
    built = pusher.push_image("ade/docker", image, tag="v1")
    async with make_client(credentials=reader(registry.host)) as registry_client:
        manifest = await registry_client.get_manifest(ref=ref(registry.host, "ade/docker:v1"))
    assert isinstance(manifest, client.Manifest)
    assert manifest.digest == built.digest
    assert manifest.descriptor.media_type == oci.DOCKER_MANIFEST
    assert manifest.config.digest == built.config.digest
    assert [layer.media_type for layer in manifest.layers] == [oci.DOCKER_LAYER_GZIP] * 2


async def test_blobs_are_downloaded_and_verified(
    registry: Registry, runner_image: oci.Built
) -> None:
    target = ref(registry.host, "ade/runner:v1")
    async with make_client(credentials=reader(registry.host)) as registry_client:
        manifest = await registry_client.get_manifest(ref=target, platform="linux/amd64")
        config = await registry_client.get_blob(ref=target, digest=manifest.config.digest)
        layer = await registry_client.get_blob(ref=target, digest=manifest.layers[0].digest)
        chunks: list[bytes] = []
        size = await registry_client.copy_blob(
            ref=target, digest=manifest.layers[1].digest, sink=chunks.append
        )
        with pytest.raises(client.RegistryProtocolError) as too_big:
            await registry_client.get_blob(
                ref=target, digest=manifest.layers[0].digest, max_size=10
            )
    assert json.loads(config)["config"]["Entrypoint"] == ["/bin/sh", "-c"]
    assert layer == runner_image.layers[0].blob.data
    assert b"".join(chunks) == runner_image.layers[1].blob.data
    assert size == runner_image.layers[1].blob.size
    assert "larger than 10 bytes" in str(too_big.value)


async def test_a_corrupted_blob_fails_verification(registry: Registry, pusher: oci.Pusher) -> None:
    built = pusher.push_image(
        "ade/corrupt", oci.Image(layers=[[oci.file("data", secrets.token_bytes(64))]]), tag="v1"
    )
    digest = built.layers[0].blob.digest
    stored = registry.blob_path(digest)
    original = stored.read_bytes()
    stored.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
    async with make_client(credentials=reader(registry.host)) as registry_client:
        with pytest.raises(client.RegistryProtocolError) as caught:
            await registry_client.get_blob(ref=ref(registry.host, "ade/corrupt"), digest=digest)
    assert f"blob {digest}" in str(caught.value)
    assert "has digest sha256:" in str(caught.value)


# -- the token server's JWTs as distribution 2.8 checks them ----------------------------------


@pytest.mark.parametrize("key_mode", ["x5c", "kid"])
async def test_distribution_accepts_each_token_key_form_and_checks_the_signature(
    tmp_path: pathlib.Path, key_mode: Any
) -> None:
    """2.8 finds the signing key from an `x5c` chain (verified against `rootcertbundle`) or from
    a libtrust `kid` (a key of a certificate in the bundle); a token signed by another key with
    the same issuer and service is refused, so the signature is really checked."""
    users = {"u": User("p", frozenset({"pull", "push"}))}
    with (
        TokenServer(tmp_path / "ts", users=users, key_mode=key_mode) as server,
        TokenServer(
            tmp_path / "other",
            users=users,
            key_mode=key_mode,
            service=server.service,
            issuer=server.issuer,
        ) as impostor,
        Registry(tmp_path / "registry", server) as checked,
    ):
        with oci.Pusher(checked.host, username="u", password="p") as push:
            built = push.push_image("ade/keys", oci.Image(layers=[[oci.file("k", key_mode)]]))
        credentials = {checked.host: auth.Credentials(username="u", password="p")}
        async with make_client(credentials=credentials) as registry_client:
            found = await registry_client.resolve(ref=ref(checked.host, f"ade/keys@{built.digest}"))
        assert found.digest == built.digest
        assert forged_token_status(impostor, checked, built.digest) == 401


def forged_token_status(impostor: TokenServer, checked: Registry, digest: str) -> int:
    """HEAD a manifest with a token that `impostor` signed; returns the registry's status."""
    basic = "Basic " + base64.b64encode(b"u:p").decode()
    url = f"{impostor.realm}?service={impostor.service}&scope=repository:ade/keys:pull"
    request = urllib.request.Request(url, headers={"Authorization": basic})
    with urllib.request.urlopen(request, timeout=5) as response:
        forged = json.loads(response.read())["access_token"]
    request = urllib.request.Request(
        f"{checked.url}/v2/ade/keys/manifests/{digest}",
        headers={"Authorization": f"Bearer {forged}", "Accept": oci.OCI_MANIFEST},
        method="HEAD",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


# -- retention: tags and deletion --------------------------------------------------------------


def pusher_credentials(host: str) -> dict[str, auth.Credentials]:
    return {host: auth.Credentials(username="pusher", password=PUSHER_PASSWORD)}


async def test_list_tags_follows_every_page(
    registry: Registry, pusher: oci.Pusher, monkeypatch: pytest.MonkeyPatch
) -> None:
    tags = {f"t{index:02d}" for index in range(7)}
    for tag in tags:
        pusher.push_image("ade/paged", oci.Image(labels={"n": tag}), tag=tag)
    monkeypatch.setattr(client, "TAGS_PAGE", 2)  # four pages, joined through `Link`
    async with make_client(credentials=reader(registry.host)) as registry_client:
        assert set(await registry_client.list_tags(ref=ref(registry.host, "ade/paged"))) == tags
        assert await registry_client.list_tags(ref=ref(registry.host, "ade/no-such")) == []


async def test_delete_manifest_by_digest(registry: Registry, pusher: oci.Pusher) -> None:
    built = pusher.push_image("ade/pruned", oci.Image(labels={"x": "1"}), tag="old")
    target = ref(registry.host, f"ade/pruned@{built.digest}")
    async with make_client(credentials=reader(registry.host)) as registry_client:
        with pytest.raises(client.DeletionRefused) as refused:
            await registry_client.delete_manifest(ref=target)  # a reader may not delete
        assert READER_PASSWORD not in str(refused.value)
    assert pusher.manifest_digest("ade/pruned", "old") == built.digest
    async with make_client(credentials=pusher_credentials(registry.host)) as registry_client:
        assert await registry_client.delete_manifest(ref=target) is True
        assert await registry_client.delete_manifest(ref=target) is False  # gone already
        with pytest.raises(ValueError, match="by digest"):
            await registry_client.delete_manifest(ref=ref(registry.host, "ade/pruned:old"))
    assert pusher.manifest_digest("ade/pruned", "old") is None
