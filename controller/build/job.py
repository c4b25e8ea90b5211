"""The Kubernetes Job (and context ConfigMap) that runs one build with rootless BuildKit. Pure.

The pod runs `buildctl-daemonless.sh build ...` in the pinned rootless BuildKit image, with the
settings rootless BuildKit needs (user 1000, seccomp and AppArmor unconfined, no process
sandbox, emptyDirs for its state), the push secret as `DOCKER_CONFIG`, and writes BuildKit's
metadata file to the termination message, from which the operator reads the digest. On failure
the termination message falls back to the end of the log: that is what `BuildFailed` shows.
The context (Dockerfile and scripts, fetched by the operator) travels in a ConfigMap with the
file modes kept. The Job name is derived from the RunnerImage name and the build key, so a
build is never started twice for one key: creating it again answers 409. The spec's resources
and placement (`PodPlacement`: node selector, tolerations, service account) go into the pod
template as given; none of them is part of the build key.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shlex
from collections.abc import Mapping
from typing import Any

from controller.api import identity
from controller.api import spec as model
from controller.build import buildctl

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
class Owner:
    """The RunnerImage that owns the build objects (for the garbage collector)."""

    name: str
    namespace: str
    uid: str


@dataclasses.dataclass(frozen=True)
class JobSettings:
    image: str = BUILDKIT_IMAGE
    ttl_seconds: int = DEFAULT_TTL
    service_account: str | None = None
    host_network: bool = False
    """Build pods share the node's network (a cluster whose pod network cannot reach the
    registry; the test node, whose pods get only loopback)."""


DEFAULT_SETTINGS = JobSettings()


@dataclasses.dataclass(frozen=True)
class PodPlacement:
    """Where the build pod runs and as whom, from `spec.build` (the Job backend's only).

    A service account named here wins over `JobSettings.service_account`.
    """

    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[model.Toleration, ...] = ()
    service_account: str | None = None

    @classmethod
    def of(cls, build: model.BuildSpec) -> PodPlacement:
        return cls(
            node_selector=dict(build.node_selector),
            tolerations=build.tolerations,
            service_account=build.service_account_name,
        )


DEFAULT_PLACEMENT = PodPlacement()


def job_name(owner_name: str, key: str, attempt: int = 1) -> str:
    """`<name>-build-<key12>[-r<attempt>]`, at most 56 characters (a DNS label, with room for
    the suffix the Job controller adds to its pods). A retried key gets a new name."""
    suffix = f"-build-{key[:12]}" + (f"-r{attempt}" if attempt > 1 else "")
    head = owner_name[: 52 - len(suffix)].rstrip("-.")
    if head != owner_name:
        head = f"{head}-{hashlib.sha256(owner_name.encode()).hexdigest()[:4]}"
    return f"{head}{suffix}"


def labels(owner: Owner, key: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_RUNNERIMAGE: owner.name[:63].rstrip("-._"),
        LABEL_BUILD_KEY: key[:63],
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": identity.API_VERSION,
        "kind": identity.KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


MAX_CONTEXT_BYTES = 900 * 1024
"""A ConfigMap holds at most 1 MiB; runner contexts (a Dockerfile and scripts) are far smaller."""


@dataclasses.dataclass(frozen=True)
class ContextFile:
    path: str
    content: bytes
    executable: bool = False


def context_config_map(
    owner: Owner, key: str, files: tuple[ContextFile, ...], *, attempt: int = 1
) -> dict[str, Any]:
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
            "name": job_name(owner.name, key, attempt),
            "namespace": owner.namespace,
            "labels": labels(owner, key),
            "ownerReferences": [owner_reference(owner)],
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
    owner: Owner,
    key: str,
    request: buildctl.BuildRequest,
    *,
    reason: str,
    timeout_seconds: int,
    push_secret: str | None,
    resources: model.ResourceRequirements,
    context_files: tuple[ContextFile, ...],
    settings: JobSettings = DEFAULT_SETTINGS,
    placement: PodPlacement = DEFAULT_PLACEMENT,
    attempt: int = 1,
) -> dict[str, Any]:
    """The Job for one build; its context is the ConfigMap of `context_config_map`."""
    name = job_name(owner.name, key, attempt)
    build = shlex.join(["buildctl-daemonless.sh", "build", *buildctl.arguments(request)])
    metadata_file = shlex.quote(request.metadata_file)
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
    if push_secret:
        env.append({"name": "DOCKER_CONFIG", "value": f"{HOME}/.docker"})
        mounts.append({"name": "docker-config", "mountPath": f"{HOME}/.docker", "readOnly": True})
        volumes.append(
            {
                "name": "docker-config",
                "secret": {
                    "secretName": push_secret,
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
                "resources": resource_requirements(resources),
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
            ANNOTATION_IMAGE: request.image,
            ANNOTATION_REASON: reason,
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
            "activeDeadlineSeconds": timeout_seconds,
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
