"""Builds through a real buildkitd (BuildKitDaemon backend), shared by the end-to-end tests that
run the operator's in-process builds: the daemon (once a session), the stand-in core image pushed
for a test, the operator's environment for it, and the push Secret."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from controller.registry import auth
from controller.registry.client import RegistryClient
from tests.conftest import PUSH_PASSWORD, PUSH_USER, docker_config_json
from tests.env import buildkitd, images, kube, oci, registry


@pytest.fixture(scope="session")
def buildkit(
    tmp_path_factory: pytest.TempPathFactory, oci_registry: registry.Registry
) -> Iterator[buildkitd.BuildkitDaemon]:
    folder = tmp_path_factory.mktemp("docker-config")
    # buildctl reads push credentials from DOCKER_CONFIG: the tests' own base-image pushes.
    with buildkitd.push_credentials(folder, docker_config_json(oci_registry.host)):
        # A short folder: buildkitd's unix socket path must fit in 107 bytes.
        short = pathlib.Path(tempfile.mkdtemp(prefix="bk-"))
        daemon = buildkitd.BuildkitDaemon(short, insecure_registries=[oci_registry.host])
        daemon.start()
        yield daemon
        daemon.stop()
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def pusher(oci_registry: registry.Registry) -> Iterator[oci.Pusher]:
    with oci.Pusher(oci_registry.host, username=PUSH_USER, password=PUSH_PASSWORD) as client:
        yield client


@pytest.fixture
def core(
    buildkit: buildkitd.BuildkitDaemon, oci_registry: registry.Registry, namespace: str
) -> str:
    """The stand-in core image pushed for this test; returns the repository reference."""
    repository = f"{oci_registry.host}/{namespace}/core"
    images.push_core(buildkit, f"{repository}:4.0", revision="1")
    return repository


def operator_env(buildkit: buildkitd.BuildkitDaemon, **extra: str) -> dict[str, str]:
    tools = str(buildkit.bin)
    return {"ADE_BUILDKIT_ADDR": buildkit.address, "PATH": f"{tools}:{os.environ['PATH']}", **extra}


def push_secret(
    cluster: kube.Cluster, namespace: str, host: str, password: str, user: str = PUSH_USER
) -> None:
    """The Secret `push`: `user`'s credentials for the registry at `host`."""
    cluster.plane.kubectl(
        "create", "secret", "docker-registry", "push", "-n", namespace,
        f"--docker-server={host}", f"--docker-username={user}",
        f"--docker-password={password}",
    )  # fmt: skip


RUNNER_DOCKERFILE = """\
ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core
FROM ${BASE_IMAGE}:4.0
COPY scripts/ /scripts/
RUN sed -i 's/\\r$//' /scripts/*.sh && chmod +x /scripts/*.sh
"""
"""A runner on the stand-in core image (`core`), its scripts' CRLF made LF, made executable."""


RUNNER_SCRIPTS = {
    "deploy.sh": "#!/bin/sh\necho deploying\n",
    "delete.sh": "#!/bin/sh\necho deleting\n",
}


def inline_runner(
    name: str,
    *,
    host: str,
    repository: str,
    core: str,
    dockerfile: str = RUNNER_DOCKERFILE,
    build: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A RunnerImage of an inline source on the stand-in core image (`BASE_IMAGE=core`), built
    by the BuildKitDaemon backend and pushed to `host/repository` with the Secret `push`;
    `build` adds to `spec.build`, `spec` to the spec."""
    return {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": name},
        "spec": {
            "source": {"inline": {"dockerfile": dockerfile, "scripts": RUNNER_SCRIPTS}},
            "buildArgs": {"BASE_IMAGE": core},
            "image": {
                "registry": host,
                "repository": repository,
                "pushSecretRef": {"name": "push"},
            },
            "build": {"backend": "BuildKitDaemon", "timeout": "10m", **(build or {})},
            **spec,
        },
    }


def registry_client(host: str) -> RegistryClient:
    """A registry client of the test registry at `host` with the push credentials (what the
    tests read pushed images, indexes and referrers with)."""
    return RegistryClient(
        credentials={host: auth.Credentials(PUSH_USER, PUSH_PASSWORD)}, insecure_hosts=[host]
    )
