"""The Kubernetes Job (and context ConfigMap) that runs one build with rootless BuildKit. Pure.

The pod runs `buildctl-daemonless.sh build ...` in the pinned rootless BuildKit image, with the
settings rootless BuildKit needs (user 1000, seccomp and AppArmor unconfined, no process
sandbox, emptyDirs for its state), the push secret as `DOCKER_CONFIG`, and writes BuildKit's
metadata file to the termination message, from which the operator reads the digest. On failure
the termination message falls back to the end of the log: that is what `BuildFailed` shows.
The context (Dockerfile and scripts, fetched by the operator) travels in a ConfigMap with the
file modes kept, mounted at `CONTEXT_MOUNT`: this renderer makes the Job's own buildctl
request from the backend-neutral plan. The Job is named after the build
(`backend.build_name`: the RunnerImage name, the build key and the attempt), so a build is never
started twice for one key: creating it again answers 409. The spec's resources and placement
(`backend.PodPlacement`: node selector, tolerations, service account) go into the pod template
as given; none of them is part of the build key. `finished` reads the operator's watch of its
Jobs: which RunnerImage to wake when a build Job ends.
"""

from __future__ import annotations

import base64
import dataclasses
import shlex
from collections.abc import Mapping
from typing import Any

from controller.api import identity
from controller.api import spec as model
from controller.builds import backend, buildctl

BUILDKIT_IMAGE = "moby/buildkit:v0.34.2-rootless"
"""Pinned: never a floating tag (Shipwright's users were broken by `master`)."""

LABEL_RUNNERIMAGE = f"{identity.GROUP}/runnerimage"
LABEL_BUILD_KEY = f"{identity.GROUP}/build-key"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "ade-runner-operator"
ANNOTATION_BUILD_KEY = f"{identity.GROUP}/build-key"
ANNOTATION_IMAGE = f"{identity.GROUP}/image"
ANNOTATION_REASON = f"{identity.GROUP}/build-reason"

HOME = "/home/user"
CONTEXT_MOUNT = "/workspace/context"
METADATA_FILE = "/tmp/metadata.json"  # noqa: S108 - inside the build pod's own file system
CONTAINER = "buildkit"
DEFAULT_TTL = 24 * 3600


@dataclasses.dataclass(frozen=True)
class JobSettings:
    image: str = BUILDKIT_IMAGE
    ttl_seconds: int = DEFAULT_TTL
    service_account: str | None = None
    host_network: bool = False
    """Build pods share the node's network (a cluster whose pod network cannot reach the
    registry; the test node, whose pods get only loopback)."""


DEFAULT_SETTINGS = JobSettings()


def labels(owner: backend.Owner, key: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_RUNNERIMAGE: owner.name[:63].rstrip("-._"),
        LABEL_BUILD_KEY: key[:63],
    }


def owner_reference(owner: backend.Owner) -> dict[str, Any]:
    return {
        "apiVersion": identity.API_VERSION,
        "kind": identity.KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


FAILED_CONDITIONS = frozenset({"Failed", "FailureTarget"})
"""The conditions the Job backend reads a failed build from (`job_backend.state`)."""


@dataclasses.dataclass(frozen=True)
class FinishedJob:
    """A build Job seen finished: `owner` is the RunnerImage whose reconcile it should wake."""

    namespace: str
    owner: str
    name: str


def finished(event_type: str | None, body: Mapping[str, Any]) -> FinishedJob | None:
    """The build Job a watch event shows finished (a pod succeeded or failed, or the Job
    controller's verdict), with the RunnerImage that controls it. None for the initial listing
    (a restarted operator resumes every RunnerImage anyway), a deletion, a Job still running and
    a Job no RunnerImage controls."""
    if event_type not in ("ADDED", "MODIFIED"):
        return None
    status = body.get("status") or {}
    # Finished as the Job backend reads it, no earlier: a wake-up on `SuccessCriteriaMet` alone
    # found the build still running (no `succeeded` count yet) and the next event was not told.
    conditions = status.get("conditions") or []
    if not status.get("succeeded") and not any(
        c.get("type") in FAILED_CONDITIONS and c.get("status") == "True" for c in conditions
    ):
        return None
    metadata = body.get("metadata") or {}
    for reference in metadata.get("ownerReferences") or []:
        group = str(reference.get("apiVersion", "")).split("/", 1)[0]
        if reference.get("controller") and (group, reference.get("kind")) == (
            identity.GROUP,
            identity.KIND,
        ):
            return FinishedJob(
                namespace=str(metadata.get("namespace", "")),
                owner=str(reference.get("name", "")),
                name=str(metadata.get("name", "")),
            )
    return None


MAX_CONTEXT_BYTES = 900 * 1024
"""A ConfigMap holds at most 1 MiB; runner contexts (a Dockerfile and scripts) are far smaller."""


@dataclasses.dataclass(frozen=True)
class ContextFile:
    """One file of the build context, read when the Job is created (never on a state poll)."""

    path: str
    content: bytes
    executable: bool = False


def request(plan: backend.BuildPlan) -> buildctl.BuildRequest:
    """The buildctl request of the build pod: the context from the mounted ConfigMap, BuildKit's
    metadata file in the pod's own file system (copied to the termination message)."""
    return plan.request(context=CONTEXT_MOUNT, metadata_file=METADATA_FILE)


def context_config_map(plan: backend.BuildPlan, files: tuple[ContextFile, ...]) -> dict[str, Any]:
    """The build context as a ConfigMap; `context_items` maps its keys back to paths and modes."""
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for index, item in enumerate(files):
        name = f"f{index:04d}"
        try:
            data[name] = item.content.decode("utf-8")
        except UnicodeDecodeError:
            binary[name] = base64.b64encode(item.content).decode()
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": plan.name,
            "namespace": plan.owner.namespace,
            "labels": labels(plan.owner, plan.key),
            "ownerReferences": [owner_reference(plan.owner)],
        },
        "data": data,
    }
    if binary:
        body["binaryData"] = binary
    return body


def context_items(files: tuple[ContextFile, ...]) -> list[dict[str, Any]]:
    return [
        {"key": f"f{index:04d}", "path": item.path, "mode": 0o755 if item.executable else 0o644}
        for index, item in enumerate(files)
    ]


def build_job(
    plan: backend.BuildPlan,
    *,
    context_files: tuple[ContextFile, ...],
    settings: JobSettings = DEFAULT_SETTINGS,
) -> dict[str, Any]:
    """The Job for one build; its context is the ConfigMap of `context_config_map`."""
    name, owner, key, placement = plan.name, plan.owner, plan.key, plan.placement
    build = shlex.join(["buildctl-daemonless.sh", "build", *buildctl.arguments(request(plan))])
    metadata_file = shlex.quote(METADATA_FILE)
    script = f"set -e\n{build}\ncat {metadata_file} > /dev/termination-log\n"
    mounts: list[dict[str, Any]] = [
        {"name": "buildkitd", "mountPath": f"{HOME}/.local/share/buildkit"},
        {"name": "tmp", "mountPath": f"{HOME}/.local/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "buildkitd", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    env: list[dict[str, Any]] = [
        {"name": "BUILDKITD_FLAGS", "value": "--oci-worker-no-process-sandbox"},
        {"name": "HOME", "value": HOME},
    ]
    if plan.push_secret:
        env.append({"name": "DOCKER_CONFIG", "value": f"{HOME}/.docker"})
        mounts.append({"name": "docker-config", "mountPath": f"{HOME}/.docker", "readOnly": True})
        volumes.append(
            {
                "name": "docker-config",
                "secret": {
                    "secretName": plan.push_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
    mounts.append({"name": "context", "mountPath": CONTEXT_MOUNT, "readOnly": True})
    volumes.append(
        {"name": "context", "configMap": {"name": name, "items": context_items(context_files)}}
    )
    unconfined = {"type": "Unconfined"}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
        "containers": [
            {
                "name": CONTAINER,
                "image": settings.image,
                "command": ["/bin/sh", "-c", script],
                "env": env,
                "volumeMounts": mounts,
                "resources": resource_requirements(plan.resources),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "securityContext": {
                    "runAsUser": 1000,
                    "runAsGroup": 1000,
                    "seccompProfile": unconfined,
                    "appArmorProfile": unconfined,
                },
            }
        ],
        "volumes": volumes,
    }
    service_account = placement.service_account or settings.service_account
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if placement.node_selector:
        pod_spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod_spec["tolerations"] = [toleration(item) for item in placement.tolerations]
    if settings.host_network:
        pod_spec["hostNetwork"] = True
        pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    metadata = {
        "labels": labels(owner, key),
        "annotations": {
            ANNOTATION_BUILD_KEY: key,
            ANNOTATION_IMAGE: plan.image,
            ANNOTATION_REASON: plan.reason,
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            **metadata,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": plan.timeout_seconds,
            "ttlSecondsAfterFinished": settings.ttl_seconds,
            "template": {"metadata": metadata, "spec": pod_spec},
        },
    }


def resource_requirements(resources: model.ResourceRequirements) -> dict[str, Any]:
    """A container's `resources`: the requests and limits that are set."""
    out: dict[str, Any] = {}
    if resources.requests:
        out["requests"] = dict(resources.requests)
    if resources.limits:
        out["limits"] = dict(resources.limits)
    return out


def toleration(item: model.Toleration) -> dict[str, Any]:
    """A pod's toleration; unset fields left out, as the API server would."""
    out: dict[str, Any] = {"operator": item.operator.value}
    if item.key:
        out["key"] = item.key
    if item.value:
        out["value"] = item.value
    if item.effect is not None:
        out["effect"] = item.effect.value
    if item.toleration_seconds is not None:
        out["tolerationSeconds"] = item.toleration_seconds
    return out
