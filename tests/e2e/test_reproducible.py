"""Reproducible digests (issue 13): the same inputs built twice from cold — a new buildkitd each
time, no registry cache — give the same image digest when the build carries the source's time
(`BuildPlan.source_date_epoch`: `SOURCE_DATE_EPOCH` and rewritten layer timestamps), so a
rebuild after a cache loss, by another replica or on another BuildKit backend pushes the image
already in the registry and changes no catalog. Without it the same two builds differ (the image
config's creation time): the control that shows the feature is what makes them equal.

With SLSA provenance (the operator's default, `mode=min`) the pushed digest is an image index
whose provenance holds the build's start and end times and BuildKit's invocation ID
(solver/llbsolver/provenance.go sets them, whatever SOURCE_DATE_EPOCH says): two such indexes
differ, while the image manifest inside each is the very one built without attestations. That
is what a downstream rebuild compares; `spec.build.attestations.provenance: Disabled` makes the
pushed digest itself reproducible.

The BuildKitDaemon backend here; the Job backend renders the same `buildctl` arguments
(`controller.builds.buildctl`, unit-tested), and the Docker backend's classic builder cannot
rewrite timestamps (its digests always differ).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import tempfile

import pytest

from controller.api import spec as model
from controller.builds import backend, daemon_backend, inprocess
from tests.benchmarks import test_build_figures
from tests.conftest import docker_config_json
from tests.e2e.daemon_builds import registry_client
from tests.env import buildkitd, images, registry

pytestmark = pytest.mark.e2e

EPOCH = 1733400000
NO_ATTESTATIONS = model.Attestations(provenance=model.ProvenanceMode.DISABLED)
OWNER = backend.Owner(name="repro", namespace="team-a", uid="uid-1")


def _context(folder: pathlib.Path) -> pathlib.Path:
    (folder / "scripts").mkdir(parents=True)
    (folder / "Dockerfile").write_text(test_build_figures.DOCKERFILE)
    for name in ("deploy.sh", "delete.sh"):
        (folder / "scripts" / name).write_text("#!/bin/sh\necho same\n")
    return folder


async def _cold_build(
    host: str,
    core: str,
    context: pathlib.Path,
    tag: str,
    epoch: int | None,
    attestations: model.Attestations = NO_ATTESTATIONS,
) -> str:
    """Build `context` on a new, empty buildkitd and push it as `tag`: the digest."""
    short = pathlib.Path(tempfile.mkdtemp(prefix="rp-"))
    kit = buildkitd.BuildkitDaemon(short / "bk", insecure_registries=[host])
    (short / "bk").mkdir()
    kit.start()
    try:
        finished = asyncio.Event()
        tasks = inprocess.Tasks(on_finished=lambda *_: finished.set())
        builder = daemon_backend.DaemonBackend(
            settings=daemon_backend.DaemonSettings(
                address=kit.address, buildctl=str(kit.bin / "buildctl")
            ),
            tasks=tasks,
        )
        plan = backend.BuildPlan(
            owner=OWNER,
            key=tag.ljust(64, "0"),
            reason="Initial",
            image=f"{host}/team-a/repro:{tag}",
            dockerfile="Dockerfile",
            context_dir=context,
            push_secret="push",
            timeout_seconds=300,
            build_args={"BASE_IMAGE": core, "IMAGE_VERSION": "4.0"},
            labels={"runners.ade.dev/build-key": "k"},
            source_date_epoch=epoch,
            attestations=attestations,
        )
        await builder.start(plan, docker_config=json.loads(docker_config_json(host)))

        await asyncio.wait_for(finished.wait(), timeout=300)
        state = await builder.state(plan)
        assert state.phase is backend.Phase.SUCCEEDED, state.message
        assert state.digest is not None
        return state.digest
    finally:
        kit.stop()
        shutil.rmtree(short, ignore_errors=True)


async def _platform_manifest(host: str, repository_at_digest: str) -> str:
    """The linux/amd64 manifest digest of the index at `repository_at_digest`."""
    async with registry_client(host) as client:
        manifest = await client.get_manifest(
            ref=f"{host}/{repository_at_digest}", platform="linux/amd64"
        )
        return manifest.digest


@pytest.mark.timeout(600)
async def test_two_cold_builds_of_the_same_inputs_give_one_digest(
    oci_registry: registry.Registry, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = oci_registry.host
    seed = pathlib.Path(tempfile.mkdtemp(prefix="rs-"))
    kit = buildkitd.BuildkitDaemon(seed / "bk", insecure_registries=[host])
    (seed / "bk").mkdir()
    kit.start()
    try:
        with buildkitd.push_credentials(tmp_path / "dc", docker_config_json(host)):
            core = f"{host}/team-a/core"
            images.push_core(kit, f"{core}:4.0")
    finally:
        kit.stop()
        shutil.rmtree(seed, ignore_errors=True)
    first = _context(tmp_path / "one")
    second = _context(tmp_path / "two")  # another checkout: other file times on disk
    same = [
        await _cold_build(host, core, first, "a", EPOCH),
        await _cold_build(host, core, second, "b", EPOCH),
    ]
    control = [
        await _cold_build(host, core, first, "c", None),
        await _cold_build(host, core, second, "d", None),
    ]
    attested = [  # the operator's default: with SLSA provenance (mode=min), an image index
        await _cold_build(host, core, first, "e", EPOCH, model.Attestations()),
        await _cold_build(host, core, second, "f", EPOCH, model.Attestations()),
    ]
    platform = [await _platform_manifest(host, f"team-a/repro@{d}") for d in attested]
    with capsys.disabled():
        print(
            f"\n[figure] reproducible digests, two cold BuildKitDaemon builds of the same inputs:"
            f" with the source's time {same[0][:19]} and {same[1][:19]} (equal:"
            f" {same[0] == same[1]}); without it {control[0][:19]} and {control[1][:19]};"
            f" with min provenance, indexes {attested[0][:19]} and {attested[1][:19]} (equal:"
            f" {attested[0] == attested[1]}: the provenance holds the build's times), their"
            f" linux/amd64 manifests {platform[0][:19]} and {platform[1][:19]} (equal:"
            f" {platform[0] == platform[1]})"
        )
    assert same[0] == same[1]
    assert control[0] != control[1]
    # The image itself stays reproducible: the same manifest as without attestations.
    assert platform[0] == platform[1] == same[0]
    assert attested[0] not in (attested[1], same[0])
