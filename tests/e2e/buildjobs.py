"""Helpers for tests of Job builds on kwok nodes: the RunnerImage, its push Secret, its Jobs, and
finishing a build pod the way a real one finishes (image pushed, digest in the termination
message)."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import PUSH_PASSWORD, PUSH_USER
from tests.env import kube, kwok, node, oci

NAME = "job-runner"


def runner_image(namespace: str, host: str, base: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": NAME},
        "spec": {
            "source": {
                "inline": {
                    "dockerfile": f"FROM {base}\nCOPY scripts/ /scripts/\n",
                    "scripts": {
                        "deploy.sh": "#!/bin/sh\necho deploy\n",
                        "delete.sh": "#!/bin/sh\n",
                    },
                }
            },
            "image": {
                "registry": host,
                "repository": f"{namespace}/runner",
                "pushSecretRef": {"name": "push"},
            },
            "build": {"backend": "Job", "timeout": "10m"},
            **spec,
        },
    }


def on_real_node(body: dict[str, Any], where: node.Node) -> dict[str, Any]:
    """`body` (a RunnerImage) with its build pod placed on the real node `where`."""
    body["spec"]["build"].update(node.placement(where.name))
    return body


def push_secret(cluster: kube.Cluster, namespace: str, host: str) -> None:
    cluster.plane.kubectl(
        "create", "secret", "docker-registry", "push", "-n", namespace,
        f"--docker-server={host}", f"--docker-username={PUSH_USER}",
        f"--docker-password={PUSH_PASSWORD}",
    )  # fmt: skip


def jobs(cluster: kube.Cluster, namespace: str, name: str = NAME) -> list[dict[str, Any]]:
    """The build Jobs of RunnerImage `name` (every build Job in the namespace for "")."""
    selector = f"runners.ade.dev/runnerimage={name}" if name else "runners.ade.dev/runnerimage"
    out = cluster.plane.kubectl("get", "jobs", "-n", namespace, "-l", selector, "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def running_pod(cluster: kube.Cluster, namespace: str, job: str) -> str:
    def probe() -> str | None:
        out = cluster.plane.kubectl(
            "get", "pods", "-n", namespace, "-l", f"job-name={job}", "-o", "json"
        )
        for pod in json.loads(out.stdout)["items"]:
            if pod.get("status", {}).get("phase") == "Running":
                return str(pod["metadata"]["name"])
        return None

    return kube.wait_for(probe, timeout=30, what=f"a running pod of Job {job}")


BASE_ENTRYPOINT = ["/usr/local/bin/entrypoint.sh"]
"""The entrypoint of the `base_image` fixture's stand-in core image."""


def runner_built(**scripts: tuple[str, int]) -> oci.Image:
    """What building `runner_image`'s Dockerfile yields: the base's layer and entrypoint, and a
    layer of scripts (`deploy_sh=(text, mode)` overrides one; conformant by default)."""
    files = {"deploy.sh": ("#!/bin/sh\necho deploy\n", 0o755), "delete.sh": ("#!/bin/sh\n", 0o755)}
    files.update({name.replace("_sh", ".sh"): value for name, value in scripts.items()})
    return oci.Image(
        layers=[
            [oci.file("usr/local/bin/entrypoint.sh", '#!/bin/sh\nexec "$@"\n', 0o755)],
            [oci.file(f"scripts/{name}", text, mode) for name, (text, mode) in files.items()],
        ],
        entrypoint=BASE_ENTRYPOINT,
    )


def finish(
    cluster: kube.Cluster,
    namespace: str,
    job: dict[str, Any],
    pusher: oci.Pusher,
    built: oci.Image | None = None,
) -> str:
    """Do what the build pod would: push the image (`built`, default `runner_built()`), then
    terminate reporting its digest."""
    image = job["metadata"]["annotations"]["runners.ade.dev/image"]
    repository, _, tag = image.split("/", 1)[1].rpartition(":")
    built = built or runner_built()
    digest = pusher.push_image(repository, built, tag=tag).digest
    pod = running_pod(cluster, namespace, job["metadata"]["name"])
    cluster.plane.kubectl(
        "annotate", "pod", pod, "-n", namespace, f"{kwok.DIGEST_ANNOTATION}={digest}"
    )
    cluster.plane.kubectl("label", "pod", pod, "-n", namespace, f"{kwok.COMPLETE_LABEL}=true")
    return digest


def one_job(cluster: kube.Cluster, namespace: str, count: int = 1) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        found = jobs(cluster, namespace)
        return found if len(found) >= count else None

    return kube.wait_for(probe, timeout=30, what=f"{count} build Job(s)")
