"""What the by-hand benchmarks share (issue 16: apply -> Ready at most 1.5 times the same steps
by hand): the operator's side of a round, from `kubectl apply` of a changed RunnerImage to
`Ready=True` with its catalog commit in, and the report line printed beside the by-hand figure.
Used by `tests/benchmarks/test_by_hand_figures.py` (BuildKitDaemon, Docker) and
`tests/node/test_by_hand_job.py` (Job, on the real node)."""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import time
from collections.abc import Sequence
from typing import Any, cast

from kubernetes import client, config

from tests.benchmarks import test_build_figures
from tests.env import controlplane, gitserver, kube

GOAL = 1.5
"""Issue 16: apply -> Ready at most 1.5 times the same steps by hand."""
REGRESSION = 3.5
"""What fails a by-hand benchmark: far past the figures measured (see the test modules)."""
BY_HAND = controlplane.REPO / "hack" / "by-hand"


class ByHand:
    """Runs `hack/by-hand/<script>` on a context folder (`dockerfile`, `build_args`) whose
    deploy.sh changes each round."""

    def __init__(
        self,
        script: str,
        folder: pathlib.Path,
        env: dict[str, str],
        url: str,
        build_args: dict[str, str],
        dockerfile: str = test_build_figures.DOCKERFILE,
    ) -> None:
        self.script, self.folder, self.env, self.url = script, folder, env, url
        self.build_args, self.dockerfile = build_args, dockerfile
        (folder / "scripts").mkdir(parents=True)
        (folder / "Dockerfile").write_text(dockerfile)
        (folder / "scripts" / "delete.sh").write_text("#!/bin/sh\n")

    def run(self, image: str, manifest: str, deploy: str) -> tuple[float, str]:
        """Build and push `image` with `deploy` as deploy.sh, point `manifest` at it: (seconds,
        the reference the script printed)."""
        (self.folder / "scripts" / "deploy.sh").write_text(deploy)
        argv = [str(BY_HAND / self.script), str(self.folder), image, self.url, manifest]
        argv += [f"{name}={value}" for name, value in self.build_args.items()]
        start = time.monotonic()
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=600, check=False
        )
        seconds = time.monotonic() - start
        assert done.returncode == 0, f"{self.script} failed:\n{done.stdout}\n{done.stderr}"
        return seconds, done.stdout.strip()


def custom_objects(plane: controlplane.ControlPlane) -> client.CustomObjectsApi:
    """The client `operator_round` polls the RunnerImage with (as the test's admin)."""
    return client.CustomObjectsApi(config.new_client_from_config(str(plane.kubeconfig)))


def warm_openapi(cluster: kube.Cluster) -> None:
    """Have the API server build its OpenAPI v2 document, as a running cluster has it: a fresh
    one builds it on the first request (4 s on this machine), and that request is the first
    `kubectl apply` of a change, the first timed operator round."""
    cluster.plane.kubectl("get", "--raw", "/openapi/v2")


def operator_round(
    cluster: kube.Cluster,
    api: client.CustomObjectsApi,
    namespace: str,
    body: dict[str, Any],
    previous: str | None,
    *,
    timeout: float = 120,
    applies: list[float] | None = None,
) -> tuple[float, str]:
    """`kubectl apply` of `body` to Ready=True on its generation with the catalog pointing at
    a new image: (seconds, that image). `applies` gets how long `kubectl apply` itself took."""
    name = body["metadata"]["name"]
    start = time.monotonic()
    cluster.apply(namespace, json.dumps(body))
    if applies is not None:
        applies.append(time.monotonic() - start)

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
            done, timeout=timeout, what=f"{name} Ready with its catalog commit", interval=0.02
        )
    except AssertionError as error:
        raise AssertionError(f"{error}: {[(seen or [{}])[0].get('status')]}") from None
    return time.monotonic() - start, image


def report(
    backend: str, by_hand: list[float], by_operator: list[float], applies: Sequence[float] = ()
) -> float:
    """Print both medians, the rounds and the ratio against `GOAL` (and how much of the
    operator's rounds `kubectl apply` itself took, which the steps by hand do not run); the
    ratio."""
    hand_median, op_median = statistics.median(by_hand), statistics.median(by_operator)
    ratio = op_median / hand_median
    goal = "met" if ratio <= GOAL else "NOT met"
    apply = f", of which kubectl apply {statistics.median(applies):.2f} s" if applies else ""
    print(
        f"\n[benchmark] {backend}, one change, build+push+catalog commit: by hand "
        f"median {hand_median:.2f} s ({_list(by_hand)}), operator apply -> Ready median "
        f"{op_median:.2f} s ({_list(by_operator)}{apply}): ratio {ratio:.2f} "
        f"(goal {GOAL}: {goal})"
    )
    return ratio


def _list(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def read_catalog(server: gitserver.GitServer, path: str, home: pathlib.Path) -> str:
    """`path` in a fresh clone of the server's `catalog` repository."""
    clone = home / f"check-{time.monotonic_ns()}"
    subprocess.run(
        ["git", "clone", "-q", server.url_with_user("catalog"), str(clone)],
        check=True,
        capture_output=True,
        env=gitserver.git_env(home),
    )
    return (clone / path).read_text()
