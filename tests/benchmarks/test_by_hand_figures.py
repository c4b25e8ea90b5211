"""The operator against the same steps by hand (issue 16): apply -> Ready, catalog commit included.

Per backend with a by-hand equivalent, in one run and on the same daemons, registry and git
server: `hack/by-hand/<backend>.sh` builds and pushes the runner image (`buildctl`, resp.
`docker build` + `docker push`), then clones the catalog, sets the manifest's `runner:` line,
commits and pushes; the operator goes from `kubectl apply` of the changed RunnerImage to
`Ready=True` with its catalog commit in. One untimed round each first (base image pulled, caches
warm), then three timed rounds each, alternating. Two scenarios, each printing both medians and
the ratio per backend; the goal is an operator at most 1.5 times as slow as a person typing the
commands:

- `example`: the example's Dockerfile with a changed script each round: a sub-second build.
  By hand takes 0.5-0.8 s in all; the operator adds a fixed part to the same build and push:
  `kubectl apply` and kopf to the reconcile, the verify step (the tag resolves to the digest,
  ADE conformance read from the registry), the catalog's fetch, commit and push, the status
  write (see the per-step timings at `ADE_LOG_LEVEL=DEBUG`). On this 2-core machine that part
  is about as long as the build itself, so the ratio stays above the goal.
- `install`: a runner that installs its tools (`INSTALL_STEP`: 2 s and a 4 MiB layer, the stand-in
  for the Azure CLI or Bicep), rebuilt each round because its tools' version changed (a build
  arg), as a base image or tool update does. The same fixed part over a build of a few seconds.

The test prints whether the goal holds per scenario and backend and fails only past
`REGRESSION` (a guard against regressions, loose as in the other benchmarks).

The Job backend's by-hand equivalent (a Job running the same `buildctl-daemonless.sh`) runs on
the real node: `tests/node/test_by_hand_job.py`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client, config

from tests.benchmarks import test_build_figures
from tests.conftest import (
    GIT_PASSWORD,
    GIT_USER,
    PUSH_PASSWORD,
    PUSH_USER,
    StartOperator,
    docker_config_json,
)
from tests.e2e import catalogs
from tests.env import buildkitd, controlplane, dockerd, gitserver, images, kube, registry

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

ROUNDS = 3
GOAL = 1.5
"""Issue 16: apply -> Ready at most 1.5 times the same steps by hand."""
REGRESSION = 3.5
"""What fails the test: far past the figures measured (see the module docstring)."""
BY_HAND = controlplane.REPO / "hack" / "by-hand"
BACKENDS = {"BuildKitDaemon": "buildkitd.sh", "Docker": "docker.sh"}
INSTALL_STEP = (
    "ARG TOOLS_VERSION\n"
    "RUN sleep 2 && mkdir -p /opt/tools && head -c 4194304 /dev/urandom > /opt/tools/cli"
    " && echo ${TOOLS_VERSION} > /opt/tools/version\n"
)
SCENARIOS = {
    "example": test_build_figures.DOCKERFILE,
    "install": test_build_figures.DOCKERFILE.replace(
        "COPY scripts/", INSTALL_STEP + "COPY scripts/"
    ),
}
"""Scenario -> Dockerfile. Each round changes a script and the build arg TOOLS_VERSION (which
only the `install` Dockerfile uses)."""


@pytest.fixture(scope="module")
def daemons(
    tmp_path_factory: pytest.TempPathFactory, oci_registry: registry.Registry
) -> Iterator[tuple[buildkitd.BuildkitDaemon, dockerd.DockerDaemon]]:
    """A buildkitd and a dockerd, both trusting the test registry, shared by both sides."""
    short = pathlib.Path(tempfile.mkdtemp(prefix="bh-"))
    kit = buildkitd.BuildkitDaemon(short / "bk", insecure_registries=[oci_registry.host])
    engine = dockerd.DockerDaemon(short / "dk", insecure_registries=[oci_registry.host])
    (short / "bk").mkdir()
    (short / "dk").mkdir()
    kit.start()
    try:
        engine.start()
        try:
            yield kit, engine
        finally:
            engine.stop()
    finally:
        kit.stop()
        shutil.rmtree(short, ignore_errors=True)


def _manifest(side: str, backend: str) -> str:
    return f"Environments/{side}-{backend.lower()}/environment.yaml"


class ByHand:
    """Runs `hack/by-hand/<script>` on a context folder whose deploy.sh changes each round."""

    def __init__(
        self,
        folder: pathlib.Path,
        env: dict[str, str],
        url: str,
        host: str,
        core: str,
        dockerfile: str,
    ) -> None:
        self.folder, self.env, self.url, self.host, self.core = folder, env, url, host, core
        self.pushed = ""
        """What the last round pushed by hand (`image@digest`)."""
        self.image_seen = ""
        """What the operator's last round pointed the catalog at."""
        (folder / "scripts").mkdir(parents=True)
        (folder / "Dockerfile").write_text(dockerfile)
        (folder / "scripts" / "delete.sh").write_text("#!/bin/sh\n")

    def run(
        self, backend: str, namespace: str, script: str, tag: str, tools: str
    ) -> tuple[float, str]:
        (self.folder / "scripts" / "deploy.sh").write_text(script)
        image = f"{self.host}/{namespace}/by-hand-{backend.lower()}:{tag}"
        argv = [
            str(BY_HAND / BACKENDS[backend]),
            str(self.folder),
            image,
            self.url,
            _manifest("by-hand", backend),
            f"BASE_IMAGE={self.core}",
            "IMAGE_VERSION=4.0",
            f"TOOLS_VERSION={tools}",
        ]
        start = time.monotonic()
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=600, check=False
        )
        seconds = time.monotonic() - start
        assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}"
        return seconds, done.stdout.strip()


def _operator_round(
    cluster: kube.Cluster,
    api: client.CustomObjectsApi,
    namespace: str,
    body: dict[str, Any],
    previous: str | None,
) -> tuple[float, str]:
    """`kubectl apply` of `body` to Ready=True on its generation with the catalog pointing at
    a new image: (seconds, that image)."""
    name = body["metadata"]["name"]
    start = time.monotonic()
    cluster.apply(namespace, json.dumps(body))

    def done() -> str | None:
        obj = cast(
            dict[str, Any],
            api.get_namespaced_custom_object(
                "runners.ade.dev", "v1alpha1", namespace, "runnerimages", name
            ),
        )
        seen[:] = [obj]
        status = obj.get("status") or {}
        ready = kube.condition(obj, "Ready") or {}
        stalled = kube.condition(obj, "Stalled") or {}
        if stalled.get("status") == "True":
            raise AssertionError(f"{name} stalled: {ready}")
        generation = obj["metadata"]["generation"]
        image = str((status.get("catalog") or {}).get("image") or "")
        built = (status.get("latestImage") or {}).get("reference") or "-"
        if (
            ready.get("status") == "True"
            and ready.get("observedGeneration") == generation
            and status.get("observedGeneration") == generation
            and image == built  # the catalog pins the tag the build pushed (the default)
            and image != previous
        ):
            return image
        return None

    seen: list[dict[str, Any]] = []
    try:
        image = kube.wait_for(
            done, timeout=120, what=f"{name} Ready with its catalog commit", interval=0.02
        )
    except AssertionError as error:
        raise AssertionError(f"{error}: {[(seen or [{}])[0].get('status')]}") from None
    return time.monotonic() - start, image


@pytest.mark.timeout(900)
def test_operator_against_the_same_steps_by_hand(
    control_plane: controlplane.ControlPlane,
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    oci_registry: registry.Registry,
    daemons: tuple[buildkitd.BuildkitDaemon, dockerd.DockerDaemon],
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kit, engine = daemons
    host = oci_registry.host
    credentials = tmp_path / "docker-config"
    with buildkitd.push_credentials(credentials, docker_config_json(host)):
        core = f"{host}/{namespace}/core"
        images.push_core(kit, f"{core}:4.0")
    (engine.client_config / "config.json").write_text(docker_config_json(host))

    manifests = {
        _manifest(side, backend): catalogs.MANIFEST.format(name=f"{side}-{backend.lower()}")
        for side in ("by-hand", "op")
        for backend in BACKENDS
    }
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        server.create_repo("catalog", manifests)
        catalogs.git_secret(cluster, namespace)
        cluster.plane.kubectl(
            "create", "secret", "docker-registry", "push", "-n", namespace,
            f"--docker-server={host}", f"--docker-username={PUSH_USER}",
            f"--docker-password={PUSH_PASSWORD}",
        )  # fmt: skip
        start_operator(
            ADE_BUILDKIT_ADDR=kit.address,
            DOCKER_HOST=engine.host,
            PATH=f"{kit.bin}:{os.environ['PATH']}",
        )
        api = client.CustomObjectsApi(config.new_client_from_config(str(control_plane.kubeconfig)))
        home = tmp_path / "home"
        home.mkdir()
        by_hand_env = {
            **gitserver.git_env(home),
            "PATH": f"{kit.bin}:{os.environ['PATH']}",
            "BUILDKIT_HOST": kit.address,
            "DOCKER_CONFIG": str(credentials),
        }
        figures: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
        for scenario, dockerfile in SCENARIOS.items():
            for backend in BACKENDS:
                env = dict(by_hand_env)
                if backend == "Docker":
                    env.update(engine.env, DOCKER=dockerd.DOCKER_CLI, DOCKER_BUILDKIT="0")
                hand = ByHand(
                    tmp_path / f"context-{scenario}-{backend}",
                    env,
                    server.url_with_user("catalog"),
                    host,
                    core,
                    dockerfile,
                )
                figures[scenario, backend] = _rounds(
                    hand, scenario, backend, dockerfile, (cluster, api, namespace, server, core)
                )
                assert _digest(hand.pushed) in _read(server, _manifest("by-hand", backend), home)
                assert hand.image_seen in _read(server, _manifest("op", backend), home)
    ratios = {}
    with capsys.disabled():
        for (scenario, backend), (by_hand, by_operator) in figures.items():
            hand_median, op_median = statistics.median(by_hand), statistics.median(by_operator)
            ratios[scenario, backend] = op_median / hand_median
            goal = "met" if ratios[scenario, backend] <= GOAL else "NOT met"
            print(
                f"\n[benchmark] {scenario}, {backend}, build+push+catalog commit: by hand "
                f"median {hand_median:.2f} s ({_list(by_hand)}), operator apply -> Ready median "
                f"{op_median:.2f} s ({_list(by_operator)}): ratio {ratios[scenario, backend]:.2f} "
                f"(goal {GOAL}: {goal})"
            )
    slow = {f"{key[0]}/{key[1]}": f"{r:.2f}" for key, r in ratios.items() if r > REGRESSION}
    assert not slow, f"the operator is more than {REGRESSION}x the steps by hand: {slow}"


def _rounds(
    hand: ByHand,
    scenario: str,
    backend: str,
    dockerfile: str,
    where: tuple[kube.Cluster, client.CustomObjectsApi, str, gitserver.GitServer, str],
) -> tuple[list[float], list[float]]:
    """One warm-up and `ROUNDS` timed rounds, alternating: (by hand, operator) seconds."""
    cluster, api, namespace, server, core = where
    by_hand: list[float] = []
    by_operator: list[float] = []
    previous: str | None = None
    for round_ in range(ROUNDS + 1):  # round 0: warm-up, not counted
        seconds, hand.pushed = hand.run(
            backend,
            namespace,
            f"#!/bin/sh\necho by hand {round_}\n",
            f"{scenario}-r{round_}",
            tools=f"by-hand-{round_}",
        )
        body = test_build_figures.runner_body(
            namespace,
            hand.host,
            backend=backend,
            base=core,
            script=f"#!/bin/sh\necho op {round_}\n",
            name=f"op-{backend.lower()}",
            dockerfile=dockerfile,
        )
        body["spec"]["buildArgs"]["TOOLS_VERSION"] = f"op-{round_}"
        catalogs.with_catalog(body, server.url("catalog"), [_manifest("op", backend)])
        spent, previous = _operator_round(cluster, api, namespace, body, previous)
        if round_:
            by_hand.append(seconds)
            by_operator.append(spent)
    assert previous is not None
    hand.image_seen = previous
    return by_hand, by_operator


def _digest(pushed: str) -> str:
    return pushed.rsplit("@", 1)[1]


def _list(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _read(server: gitserver.GitServer, path: str, home: pathlib.Path) -> str:
    clone = home / f"check-{time.monotonic_ns()}"
    subprocess.run(
        ["git", "clone", "-q", server.url_with_user("catalog"), str(clone)],
        check=True,
        capture_output=True,
        env=gitserver.git_env(home),
    )
    return (clone / path).read_text()
