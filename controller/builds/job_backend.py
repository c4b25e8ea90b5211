"""The Job backend: one Kubernetes Job running rootless BuildKit per build key.

Starting reads the context folder (this backend is the only one that ships the files: in a
ConfigMap) and creates the ConfigMap and the Job under the build's name; a 409 means the build
already exists and is adopted (after an operator restart, or a second reconcile). Only starting
reads the context: the state polls read the Job and its pod, never the files.
The state is read from the Job and its pod: the digest from the termination message (BuildKit's
metadata file, parsed as JSON), the failure from the end of the log, and a pod left Pending
longer than `pending_timeout` fails the build with the scheduler's reason and is deleted; one whose
image cannot be pulled fails sooner (`PULL_FAILURE_GRACE`), with the kubelet's reason.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from controller import failpoints
from controller import kube as kube_
from controller.builds import backend, job

IMAGE_PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
PULL_FAILURE_GRACE = 60.0
"""A build pod whose image the kubelet still cannot pull after this long (or the pending
timeout, if shorter) fails the build: the kubelet's back-off would otherwise wait it out."""


class JobBackend:
    def __init__(
        self,
        *,
        kube: kube_.Kube,
        settings: job.JobSettings = job.DEFAULT_SETTINGS,
        pending_timeout: float = 300.0,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._pending_timeout = pending_timeout

    async def start(
        self, plan: backend.BuildPlan, *, docker_config: Mapping[str, Any] | None
    ) -> None:
        """Create the build's ConfigMap and Job (the pod mounts the push Secret by name, so
        `docker_config` is not needed here)."""
        files = await asyncio.to_thread(context_files, plan.context_dir)
        await self._kube.create(job.context_config_map(plan, files))
        await self._kube.create(job.build_job(plan, context_files=files, settings=self._settings))
        failpoints.hit(failpoints.Point.BUILD_JOB_CREATED)

    async def state(self, plan: backend.BuildPlan) -> backend.BuildState:
        namespace, name = plan.owner.namespace, plan.name
        found = await self._kube.get_job(namespace=namespace, name=name)
        if found is None:
            return backend.BuildState(backend.Phase.MISSING, name=name)
        status = found.get("status") or {}
        pods = await self._kube.list_pods(namespace=namespace, selector=f"job-name={name}")
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), default=None)
        if status.get("succeeded"):
            message = _termination_message(pod)
            digest = backend.digest_from_metadata(message)
            if digest is None:
                return backend.BuildState(
                    backend.Phase.FAILED,
                    name=name,
                    message="the build pod succeeded but its termination message holds no "
                    "containerimage.digest (BuildKit metadata file missing or cut at 4 KiB)",
                )
            return backend.BuildState(backend.Phase.SUCCEEDED, digest=digest, name=name)
        # The Job controller marks a failure `FailureTarget` first, `Failed` once its pods are
        # gone; either says why (a deadline, the back-off limit).
        failed = _condition(found, "Failed") or _condition(found, "FailureTarget")
        if status.get("failed") or failed is not None:
            return backend.BuildState(
                backend.Phase.FAILED, name=name, message=_failure(failed, pod)
            )
        if pod is None or pod.get("status", {}).get("phase") in (None, "Pending"):
            reason = _pending_reason(pod)
            pending_for = _pending_for(pod, found)
            stuck = None
            if reason.split(":", 1)[0] in IMAGE_PULL_FAILURES and pending_for > min(
                self._pending_timeout, PULL_FAILURE_GRACE
            ):
                stuck = f"the build pod's image cannot be pulled ({self._settings.image}): {reason}"
            elif pending_for > self._pending_timeout:
                stuck = (
                    f"the build pod stayed Pending for more than {int(self._pending_timeout)}s: "
                    f"{reason or 'not scheduled'}"
                )
            if stuck:
                await self._kube.delete_job(namespace=namespace, name=name)
                return backend.BuildState(backend.Phase.FAILED, name=name, message=stuck)
            return backend.BuildState(backend.Phase.PENDING, name=name, message=reason)
        return backend.BuildState(backend.Phase.RUNNING, name=name)

    async def wait(self, plan: backend.BuildPlan, *, timeout: float) -> bool:
        """A Job's end is seen through the watch of build Jobs (`handlers`), not waited for."""
        return False

    async def prune(self, owner: backend.Owner, *, keep: set[str]) -> None:
        """Delete finished build Jobs (and their context ConfigMaps) beyond the history kept."""
        selector = f"{job.LABEL_RUNNERIMAGE}={job.labels(owner, '')[job.LABEL_RUNNERIMAGE]}"
        for found in await self._kube.list_jobs(namespace=owner.namespace, selector=selector):
            name = found["metadata"]["name"]
            status = found.get("status") or {}
            finished = status.get("succeeded") or status.get("failed")
            if name not in keep and finished:
                await self._kube.delete_job(namespace=owner.namespace, name=name)
                await self._kube.delete_config_map(namespace=owner.namespace, name=name)


def context_files(folder: pathlib.Path) -> tuple[job.ContextFile, ...]:
    """The regular files under `folder` (symlinks left out), in path order, with their modes."""
    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files.append(
                job.ContextFile(
                    path=path.relative_to(folder).as_posix(),
                    content=path.read_bytes(),
                    executable=os.access(path, os.X_OK),
                )
            )
    return tuple(files)


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def _failure(condition: Mapping[str, Any] | None, pod: Mapping[str, Any] | None) -> str:
    """Why a build Job failed: the build's own words (the end of its log, from the termination
    message), led by the Job's reason when that is not just "the pod failed" (a deadline)."""
    tail = _last_lines(_termination_message(pod).strip())
    reason = str((condition or {}).get("reason", ""))
    said = str((condition or {}).get("message", ""))
    if reason == "DeadlineExceeded":
        head = f"the build ran past its deadline (spec.build.timeout): {reason}: {said}"
        return f"{head}\n{tail}" if tail else head
    return tail or said or "the build failed"


def _termination_message(pod: Mapping[str, Any] | None) -> str:
    if pod is None:
        return ""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != job.CONTAINER:
            continue
        terminated = (status.get("state") or {}).get("terminated") or {}
        return str(terminated.get("message") or "")
    return ""


def _pending_reason(pod: Mapping[str, Any] | None) -> str:
    if pod is None:
        return "no pod created yet"
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting:
            return f"{waiting.get('reason', '')}: {waiting.get('message', '')}".strip(": ")
    return ""


def _pending_for(pod: Mapping[str, Any] | None, found: Mapping[str, Any]) -> float:
    stamp = (pod or found)["metadata"].get("creationTimestamp")
    if not stamp:
        return 0.0
    created = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (datetime.datetime.now(datetime.UTC) - created).total_seconds()


def _last_lines(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])
