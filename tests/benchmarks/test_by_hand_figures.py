"""The operator against the same steps by hand (issue 16): apply -> Ready, catalog commit included.

Per backend with a by-hand equivalent, in one run and on the same daemons, registry and git
server: `hack/by-hand/<backend>.sh` builds and pushes the runner image (`buildctl`, resp.
`docker build` + `docker push`), then clones the catalog, sets the manifest's `runner:` line,
commits and pushes; the operator goes from `kubectl apply` of the changed RunnerImage to
`Ready=True` with its catalog commit in. The same Dockerfile each round, with a changed script
(both sides rebuild the same steps); one untimed round each first (base image pulled, caches
warm), then three timed rounds each, alternating. Prints both medians and the ratio per backend;
the goal is an operator at most 1.5 times as slow as a person typing the commands.

The goal (`by_hand.GOAL`, 1.5) is not met on this 2-core machine for this sub-second build: by
hand takes 0.5-0.8 s in all (build and push ~0.5 s, clone, commit and push ~0.2 s); the operator
adds a fixed ~0.6-0.8 s to the same build and push: `kubectl apply` and kopf to the reconcile
(~0.2 s), the verify step (tag resolves to the digest, ADE conformance read from the registry,
~0.2 s), the catalog writer's batch window (`ADE_CATALOG_BATCH_WINDOW`, 0.2 s) and its fetch,
commit and push (~0.25 s); measured ratios 1.8-2.8. For a build of tens of seconds the fixed part
fades and the ratio nears 1. The test prints whether the goal holds and fails only past
`by_hand.REGRESSION` (a guard against regressions, loose as in the other benchmarks).

The Job backend's by-hand equivalent (a Job running the same `buildctl-daemonless.sh`) needs a
real node: `tests/node/test_by_hand_job.py`. The operator's side of a round and the report line
are shared with it (`tests.benchmarks.by_hand`).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.benchmarks import by_hand as by_hand_
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
BACKENDS = {"BuildKitDaemon": "buildkitd.sh", "Docker": "docker.sh"}


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
        by_hand_.warm_openapi(cluster)
        api = by_hand_.custom_objects(control_plane)
        home = tmp_path / "home"
        home.mkdir()
        by_hand_env = {
            **gitserver.git_env(home),
            "PATH": f"{kit.bin}:{os.environ['PATH']}",
            "BUILDKIT_HOST": kit.address,
            "DOCKER_CONFIG": str(credentials),
        }
        figures: dict[str, tuple[list[float], list[float]]] = {}
        for backend, script in BACKENDS.items():
            env = dict(by_hand_env)
            if backend == "Docker":
                env.update(engine.env, DOCKER=dockerd.DOCKER_CLI, DOCKER_BUILDKIT="0")
            hand = by_hand_.ByHand(
                script,
                tmp_path / f"context-{backend}",
                env,
                server.url_with_user("catalog"),
                {"BASE_IMAGE": core, "IMAGE_VERSION": "4.0"},
            )
            by_hand: list[float] = []
            by_operator: list[float] = []
            previous: str | None = None
            for round_ in range(ROUNDS + 1):  # round 0: warm-up, not counted
                seconds, pushed = hand.run(
                    f"{host}/{namespace}/by-hand-{backend.lower()}:r{round_}",
                    _manifest("by-hand", backend),
                    f"#!/bin/sh\necho by hand {round_}\n",
                )
                body = test_build_figures.runner_body(
                    namespace,
                    host,
                    backend=backend,
                    base=core,
                    script=f"#!/bin/sh\necho op {round_}\n",
                    name=f"op-{backend.lower()}",
                )
                catalogs.with_catalog(body, server.url("catalog"), [_manifest("op", backend)])
                spent, previous = by_hand_.operator_round(cluster, api, namespace, body, previous)
                if round_:
                    by_hand.append(seconds)
                    by_operator.append(spent)
            assert pushed.rsplit("@", 1)[1] in by_hand_.read_catalog(
                server, _manifest("by-hand", backend), home
            )
            assert previous is not None
            assert previous in by_hand_.read_catalog(server, _manifest("op", backend), home)
            figures[backend] = (by_hand, by_operator)
    with capsys.disabled():
        ratios = {backend: by_hand_.report(backend, *rounds) for backend, rounds in figures.items()}
    slow = {b: f"{ratio:.2f}" for b, ratio in ratios.items() if ratio > by_hand_.REGRESSION}
    assert not slow, f"the operator is more than {by_hand_.REGRESSION}x the steps by hand: {slow}"
