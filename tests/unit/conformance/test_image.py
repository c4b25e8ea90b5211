"""check_image against an in-memory registry (httpx.MockTransport): manifests and indexes,
layers read top-down and streamed in small chunks, gzip and plain tarballs, zstd and broken
layers, hard links, byte counts, and the client's errors. The real registry is in
tests/e2e/test_conformance.py."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import secrets
import tarfile
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from controller.conformance import filesystem as fs
from controller.conformance import image, layers
from controller.conformance.rules import Rule
from controller.registry import client
from tests.env import oci

HOST = "registry.test"
DEPLOY, DELETE = fs.SCRIPTS
SH = "#!/bin/sh\necho ok\n"
CORE_ENTRYPOINT = ["/ade/entrypoint.sh"]

SCRIPTS = [
    oci.directory("scripts"),
    oci.file("scripts/deploy.sh", SH, 0o755),
    oci.file("scripts/delete.sh", SH, 0o755),
]
BASE = [oci.file("usr/bin/tool", secrets.token_bytes(4096), 0o755)]


class FakeRegistry:
    """Serves pushed blobs and manifests, blobs in `chunk`-byte pieces; records GET paths."""

    def __init__(self, chunk: int = 1024) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], oci.Blob] = {}
        self.paths: list[str] = []
        self.chunk = chunk
        self.tamper: dict[str, bytes] = {}

    def push(self, repo: str, built: oci.Built, tag: str = "v1") -> str:
        for blob in (built.config, *(lay.blob for lay in built.layers)):
            self.blobs[blob.digest] = blob.data
        self.manifests[repo, tag] = self.manifests[repo, built.digest] = built.manifest
        return f"{HOST}/{repo}@{built.digest}"

    def push_index(self, repo: str, builts: Sequence[oci.Built], tag: str = "v1") -> str:
        for built in builts:
            self.push(repo, built, built.digest)
        blob = oci.index(builts)
        self.manifests[repo, tag] = self.manifests[repo, blob.digest] = blob
        return f"{HOST}/{repo}:{tag}"

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        repo, _, rest = path.removeprefix("/v2/").rpartition("/")
        repo, kind = repo.rsplit("/", 1)
        if kind == "manifests" and (repo, rest) in self.manifests:
            blob = self.manifests[repo, rest]
            headers = {"Content-Type": blob.media_type, "Docker-Content-Digest": blob.digest}
            return httpx.Response(200, headers=headers, content=blob.data)
        if kind == "blobs" and rest in self.blobs:
            return httpx.Response(
                200, content=self._chunks(self.tamper.get(rest, self.blobs[rest]))
            )
        return httpx.Response(404, json={"errors": [{"code": "UNKNOWN", "message": "no"}]})

    async def _chunks(self, data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), self.chunk):
            yield data[start : start + self.chunk]

    def client(self) -> client.RegistryClient:
        return client.RegistryClient(transport=httpx.MockTransport(self.handle), max_attempts=1)

    def blob_gets(self) -> list[str]:
        return [p.rsplit("/", 1)[1] for p in self.paths if "/blobs/" in p]


def runner(*layer_entries: Sequence[oci.Entry], **kwargs: Any) -> oci.Built:
    kwargs.setdefault("entrypoint", CORE_ENTRYPOINT)
    return oci.build(oci.Image(layers=list(layer_entries), **kwargs))


def raw_layer(media_type: str, data: bytes) -> oci.Layer:
    return oci.Layer(oci.Blob(media_type, data), oci.sha256(data))


def assemble(layer_list: Sequence[oci.Layer], entrypoint: list[str] | None) -> oci.Built:
    """An image from ready-made layers (hard links, zstd, garbage: what oci.build won't make)."""
    settings = {"Entrypoint": entrypoint} if entrypoint else {}
    config = oci.Blob(
        oci.OCI_CONFIG,
        json.dumps({"os": "linux", "architecture": "amd64", "config": settings}).encode(),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [lay.blob.descriptor() for lay in layer_list],
    }
    blob = oci.Blob(oci.OCI_MANIFEST, json.dumps(manifest).encode())
    return oci.Built(config, tuple(layer_list), blob, oci.Platform())


def tar_with_hardlink(target: str, data: bytes, mode: int = 0o755) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(target)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))
        for name in ("scripts/deploy.sh", "scripts/delete.sh"):
            link = tarfile.TarInfo(name)
            link.type, link.linkname, link.mode = tarfile.LNKTYPE, target, mode
            tar.addfile(link)
    return buffer.getvalue()


async def check(registry: FakeRegistry, ref: str, **kwargs: Any) -> image.Report:
    async with registry.client() as registry_client:
        return await image.check_image(client=registry_client, image=ref, **kwargs)


async def test_a_good_runner_reads_only_its_top_layer() -> None:
    registry = FakeRegistry()
    built = runner(BASE, [*BASE, oci.file("etc/x", "y")], SCRIPTS)
    base_ref = registry.push("core", runner(BASE), "4.0")
    ref = registry.push("ade/runner", built)
    report = await check(registry, ref, base=base_ref)
    assert report.findings == ()
    assert report.conformant
    assert report.summary is None
    assert report.image == f"{HOST}/ade/runner@{built.digest}"
    assert (report.layers_read, report.layers_total) == (1, 3)
    assert report.bytes_read == built.config.size + built.layers[2].blob.size
    assert report.total_size == built.config.size + sum(lay.blob.size for lay in built.layers)
    assert {p: d.state for p, d in report.files.items()} == {
        DEPLOY: fs.State.FILE,
        DELETE: fs.State.FILE,
    }
    layer_digests = {lay.blob.digest for lay in built.layers}
    assert [d for d in registry.blob_gets() if d in layer_digests] == [built.layers[2].blob.digest]


async def test_findings_and_the_layers_walked_down_to_decide() -> None:
    registry = FakeRegistry()
    built = runner(
        SCRIPTS,
        [oci.file("scripts/deploy.sh", "#!/bin/sh\r\necho\r\n", 0o644)],
        [oci.whiteout("scripts/delete.sh")],
        entrypoint=["/bin/bash"],
    )
    base_ref = registry.push("core", runner(BASE), "4.0")
    report = await check(registry, registry.push("ade/runner", built), base=base_ref)
    assert [(f.rule, f.path) for f in report.findings] == [
        (Rule.SCRIPT_NOT_EXECUTABLE, DEPLOY),
        (Rule.SCRIPT_CRLF, DEPLOY),
        (Rule.SCRIPT_MISSING, DELETE),
        (Rule.ENTRYPOINT_CHANGED, None),
    ]
    assert report.summary == (
        "ImageNotConformant: /scripts/deploy.sh is not executable (mode 0644);"
        " /scripts/deploy.sh has CRLF line endings (line 1);"
        " /scripts/delete.sh is missing (deleted by a whiteout in layer 3);"
        ' the image sets ["/bin/bash"], but its base image\'s entrypoint is'
        ' ["/ade/entrypoint.sh"] (ADE runs the scripts through it: keep it)'
    )
    assert (report.layers_read, report.layers_total) == (2, 3)


async def test_an_index_is_followed_to_the_platform() -> None:
    registry = FakeRegistry()
    amd = runner(SCRIPTS)
    arm = runner(
        [oci.file("scripts/deploy.sh", SH, 0o644)], platform=oci.Platform("linux", "arm64")
    )
    ref = registry.push_index("ade/multi", [amd, arm])
    assert (await check(registry, ref)).conformant
    report = await check(registry, ref, platform="linux/arm64")
    assert report.image.endswith(arm.digest)
    assert [f.rule for f in report.findings] == [Rule.SCRIPT_NOT_EXECUTABLE, Rule.SCRIPT_MISSING]


async def test_an_uncompressed_layer_is_read() -> None:
    registry = FakeRegistry()
    built = runner(SCRIPTS, compress=False)
    assert built.layers[0].blob.media_type == oci.OCI_LAYER
    assert (await check(registry, registry.push("ade/plain", built))).conformant


async def test_a_zstd_layer_is_a_finding_and_not_downloaded() -> None:
    registry = FakeRegistry()
    zstd = raw_layer("application/vnd.oci.image.layer.v1.tar+zstd", b"\x28\xb5\x2f\xfd" + b"0" * 64)
    built = assemble([oci.layer(SCRIPTS), zstd], CORE_ENTRYPOINT)
    report = await check(registry, registry.push("ade/zstd", built))
    assert [f.rule for f in report.findings] == [Rule.LAYER_UNSUPPORTED]
    assert (
        "has media type application/vnd.oci.image.layer.v1.tar+zstd" in report.findings[0].message
    )
    assert "layer 2 of 2" in report.findings[0].message
    assert report.files == {}
    assert report.bytes_read == built.config.size
    assert zstd.blob.digest not in registry.blob_gets()


async def test_a_zstd_layer_below_the_deciding_one_is_never_reached() -> None:
    registry = FakeRegistry()
    zstd = raw_layer("application/vnd.oci.image.layer.v1.tar+zstd", b"\x28\xb5\x2f\xfd")
    built = assemble([zstd, oci.layer(SCRIPTS)], CORE_ENTRYPOINT)
    assert (await check(registry, registry.push("ade/zstd2", built))).conformant


async def test_a_blob_that_is_not_a_tarball_is_unreadable() -> None:
    registry = FakeRegistry()
    junk = raw_layer(oci.OCI_LAYER_GZIP, gzip.compress(secrets.token_bytes(3000)))
    built = assemble([oci.layer(SCRIPTS), junk], CORE_ENTRYPOINT)
    report = await check(registry, registry.push("ade/junk", built))
    assert [f.rule for f in report.findings] == [Rule.LAYER_UNREADABLE]
    assert "layer 2 of 2" in report.findings[0].message
    assert report.bytes_read == built.config.size + junk.blob.size


async def test_hard_links_are_resolved_by_reading_the_layer_again() -> None:
    registry = FakeRegistry()
    linked = raw_layer(oci.OCI_LAYER_GZIP, gzip.compress(tar_with_hardlink("opt/run.sh", b"x\r\n")))
    built = assemble([linked], CORE_ENTRYPOINT)
    report = await check(registry, registry.push("ade/links", built))
    assert [(f.rule, f.path) for f in report.findings] == [
        (Rule.SCRIPT_CRLF, DEPLOY),
        (Rule.SCRIPT_CRLF, DELETE),
    ]
    assert report.files[DEPLOY].detail == "a hard link to /opt/run.sh"
    assert report.bytes_read == built.config.size + 2 * linked.blob.size
    assert registry.blob_gets().count(linked.blob.digest) == 2


async def test_contents_are_captured_up_to_the_cap() -> None:
    registry = FakeRegistry()
    big = "#!/bin/sh\n" + "# padding\n" * 2000 + "echo\r\n"
    built = runner([*SCRIPTS[:2], oci.file("scripts/delete.sh", big, 0o755)])
    ref = registry.push("ade/big", built)
    capped = await check(registry, ref, max_content=1024)
    assert capped.conformant
    assert capped.files[DELETE].truncated
    assert len(capped.files[DELETE].content or b"") == 1024
    whole = await check(registry, ref)
    assert [f.message for f in whole.findings] == [
        "/scripts/delete.sh has CRLF line endings (line 2002)"
    ]


async def test_a_big_layer_streams_through_in_small_chunks() -> None:
    registry = FakeRegistry(chunk=512)
    noise = [oci.file(f"data/{i}", secrets.token_bytes(20_000)) for i in range(50)]
    built = runner([*noise, *SCRIPTS])
    report = await check(registry, registry.push("ade/chunks", built))
    assert report.conformant
    assert report.bytes_read == built.config.size + built.layers[0].blob.size


async def test_a_damaged_blob_raises_the_clients_digest_error() -> None:
    registry = FakeRegistry()
    built = runner(BASE, SCRIPTS)
    top = built.layers[1].blob
    registry.tamper[top.digest] = bytes([top.data[0] ^ 0xFF]) + top.data[1:]
    with pytest.raises(client.RegistryProtocolError, match=f"blob {top.digest}"):
        await check(registry, registry.push("ade/damaged", built))


async def test_a_missing_blob_is_blob_not_found() -> None:
    registry = FakeRegistry()
    built = runner(BASE, SCRIPTS)
    ref = registry.push("ade/missing", built)
    del registry.blobs[built.layers[1].blob.digest]
    with pytest.raises(client.BlobNotFound):
        await check(registry, ref)


async def test_a_missing_manifest_and_platform() -> None:
    registry = FakeRegistry()
    with pytest.raises(client.ManifestNotFound):
        await check(registry, f"{HOST}/ade/none:v1")
    ref = registry.push_index("ade/amd-only", [runner(SCRIPTS)])
    with pytest.raises(client.PlatformNotFound):
        await check(registry, ref, platform="linux/arm64")


async def test_a_config_that_is_not_json_is_a_protocol_error() -> None:
    registry = FakeRegistry()
    built = runner(SCRIPTS)
    bad = oci.Blob(oci.OCI_CONFIG, b"not json")
    manifest = json.loads(built.manifest.data)
    manifest["config"] = bad.descriptor()
    broken = oci.Built(
        bad, built.layers, oci.Blob(oci.OCI_MANIFEST, json.dumps(manifest).encode()), built.platform
    )
    with pytest.raises(client.RegistryProtocolError, match="is not a JSON object"):
        await check(registry, registry.push("ade/badconfig", broken))


@pytest.mark.parametrize(
    ("media_type", "kind"),
    [
        ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "gzip"),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "gzip"),
        ("application/vnd.oci.image.layer.v1.tar", "none"),
        ("application/vnd.docker.image.rootfs.diff.tar", "none"),
        ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
        ("application/vnd.in-toto+json", None),
    ],
)
def test_layer_compression_from_the_media_type(media_type: str, kind: str | None) -> None:
    assert layers.compression(media_type) == kind


async def test_a_cancelled_check_stops_its_parser_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = FakeRegistry()
    built = runner([oci.file("data", secrets.token_bytes(50_000)), *SCRIPTS])
    ref = registry.push("ade/slow", built)

    async def trickle(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 256):
            await asyncio.sleep(0.005)
            yield data[start : start + 256]

    finished = threading.Event()
    parse = layers._parse

    def watched(*args: Any) -> Any:
        try:
            return parse(*args)
        finally:
            finished.set()

    monkeypatch.setattr(layers, "_parse", watched)
    monkeypatch.setattr(registry, "_chunks", trickle)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(check(registry, ref), timeout=0.1)
    # The parser thread was aborted, not left blocked on the pipe.
    assert await asyncio.to_thread(finished.wait, 5)
