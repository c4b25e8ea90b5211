"""BuildKit attestations through the operator (issue 13): SLSA provenance by default, an SBOM on
request, on a real buildkitd pushing to the real registry.

The pushed digest is then an image index (the linux/amd64 manifest and its attestation manifest,
platform unknown/unknown); verification, conformance and the catalog still work on it. The SBOM
is made by a generator image that follows BuildKit's SBOM protocol (`tests.env.sbom_scanner`,
since `docker/buildkit-syft-scanner` cannot be pulled here), and must list the packages of the
built image: the runner's Dockerfile installs one into the image's apk database.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from controller.registry.manifests import Index, Manifest
from tests.conftest import PUSH_PASSWORD, StartOperator
from tests.e2e.daemon_builds import inline_runner, operator_env, push_secret, registry_client
from tests.env import buildkitd, kube, registry, sbom_scanner

pytestmark = pytest.mark.e2e

NAME = "attested"
DOCKERFILE = """\
ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core
FROM ${BASE_IMAGE}:4.0
COPY scripts/ /scripts/
RUN chmod +x /scripts/*.sh && mkdir -p /lib/apk/db \\
 && printf 'P:jq\\nV:1.7.1-r0\\n\\nP:azure-cli\\nV:2.67.0-r1\\n\\n' > /lib/apk/db/installed
"""
SLSA = ("https://slsa.dev/provenance/v0.2", "https://slsa.dev/provenance/v1")
SPDX = "https://spdx.dev/Document"


def _runner(namespace: str, host: str, core: str, build: dict[str, Any]) -> dict[str, Any]:
    return inline_runner(
        NAME,
        host=host,
        repository=f"{namespace}/attested",
        core=core,
        dockerfile=DOCKERFILE,
        build=build,
    )


async def _statements(host: str, reference: str) -> tuple[Index, dict[str, Any]]:
    """The image index at `reference` and its attestations' in-toto statements by predicate
    type, read from the registry."""
    async with registry_client(host) as client:
        index = await client.get_manifest(ref=reference)
        assert isinstance(index, Index), f"{reference} is a plain manifest: no attestations"
        statements: dict[str, Any] = {}
        for entry in index.manifests:
            if entry.platform is None or str(entry.platform) != "unknown/unknown":
                continue
            attestation = await client.get_manifest(ref=index.reference.with_digest(entry.digest))
            assert isinstance(attestation, Manifest)
            for layer in attestation.layers:
                body = json.loads(await client.get_blob(ref=reference, digest=layer.digest))
                statements[body["predicateType"]] = body
        return index, statements


@pytest.mark.timeout(600)
def test_provenance_by_default_and_an_sbom_listing_the_images_packages(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    core: str,
) -> None:
    host = oci_registry.host
    scanner = f"{host}/{namespace}/sbom-scanner:1"
    sbom_scanner.push_scanner(buildkit, scanner)
    push_secret(cluster, namespace, host, PUSH_PASSWORD)
    start_operator(**operator_env(buildkit))

    # The defaults: min provenance, no SBOM.
    cluster.apply(namespace, json.dumps(_runner(namespace, host, core, {})))
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=300)
    image = ready["status"]["latestImage"]
    index, statements = asyncio.run(_statements(host, f"{image['reference']}@{image['digest']}"))
    platforms = sorted(str(entry.platform) for entry in index.manifests)
    assert platforms == ["linux/amd64", "unknown/unknown"]
    provenance = [statements[kind] for kind in SLSA if kind in statements]
    assert provenance, f"no SLSA provenance among {sorted(statements)}"
    assert SPDX not in statements
    subject = {s["digest"]["sha256"] for s in provenance[0]["subject"]}
    platform = next(e for e in index.manifests if str(e.platform) == "linux/amd64")
    assert subject == {platform.digest.removeprefix("sha256:")}
    verified = kube.condition(ready, "Verified")
    assert verified is not None
    assert "ADE runner conformant" in verified["message"]

    # An SBOM from the generator image, and max provenance: a new build key, a new image.
    build = {"attestations": {"provenance": "Max", "sbom": True, "sbomGenerator": scanner}}
    cluster.apply(namespace, json.dumps(_runner(namespace, host, core, build)))

    def rebuilt() -> dict[str, Any] | None:
        obj = cluster.get(namespace, NAME) or {}
        stalled = kube.condition(obj, "Stalled")
        if stalled and stalled["status"] == "True":
            raise AssertionError(f"stalled: {stalled['message']}")
        ready_ = kube.condition(obj, "Ready")
        latest = obj.get("status", {}).get("latestImage", {})
        fresh = latest.get("digest") not in (None, image["digest"])
        return obj if fresh and ready_ and ready_["status"] == "True" else None

    after = kube.wait_for(rebuilt, timeout=300, what="the attested rebuild")
    image = after["status"]["latestImage"]
    _, statements = asyncio.run(_statements(host, f"{image['reference']}@{image['digest']}"))
    sbom = statements.get(SPDX)
    assert sbom is not None, f"no SPDX SBOM among {sorted(statements)}"
    packages = {(p["name"], p.get("versionInfo")) for p in sbom["predicate"]["packages"]}
    assert packages == {("jq", "1.7.1-r0"), ("azure-cli", "2.67.0-r1")}
    assert any(kind in statements for kind in SLSA)
