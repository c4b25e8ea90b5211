"""Verification figures: the time the verify step adds to a reconcile, and how much of the image
the conformance check reads, on the example runner image built by the real BuildKit.

The example (`examples/runnerimage.yaml`: the stand-in core image, the scripts copied, their line
endings and modes fixed in a RUN) is built and pushed to the test registry behind the ACR-like
token server. Then, with anonymous pull on, each round does what the verify step does for a new
digest, timed apart: the tag resolved with the push credentials (what verify did before this
change), the same digest pulled with no credentials, and the conformance check reading layers
top-down. Prints medians and p95 over the rounds, and bytes read against the image's size.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import statistics
import tempfile
import time

import pytest
from ruamel.yaml import YAML

from controller.conformance import image as conformance_image
from controller.registry import client as registry_client
from tests.conftest import PUSH_PASSWORD, PUSH_USER
from tests.env import buildkitd, controlplane, images, registry, tokenserver

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

ROUNDS = 15


def _example_context(folder: pathlib.Path) -> tuple[pathlib.Path, dict[str, str]]:
    example = YAML(typ="safe").load(controlplane.REPO / "examples" / "runnerimage.yaml")
    inline = example["spec"]["source"]["inline"]
    (folder / "scripts").mkdir(parents=True)
    (folder / "Dockerfile").write_text(inline["dockerfile"])
    for name, text in inline["scripts"].items():
        (folder / "scripts" / name).write_text(text)
    return folder, dict(example["spec"]["buildArgs"])


def test_verification_time_and_bytes_read_on_the_example_image(
    oci_registry: registry.Registry,
    token_server: tokenserver.TokenServer,
    namespace: str,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_json = registry.docker_config_json(
        oci_registry.host, user=PUSH_USER, password=PUSH_PASSWORD
    )
    with buildkitd.push_credentials(tmp_path / "docker", config_json):
        daemon = buildkitd.BuildkitDaemon(pathlib.Path(tempfile.mkdtemp(prefix="bk-")))
        daemon.start()
        try:
            core = f"{oci_registry.host}/{namespace}/{images.CORE_REPOSITORY}"
            images.push_core(daemon, f"{core}:{images.CORE_TAG}")
            context, build_args = _example_context(tmp_path / "example")
            build_args.update(BASE_IMAGE=core, IMAGE_VERSION=images.CORE_TAG)
            reference = f"{oci_registry.host}/{namespace}/bicep-runner:bench"
            digest = images.build_and_push(daemon, context, reference, build_args=build_args)
        finally:
            daemon.stop()
    base = f"{core}:{images.CORE_TAG}"
    anonymous_before = token_server.anonymous_pull
    token_server.set_anonymous_pull(True)
    try:
        rounds = asyncio.run(_measure(oci_registry.host, config_json, reference, base, digest))
    finally:
        token_server.set_anonymous_pull(anonymous_before)

    resolve = [r[0] for r in rounds]
    anonymous = [r[1] for r in rounds]
    conformance = [r[2] for r in rounds]
    added = [a + c for _, a, c, _ in rounds]
    report = rounds[0][3]
    assert report.conformant, report.findings
    assert report.bytes_read < report.total_size / 2
    with capsys.disabled():
        print(
            f"\n[benchmark] verify on the example image ({ROUNDS} rounds, each a new client "
            f"and token, as a reconcile of a new digest): tag resolve (before this change) "
            f"median {_ms(resolve)}; added by verification: anonymous pull median "
            f"{_ms(anonymous)}, conformance median {_ms(conformance)}, together median "
            f"{_ms(added)}, p95 {_ms(added, 0.95)}; conformance read {report.bytes_read} B of "
            f"{report.total_size} B ({100 * report.bytes_read / report.total_size:.1f}%), "
            f"{report.layers_read} of {report.layers_total} layer(s)"
        )
    assert statistics.median(added) < 2.0


async def _measure(
    host: str, config_json: str, reference: str, base: str, digest: str
) -> list[tuple[float, float, float, conformance_image.Report]]:
    credentials = registry_client.credentials_from_docker_config(json.loads(config_json))
    rounds = []
    for _ in range(ROUNDS):
        pushing = registry_client.RegistryClient(credentials=credentials, insecure_hosts=[host])
        anonymous = registry_client.RegistryClient(insecure_hosts=[host])
        checking = registry_client.RegistryClient(credentials=credentials, insecure_hosts=[host])
        try:
            start = time.perf_counter()
            found = await pushing.resolve(ref=reference)
            resolved = time.perf_counter()
            pulled = await anonymous.resolve(ref=reference)
            anonymously = time.perf_counter()
            report = await conformance_image.check_image(
                client=checking, image=f"{reference}@{digest}", base=base
            )
            checked = time.perf_counter()
        finally:
            for client in (pushing, anonymous, checking):
                await client.aclose()
        assert found.digest == digest
        assert pulled.digest == digest
        rounds.append((resolved - start, anonymously - resolved, checked - anonymously, report))
    return rounds


def _ms(values: list[float], quantile: float = 0.5) -> str:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))
    return f"{1000 * ordered[index]:.0f} ms"
