"""The conformance check against the real registry (distribution behind the ACR-like token
server): images pushed with `tests.env.oci`, read back layer by layer, top down, with
`controller.conformance.image.check_image` through the product's registry client.

Each broken runner gives its finding; a runner on a 20 MB base layer is decided without reading
that layer (figures printed, and a damaged base blob goes unnoticed while a damaged top blob is
the client's digest error, which proves the layers really come from the registry).
"""

from __future__ import annotations

import secrets
import time
import tracemalloc
import uuid
from collections.abc import Sequence

import pytest

from controller.conformance import filesystem as fs
from controller.conformance import image
from controller.conformance.rules import Rule
from controller.registry import auth, client
from tests.conftest import PUSH_USER, docker_config_json
from tests.env import oci, registry, tokenserver

pytestmark = pytest.mark.e2e

DEPLOY, DELETE = fs.SCRIPTS
ENTRYPOINT = ["/usr/local/bin/entrypoint.sh"]
SH = "#!/bin/sh\necho ok\n"
BASE_LAYER = [
    oci.file("usr/local/bin/entrypoint.sh", '#!/bin/sh\nexec "$@"\n', 0o755),
    oci.file("etc/os-release", "ID=azurelinux\n"),
]
SCRIPTS = [
    oci.directory("scripts"),
    oci.file("scripts/deploy.sh", SH, 0o755),
    oci.file("scripts/delete.sh", SH, 0o755),
]


def repository() -> str:
    return f"conformance/{uuid.uuid4().hex[:10]}"


def push_runner(
    pusher: oci.Pusher,
    repo: str,
    *layers: Sequence[oci.Entry],
    entrypoint: Sequence[str] = ENTRYPOINT,
) -> oci.Built:
    """A runner image: the stand-in core layer, then `layers` (bottom first)."""
    image_ = oci.Image(layers=[BASE_LAYER, *layers], entrypoint=entrypoint)
    return pusher.push_image(f"{repo}/runner", image_, tag="v1")


def push_base(pusher: oci.Pusher, repo: str) -> str:
    pusher.push_image(
        f"{repo}/core", oci.Image(layers=[BASE_LAYER], entrypoint=ENTRYPOINT), tag="4.0"
    )
    return f"{repo}/core:4.0"


async def check(host: str, ref: str, *, base: str | None = None) -> image.Report:
    """Read with the credentials of a `.dockerconfigjson`, as the operator does."""
    store = auth.parse_docker_config(docker_config_json(host))
    async with client.RegistryClient(credentials=store, max_attempts=2, backoff=0.01) as reader:
        return await image.check_image(
            client=reader, image=f"{host}/{ref}", base=f"{host}/{base}" if base else None
        )


async def test_a_good_runner_is_conformant_from_its_top_layer(
    pusher: oci.Pusher,
    oci_registry: registry.Registry,
    token_server: tokenserver.TokenServer,
) -> None:
    repo = repository()
    base = push_base(pusher, repo)
    built = push_runner(pusher, repo, SCRIPTS)
    token_server.clear()
    report = await check(oci_registry.host, f"{repo}/runner@{built.digest}", base=base)
    assert report.findings == ()
    assert report.summary is None
    assert (report.layers_read, report.layers_total) == (1, 2)
    assert report.bytes_read == built.config.size + built.layers[1].blob.size
    assert {d.state for d in report.files.values()} == {fs.State.FILE}
    granted = {str(a) for r in token_server.recorded() for a in r.granted}
    assert {r.user for r in token_server.recorded()} == {PUSH_USER}
    assert f"repository:{repo}/runner:pull" in granted
    assert f"repository:{repo}/core:pull" in granted


CASES: dict[
    str, tuple[list[list[oci.Entry]], Sequence[str], list[tuple[Rule, str | None, str]]]
] = {
    "missing script": (
        [[oci.directory("scripts"), oci.file("scripts/deploy.sh", SH, 0o755)]],
        ENTRYPOINT,
        [(Rule.SCRIPT_MISSING, DELETE, "/scripts/delete.sh is missing (in no layer)")],
    ),
    "not executable": (
        [[*SCRIPTS[:2], oci.file("scripts/delete.sh", SH, 0o644)]],
        ENTRYPOINT,
        [
            (
                Rule.SCRIPT_NOT_EXECUTABLE,
                DELETE,
                "/scripts/delete.sh is not executable (mode 0644)",
            )
        ],
    ),
    "CRLF": (
        [[*SCRIPTS[:2], oci.file("scripts/delete.sh", "#!/bin/sh\r\necho x\r\n", 0o755)]],
        ENTRYPOINT,
        [(Rule.SCRIPT_CRLF, DELETE, "/scripts/delete.sh has CRLF line endings (line 1)")],
    ),
    "deleted by a whiteout in a later layer": (
        [SCRIPTS, [oci.file("opt/x", "y")], [oci.whiteout("scripts/deploy.sh")]],
        ENTRYPOINT,
        [
            (
                Rule.SCRIPT_MISSING,
                DEPLOY,
                "/scripts/deploy.sh is missing (deleted by a whiteout in layer 4)",
            )
        ],
    ),
    "/scripts made opaque in a later layer": (
        [SCRIPTS, [oci.directory("scripts"), oci.opaque("scripts"), SCRIPTS[1]]],
        ENTRYPOINT,
        [
            (
                Rule.SCRIPT_MISSING,
                DELETE,
                "/scripts/delete.sh is missing"
                " (/scripts is made opaque in layer 3, hiding the layers below)",
            )
        ],
    ),
    "symlinked /scripts": (
        [[oci.directory("opt/s"), *SCRIPTS[1:]], [oci.symlink("scripts", "/opt/s")]],
        ENTRYPOINT,
        [
            (
                Rule.SCRIPT_NOT_REGULAR_FILE,
                path,
                f"{path} is not a regular file (/scripts is a symlink to /opt/s in layer 3)",
            )
            for path in (DEPLOY, DELETE)
        ],
    ),
    "entrypoint changed": (
        [SCRIPTS],
        ["/bin/sh", "-c"],
        [
            (
                Rule.ENTRYPOINT_CHANGED,
                None,
                'the image sets ["/bin/sh", "-c"], but its base image\'s entrypoint is'
                ' ["/usr/local/bin/entrypoint.sh"] (ADE runs the scripts through it: keep it)',
            )
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_broken_runner_gives_its_finding(
    case: str, pusher: oci.Pusher, oci_registry: registry.Registry
) -> None:
    layers, entrypoint, expected = CASES[case]
    repo = repository()
    base = push_base(pusher, repo)
    built = push_runner(pusher, repo, *layers, entrypoint=entrypoint)
    report = await check(oci_registry.host, f"{repo}/runner@{built.digest}", base=base)
    assert [(f.rule, f.path, f.message) for f in report.findings] == expected
    assert report.summary == "ImageNotConformant: " + "; ".join(m for _, _, m in expected)


async def test_figures_a_big_base_layer_is_never_read(
    pusher: oci.Pusher, oci_registry: registry.Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = repository()
    base = push_base(pusher, repo)
    payload = secrets.token_bytes(20 * 1024 * 1024)
    big = [oci.file("opt/big.bin", payload)]
    tool = [oci.file("usr/bin/tool", "x", 0o755)]
    built = push_runner(pusher, repo, big, tool, SCRIPTS)
    ref = f"{repo}/runner@{built.digest}"
    big_blob = built.layers[1].blob
    started = time.monotonic()
    report = await check(oci_registry.host, ref, base=base)
    elapsed = time.monotonic() - started
    assert report.conformant
    assert report.total_size == built.config.size + sum(lay.blob.size for lay in built.layers)
    assert report.bytes_read == built.config.size + built.layers[3].blob.size
    assert report.bytes_read * 1000 < report.total_size
    assert (report.layers_read, report.layers_total) == (1, 4)

    # For comparison: scripts at the end of the big layer, which must then be read whole.
    deep = push_runner(pusher, repo, [*big, *SCRIPTS], tool)
    tracemalloc.start()
    started = time.monotonic()
    try:
        deep_report = await check(oci_registry.host, f"{repo}/runner@{deep.digest}", base=base)
        deep_elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert deep_report.conformant
    assert (deep_report.layers_read, deep_report.layers_total) == (2, 3)
    assert deep_report.bytes_read > 20 * 1024 * 1024
    assert peak < 8 * 1024 * 1024, "a layer is streamed, never held whole in memory"
    with capsys.disabled():
        print(
            f"\n[figures] conformance check, 4 layers with a {big_blob.size / 1e6:.1f} MB base"
            f" layer: read {report.bytes_read} of {report.total_size} bytes"
            f" ({100 * report.bytes_read / report.total_size:.4f}%),"
            f" {report.layers_read}/{report.layers_total} layers, {elapsed * 1000:.0f} ms"
            f"\n[figures] scripts inside that layer instead: read {deep_report.bytes_read} of"
            f" {deep_report.total_size} bytes, {deep_report.layers_read}/"
            f"{deep_report.layers_total} layers, {deep_elapsed * 1000:.0f} ms (traced),"
            f" peak Python memory {peak / 1e6:.1f} MB"
        )

    # The big layer of the first image is really not read: damaged in the registry's storage,
    # nothing notices.
    stored = oci_registry.blob_path(big_blob.digest)
    original = stored.read_bytes()
    stored.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
    assert (await check(oci_registry.host, ref, base=base)).conformant

    # A runner whose upper layers do not decide the scripts reads it, and meets the damage.
    undecided = push_runner(pusher, repo, big, tool)
    assert undecided.layers[1].blob.digest == big_blob.digest
    with pytest.raises(client.RegistryProtocolError, match=f"blob {big_blob.digest}"):
        await check(oci_registry.host, f"{repo}/runner@{undecided.digest}", base=base)


async def test_layers_come_from_the_registry_a_damaged_blob_is_an_error(
    pusher: oci.Pusher, oci_registry: registry.Registry
) -> None:
    repo = repository()
    built = push_runner(pusher, repo, [oci.file("scripts/deploy.sh", secrets.token_hex(64))])
    top = built.layers[1].blob
    stored = oci_registry.blob_path(top.digest)
    original = stored.read_bytes()
    stored.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    with pytest.raises(client.RegistryProtocolError) as caught:
        await check(oci_registry.host, f"{repo}/runner@{built.digest}")
    assert f"blob {top.digest}" in str(caught.value)
    assert "has digest sha256:" in str(caught.value)


async def test_registry_errors_are_the_clients_typed_errors(
    pusher: oci.Pusher, oci_registry: registry.Registry
) -> None:
    repo = repository()
    built = push_runner(pusher, repo, SCRIPTS)
    with pytest.raises(client.ManifestNotFound):
        await check(oci_registry.host, f"{repo}/runner:no-such-tag")
    pusher.push_index(f"{repo}/multi", [oci.Image(layers=[SCRIPTS])], tag="v1")
    store = auth.parse_docker_config(docker_config_json(oci_registry.host))
    async with client.RegistryClient(credentials=store) as reader:
        with pytest.raises(client.PlatformNotFound):
            await image.check_image(
                client=reader, image=f"{oci_registry.host}/{repo}/multi:v1", platform="linux/s390x"
            )
    wrong = {oci_registry.host: auth.Credentials(username=PUSH_USER, password="wrong")}
    async with client.RegistryClient(credentials=wrong) as reader:
        with pytest.raises(client.RegistryAuthError):
            await image.check_image(
                client=reader, image=f"{oci_registry.host}/{repo}/runner@{built.digest}"
            )
