"""Smoke tests of the image-build part of the real test environment (no mocks).

A real buildkitd (OCI worker, runc) and a real dockerd build a runner-like Dockerfile on top of
the stand-in ADE core image in a real distribution registry on loopback (plain HTTP, no auth),
push it, and the digest each reports is the digest the registry serves. Also: the stand-in can
change under the same tag, and a rebuild picks the new base up.

The registry here is a private minimal one (`_PlainRegistry`); the stack's registry with token
auth is `tests.env.registry`.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pathlib
import re
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.env import buildkitd, dockerd, images
from tests.env.controlplane import free_port, tools_bin

pytestmark = pytest.mark.e2e

REGISTRY_BINARY = "/usr/bin/docker-registry"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

RUNNER_DOCKERFILE = """\
ARG BASE_IMAGE
ARG IMAGE_VERSION
FROM ${BASE_IMAGE}:${IMAGE_VERSION}
COPY scripts/ /scripts/
RUN chmod +x /scripts/*.sh
"""


class _PlainRegistry:
    """distribution v2 (Debian's docker-registry) on 127.0.0.1, plain HTTP, no auth."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = folder
        self.host = f"127.0.0.1:{free_port()}"
        self.log = folder / "registry.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        config = self.folder / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.folder / 'data'}}}, "
            "delete: {enabled: true}}\n"
            f"http: {{addr: '{self.host}', secret: test-only-upload-state-secret}}\n"
        )
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        buildkitd.wait_until(self._answers, timeout=timeout, what=f"registry on {self.host}")

    def stop(self) -> None:
        if self._proc is not None:
            buildkitd.stop_process_group(self._proc, timeout=10)
            self._proc = None

    def _answers(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as response:
                status: int = response.status
                return status == 200
        except OSError:
            return False

    def _request(self, path: str, method: str = "GET") -> tuple[dict[str, str], bytes]:
        request = urllib.request.Request(
            f"http://{self.host}/v2/{path}", method=method, headers={"Accept": MANIFEST_TYPES}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(response.headers), response.read()

    def served_digest(self, repository: str, tag: str) -> str:
        """Docker-Content-Digest of HEAD /v2/<repository>/manifests/<tag>."""
        headers, _ = self._request(f"{repository}/manifests/{tag}", method="HEAD")
        return headers["Docker-Content-Digest"]

    def manifest(self, repository: str, reference: str) -> dict[str, Any]:
        _, body = self._request(f"{repository}/manifests/{reference}")
        manifest: dict[str, Any] = json.loads(body)
        return manifest

    def image_config(self, repository: str, reference: str) -> dict[str, Any]:
        digest = self.manifest(repository, reference)["config"]["digest"]
        _, body = self._request(f"{repository}/blobs/{digest}")
        config: dict[str, Any] = json.loads(body)
        return config

    def layer_files(self, repository: str, reference: str, index: int) -> dict[str, int]:
        """Path -> mode of the files in one layer of the image."""
        layer = self.manifest(repository, reference)["layers"][index]
        _, body = self._request(f"{repository}/blobs/{layer['digest']}")
        data = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {member.name: member.mode for member in tar.getmembers()}


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_PlainRegistry]:
    server = _PlainRegistry(tmp_path_factory.mktemp("plain-registry"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tools() -> pathlib.Path:
    """The pinned binaries (buildkitd, buildctl), compiled by hack/tools.sh on first use."""
    return tools_bin()


@pytest.fixture(scope="session")
def buildkit(
    tmp_path_factory: pytest.TempPathFactory, tools: pathlib.Path
) -> Iterator[buildkitd.BuildkitDaemon]:
    started = time.monotonic()
    folder = tmp_path_factory.mktemp("buildkitd")
    with buildkitd.running(folder, bin_dir=tools, tcp=True) as daemon:
        print(
            f"\nbuildkitd ready in {time.monotonic() - started:.1f}s "
            f"(snapshotter {daemon.snapshotter})"
        )
        yield daemon


@pytest.fixture(scope="session")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dockerd.DockerDaemon]:
    started = time.monotonic()
    with dockerd.running(tmp_path_factory.mktemp("dockerd")) as daemon:
        print(f"\ndockerd ready in {time.monotonic() - started:.1f}s")
        yield daemon


@pytest.fixture(scope="session")
def core(buildkit: buildkitd.BuildkitDaemon, registry: _PlainRegistry) -> tuple[str, str]:
    """The stand-in core image pushed to the plain registry: (BASE_IMAGE, digest) at tag 4.0."""
    base = f"{registry.host}/{images.CORE_REPOSITORY}"
    started = time.monotonic()
    digest = images.push_core(buildkit, f"{base}:{images.CORE_TAG}")
    print(f"\nstand-in core image built and pushed in {time.monotonic() - started:.1f}s")
    return base, digest


@pytest.fixture
def runner_context(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "Dockerfile").write_text(RUNNER_DOCKERFILE)
    for operation in ("deploy", "delete"):
        (tmp_path / "scripts" / f"{operation}.sh").write_text(
            f"#!/bin/sh\necho {operation} {tmp_path.name}\n"
        )
    return tmp_path


# -- tests -------------------------------------------------------------------------------------


def test_buildkitd_answers_on_unix_and_tcp(buildkit: buildkitd.BuildkitDaemon) -> None:
    assert buildkit.address == f"unix://{buildkit.socket}"
    assert buildkit.tcp_address is not None
    assert buildkit.tcp_address.startswith("tcp://127.0.0.1:")
    for address in (buildkit.address, buildkit.tcp_address):
        [worker] = buildkit.workers(address)
        assert worker["labels"]["org.mobyproject.buildkit.worker.executor"] == "oci"
    assert buildkit.snapshotter in {"overlayfs", "native"}


def test_core_stand_in(core: tuple[str, str], registry: _PlainRegistry) -> None:
    base, digest = core
    repository = base.split("/", 1)[1]
    assert DIGEST.match(digest)
    assert registry.served_digest(repository, images.CORE_TAG) == digest
    config = registry.image_config(repository, images.CORE_TAG)
    assert config["config"]["Entrypoint"] == ["/scripts/entrypoint.sh"]
    assert config["config"]["Labels"][images.REVISION_LABEL] == "1"
    installed = registry.layer_files(repository, images.CORE_TAG, 1)  # busybox --install
    for tool in ("sh", "sed", "find", "chmod", "cat"):
        assert f"bin/{tool}" in installed


def test_buildkit_builds_and_pushes_runner(
    buildkit: buildkitd.BuildkitDaemon,
    registry: _PlainRegistry,
    core: tuple[str, str],
    runner_context: pathlib.Path,
) -> None:
    base, _ = core
    repository, tag = "ade/bicep", "buildkit"
    metadata = runner_context / "m.json"
    started = time.monotonic()
    buildkit.buildctl(
        "build",
        "--frontend=dockerfile.v0",
        f"--local=context={runner_context}",
        f"--local=dockerfile={runner_context}",
        f"--opt=build-arg:BASE_IMAGE={base}",
        f"--opt=build-arg:IMAGE_VERSION={images.CORE_TAG}",
        f"--output=type=image,name={registry.host}/{repository}:{tag},push=true",
        f"--metadata-file={metadata}",
    )
    print(f"\nrunner built and pushed by buildkitd in {time.monotonic() - started:.1f}s")

    reported = json.loads(metadata.read_text())["containerimage.digest"]
    assert DIGEST.match(reported)
    assert registry.served_digest(repository, tag) == reported
    _assert_runner_image(registry, repository, tag, base)


def test_dockerd_builds_and_pushes_runner(
    docker: dockerd.DockerDaemon,
    registry: _PlainRegistry,
    core: tuple[str, str],
    runner_context: pathlib.Path,
) -> None:
    base, _ = core
    repository, tag = "ade/bicep", "docker"
    reference = f"{registry.host}/{repository}:{tag}"
    started = time.monotonic()
    docker.docker(
        "build",
        f"--build-arg=BASE_IMAGE={base}",
        f"--build-arg=IMAGE_VERSION={images.CORE_TAG}",
        f"--tag={reference}",
        str(runner_context),
    )
    pushed = docker.docker("push", reference).stdout
    print(f"\nrunner built and pushed by dockerd in {time.monotonic() - started:.1f}s")

    match = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
    assert match, pushed
    [repo_digest] = json.loads(
        docker.docker("image", "inspect", "--format={{json .RepoDigests}}", reference).stdout
    )
    assert repo_digest == f"{registry.host}/{repository}@{match.group(1)}"
    assert registry.served_digest(repository, tag) == match.group(1)
    _assert_runner_image(registry, repository, tag, base)

    # The runner keeps the base's entrypoint, which runs the operation script ADE names.
    ran = docker.docker("run", "--rm", "--env=ADE_OPERATION_NAME=delete", reference).stdout
    assert ran.splitlines() == [
        "ade core stand-in 1: operation delete",
        f"delete {runner_context.name}",
    ]


def test_base_changes_under_the_same_tag(
    buildkit: buildkitd.BuildkitDaemon,
    registry: _PlainRegistry,
    core: tuple[str, str],
    runner_context: pathlib.Path,
) -> None:
    base, _ = core
    repository = base.split("/", 1)[1]
    tag = "moving"  # not CORE_TAG: other tests keep their base
    first = images.push_core(buildkit, f"{base}:{tag}", revision="1")
    second = images.push_core(buildkit, f"{base}:{tag}", revision="2")
    assert second != first
    assert registry.served_digest(repository, tag) == second
    assert registry.image_config(repository, tag)["config"]["Labels"][images.REVISION_LABEL] == "2"
    # The same revision builds the same digest again (pinned timestamps): pushing it back is
    # how a test returns a tag to a known base.
    assert images.push_core(buildkit, f"{base}:{tag}", revision="1") == first
    assert registry.served_digest(repository, tag) == first

    # A runner rebuilt on top of the moved tag carries the new base.
    images.push_core(buildkit, f"{base}:{tag}", revision="2")
    metadata = runner_context / "m.json"
    buildkit.buildctl(
        "build",
        "--frontend=dockerfile.v0",
        f"--local=context={runner_context}",
        f"--local=dockerfile={runner_context}",
        f"--opt=build-arg:BASE_IMAGE={base}",
        f"--opt=build-arg:IMAGE_VERSION={tag}",
        f"--output=type=image,name={registry.host}/ade/moving:1,push=true",
        f"--metadata-file={metadata}",
    )
    config = registry.image_config("ade/moving", "1")
    assert config["config"]["Labels"][images.REVISION_LABEL] == "2"


def test_insecure_registry_by_name(
    tmp_path_factory: pytest.TempPathFactory,
    tools: pathlib.Path,
    registry: _PlainRegistry,
    docker: dockerd.DockerDaemon,
) -> None:
    """buildkitd talks plain HTTP to a registry name other than localhost/127.0.0.1 only
    through its config; dockerd to any name that resolves into 127.0.0.0/8."""
    name = socket.gethostname().lower()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        address = ""
    if not address.startswith("127."):
        pytest.skip(f"the host name {name!r} does not resolve to loopback here")
    alias = f"{name}:{registry.host.rsplit(':', 1)[1]}"
    reference = f"{alias}/{images.CORE_REPOSITORY}:by-name"
    refused = "HTTP response to HTTPS client"

    https_only = buildkitd.running(tmp_path_factory.mktemp("buildkitd-https"), bin_dir=tools)
    with https_only as daemon, pytest.raises(RuntimeError, match=refused):
        images.push_core(daemon, reference)
    with buildkitd.running(
        tmp_path_factory.mktemp("buildkitd-http"), bin_dir=tools, insecure_registries=[alias]
    ) as daemon:
        digest = images.push_core(daemon, reference)
    assert registry.served_digest(images.CORE_REPOSITORY, "by-name") == digest

    # dockerd resolves the name: anything resolving into 127.0.0.0/8 is plain HTTP already.
    docker.docker("pull", reference)
    pulled = docker.docker("image", "inspect", "--format={{json .RepoDigests}}", reference)
    assert f"{alias}/{images.CORE_REPOSITORY}@{digest}" in json.loads(pulled.stdout)
    # The setting for other names reaches the daemon.
    with dockerd.running(
        tmp_path_factory.mktemp("dockerd-insecure"), insecure_registries=["registry.test:5000"]
    ) as configured:
        indexes = configured.docker("info", "--format={{json .RegistryConfig.IndexConfigs}}").stdout
        assert json.loads(indexes)["registry.test:5000"]["Secure"] is False


def test_buildkitd_stop_during_a_build_leaves_nothing(
    tmp_path_factory: pytest.TempPathFactory, tools: pathlib.Path, core: tuple[str, str]
) -> None:
    base, _ = core
    folder = tmp_path_factory.mktemp("buildkitd-stop")
    context = folder / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}:{images.CORE_TAG}\nRUN sleep 300\n")
    daemon = buildkitd.BuildkitDaemon(folder / "daemon", bin_dir=tools)
    daemon.start()
    assert daemon._proc is not None
    pid = daemon._proc.pid
    build = subprocess.Popen(
        [
            str(daemon.bin / "buildctl"),
            f"--addr={daemon.address}",
            "build",
            "--frontend=dockerfile.v0",
            f"--local=context={context}",
            f"--local=dockerfile={context}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        buildkitd.wait_until(
            lambda: buildkitd.runc_containers(daemon.root) != [],
            timeout=60,
            what="the RUN sleep step running in a runc container",
            alive=lambda: _still_running(build),
        )
        assert buildkitd.mounts_under(folder)  # the step's rootfs is mounted
    finally:
        started = time.monotonic()
        daemon.stop()
        stopped_in = time.monotonic() - started
        build.wait(timeout=30)
    print(f"\nbuildkitd stopped during a build in {stopped_in:.1f}s")
    assert stopped_in < 15, "the running step was not killed first"
    assert build.returncode != 0
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert buildkitd.runc_containers(daemon.root) == []
    assert buildkitd.mounts_under(folder) == []
    # remove_cgroup only removes empty cgroups: gone means no process of the build is left.
    assert not list(pathlib.Path("/sys/fs/cgroup").glob(f"**/{daemon.cgroup_parent}"))


def _still_running(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"buildctl exited with {process.returncode} before the RUN step ran")


def _assert_runner_image(registry: _PlainRegistry, repository: str, tag: str, base: str) -> None:
    """The pushed runner is the stand-in core plus the scripts, executable, same entrypoint."""
    core_repository = base.split("/", 1)[1]
    core_layers = [
        layer["digest"] for layer in registry.manifest(core_repository, images.CORE_TAG)["layers"]
    ]
    layers = [layer["digest"] for layer in registry.manifest(repository, tag)["layers"]]
    assert layers[: len(core_layers)] == core_layers
    assert len(layers) == len(core_layers) + 2  # COPY scripts/, RUN chmod
    config = registry.image_config(repository, tag)
    assert config["config"]["Entrypoint"] == ["/scripts/entrypoint.sh"]
    chmodded = registry.layer_files(repository, tag, -1)
    for script in ("scripts/deploy.sh", "scripts/delete.sh"):
        assert chmodded[script] & 0o111 == 0o111, f"{script} not executable"
