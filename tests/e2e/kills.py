"""Helpers of the kill tests: the RunnerImages of a full chain, a build farm that finishes their
Jobs, and the invariants read from the real systems after a crash.

A chain: a Job build (on kwok), registry access through the ARM emulator (anonymous pull or
AcrPull grants), verification, and write-back into one shared catalog repository (each
RunnerImage its own manifest) followed by an ADE catalog sync. `Farm` does what the build pods
would (push the image, end with its digest), for every build Job that appears, once per Job
uid. `Invariants` reads what happened from the API server (Jobs, its audit log), the git server
(the catalog's history per manifest), the ARM emulator (role assignments) and the registry (tags).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import subprocess
import threading
from collections.abc import Mapping
from typing import Any

from tests.e2e import buildjobs
from tests.e2e.catalogs import MANIFEST
from tests.env import arm as arm_
from tests.env import gitserver, kube, kwok, oci

SUB = "4c0ffee0-0000-4000-8000-0000000000c3"
GROUP = "rg-ade-kills"
ACR = "contosokills"
DEV_CENTER, CATALOG = "contoso-dc", "runners"
SHARED_PRINCIPAL = "5e5e5e5e-0000-4000-8000-000000000005"
BUILD_KEY_LABEL = "runners.ade.dev/build-key"


def manifest_path(name: str) -> str:
    return f"Environments/{name}/environment.yaml"


def catalog_files(names: list[str]) -> dict[str, str]:
    return {manifest_path(name): MANIFEST.format(name=name) for name in names}


def principal(index: int) -> str:
    return f"7a7a7a7a-0000-4000-8000-{index:012d}"


def runner(
    name: str,
    namespace: str,
    host: str,
    base: str,
    catalog_url: str,
    *,
    principals: tuple[str, ...] = (),
    script: str = "echo deploy",
) -> dict[str, Any]:
    """RunnerImage `name`: built by a Job, its registry made pullable (anonymously, or AcrPull
    for `principals`), written into its own manifest of `catalog_url` and synced to ADE."""
    body = buildjobs.runner_image(namespace, host, base)
    body["metadata"]["name"] = name
    spec = body["spec"]
    spec["source"]["inline"]["scripts"]["deploy.sh"] = f"#!/bin/sh\n{script}\n"
    spec["image"]["repository"] = f"{namespace}/{name}"
    access: dict[str, Any] = {
        "mode": "PrivatePull" if principals else "AnonymousPull",
        "acr": {
            "subscriptionId": SUB,
            "resourceGroup": GROUP,
            "name": ACR,
            "credentialsSecretRef": {"name": "azure"},
        },
    }
    if principals:
        access["principalIds"] = list(principals)
    spec["registryAccess"] = access
    spec["catalog"] = {
        "git": {"url": catalog_url, "branch": "main", "secretRef": {"name": "catalog"}},
        "manifests": [manifest_path(name)],
        "sync": {
            "subscriptionId": SUB,
            "resourceGroup": GROUP,
            "devCenter": DEV_CENTER,
            "catalog": CATALOG,
            "credentialsSecretRef": {"name": "azure"},
        },
    }
    return body


def script_of(body: dict[str, Any]) -> str:
    text: str = body["spec"]["source"]["inline"]["scripts"]["deploy.sh"]
    return text


class Farm(threading.Thread):
    """Finishes every build Job of `namespace` whose pod runs, as the pod would: pushes the image
    (its deploy.sh as the RunnerImage says) and ends with its digest. Each Job uid once; `seen`
    keeps every Job uid by build key (a second uid for one key is a duplicate build). `paused`:
    it looks but finishes nothing (a kill point mid-build)."""

    def __init__(
        self,
        cluster: kube.Cluster,
        namespace: str,
        pusher: oci.Pusher,
        scripts: dict[str, str],
    ) -> None:
        super().__init__(daemon=True, name="build-farm")
        self.cluster, self.namespace, self.pusher = cluster, namespace, pusher
        self.scripts = scripts
        """The deploy.sh of each RunnerImage (by name), kept up to date by the test."""
        self.seen: dict[str, set[str]] = collections.defaultdict(set)
        self.finished: set[str] = set()
        self.paused = threading.Event()
        self._halt = threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self._halt.wait(0.3):
            try:
                self._round()
            except subprocess.CalledProcessError:
                continue  # the API server is away (a hard-stop test): look again
            except Exception as error:  # reported by `stop`
                self.errors.append(error)

    def _round(self) -> None:
        out = self.cluster.plane.kubectl(
            "get", "jobs", "-n", self.namespace, "-l", BUILD_KEY_LABEL, "-o", "json", check=False
        )
        if out.returncode != 0:
            return
        for job in json.loads(out.stdout)["items"]:
            meta = job["metadata"]
            self.seen[meta["labels"][BUILD_KEY_LABEL]].add(meta["uid"])
            if meta["uid"] in self.finished or self.paused.is_set():
                continue
            if (job.get("status") or {}).get("succeeded"):
                self.finished.add(meta["uid"])
                continue
            if not self._pod_running(meta["name"]):
                continue
            owner = meta["labels"]["runners.ade.dev/runnerimage"]
            script = self.scripts[owner]
            built = buildjobs.runner_built(deploy_sh=(script, 0o755))
            self._finish(job, built)
            self.finished.add(meta["uid"])

    def _finish(self, job: dict[str, Any], built: oci.Image) -> None:
        """`buildjobs.finish`, safe to repeat when a step of it failed (API server away)."""
        image = job["metadata"]["annotations"]["runners.ade.dev/image"]
        repository, _, tag = image.split("/", 1)[1].rpartition(":")
        digest = self.pusher.push_image(repository, built, tag=tag).digest
        pod = buildjobs.running_pod(self.cluster, self.namespace, job["metadata"]["name"])
        for verb, value in (
            ("annotate", f"{kwok.DIGEST_ANNOTATION}={digest}"),
            ("label", f"{kwok.COMPLETE_LABEL}=true"),
        ):
            self.cluster.plane.kubectl(verb, "pod", pod, "-n", self.namespace, value, "--overwrite")

    def _pod_running(self, job: str) -> bool:
        out = self.cluster.plane.kubectl(
            "get", "pods", "-n", self.namespace, "-l", f"job-name={job}", "-o", "json", check=False
        )
        if out.returncode != 0:
            return False
        pods = json.loads(out.stdout)["items"]
        return any((p.get("status") or {}).get("phase") == "Running" for p in pods)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        assert not self.errors, f"the build farm failed: {self.errors[:3]}"

    def __enter__(self) -> Farm:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclasses.dataclass(frozen=True)
class Invariants:
    """What the real systems say after the run; `problems` lists every broken invariant."""

    problems: list[str]
    jobs: int
    commits: int
    assignments: int
    tags: int


def runner_values(git_server: gitserver.GitServer, name: str) -> list[str]:
    """The `runner:` each catalog commit that changed `name`'s manifest set, newest first (the
    commit that created the file left out)."""
    path = manifest_path(name)
    values = []
    for commit in git_server.log("catalog", path=path)[:-1]:
        text = git_server.show("catalog", f"{commit.sha}:{path}")
        line = next((x for x in text.splitlines() if x.startswith("runner:")), "runner: ?")
        values.append(line.split(":", 1)[1].split("#", 1)[0].strip().strip('"'))
    return values


def _commits(git_server: gitserver.GitServer, name: str, count: int) -> list[str]:
    """A manifest's history: one commit per image written, never two for one image (a double
    commit), never more than the RunnerImage's images; at the end at least one (none lost). An
    image superseded before it was written back is rightly skipped (the reconcile is level-based),
    so a RunnerImage with two images may end with one commit."""
    values = runner_values(git_server, name)
    problems = []
    if len(values) != len(set(values)):
        problems.append(f"{name}: an image committed twice: {values}")
    if len(values) > count:
        problems.append(f"{name}: {len(values)} catalog commits for {count} image(s)")
    if not values:
        problems.append(f"{name}: no catalog commit (lost)")
    return problems


def check(
    *,
    cluster: kube.Cluster,
    namespace: str,
    farm: Farm,
    git_server: gitserver.GitServer,
    arm: arm_.ArmEmulator,
    pusher: oci.Pusher,
    images: dict[str, int],
    principals: Mapping[str, tuple[str, ...]],
) -> Invariants:
    """Every RunnerImage in `images` (name -> how many images it was asked for) is Ready; each
    build key has one Job (one uid ever, created once per the audit log); each manifest changed
    in one catalog commit per image written back (`_commits`: none twice, none lost) and points
    at the latest image; each principal holds AcrPull once; each repository has one tag per
    image; the catalog revision each RunnerImage records is synced."""
    problems: list[str] = []
    head = git_server.head("catalog")
    jobs = 0
    for name, count in images.items():
        obj = cluster.get(namespace, name) or {}
        status = obj.get("status") or {}
        ready = kube.condition(obj, "Ready") or {}
        if ready.get("status") != "True":
            problems.append(f"{name}: Ready is {ready.get('status')} ({ready.get('reason')})")
        catalog = status.get("catalog") or {}
        if catalog.get("syncedRevision") != catalog.get("revision"):
            problems.append(f"{name}: catalog revision {catalog.get('revision')} not synced")
        problems.extend(_commits(git_server, name, count))
        repository = f"{namespace}/{name}"
        tags = pusher.tags(repository)
        if len(tags) != count:
            problems.append(f"{name}: {len(tags)} tags for {count} image(s): {tags}")
        reference = (status.get("latestImage") or {}).get("reference", "")
        text = git_server.show("catalog", f"{head}:{manifest_path(name)}")
        if not reference or reference not in text:
            problems.append(f"{name}: the catalog does not point at {reference!r}")
    for key, uids in farm.seen.items():
        jobs += 1
        if len(uids) != 1:
            problems.append(f"build key {key[:12]}: {len(uids)} Jobs")
    created: collections.Counter[str] = collections.Counter(
        event["objectRef"].get("name", "?")
        for event in cluster.plane.audit_events()
        if event.get("verb") == "create"
        and (event.get("objectRef") or {}).get("resource") == "jobs"
        and (event.get("objectRef") or {}).get("namespace") == namespace
        and (event.get("responseStatus") or {}).get("code") == 201
    )
    problems.extend(f"Job {n} created {c} times" for n, c in created.items() if c != 1)
    held: collections.Counter[tuple[str, str, str]] = collections.Counter(
        (a.scope.lower(), a.role, a.principal_id.lower()) for a in arm.role_assignments()
    )
    problems.extend(f"{k[2]} holds {k[1]} {c} times" for k, c in held.items() if c != 1)
    wanted = {p.lower() for ps in principals.values() for p in ps}
    missing = wanted - {k[2] for k in held}
    problems.extend(f"{p} holds no AcrPull" for p in sorted(missing))
    commits = len(git_server.log("catalog")) - 1
    return Invariants(
        problems=problems,
        jobs=jobs,
        commits=commits,
        assignments=sum(held.values()),
        tags=sum(len(pusher.tags(f"{namespace}/{n}")) for n in images),
    )


def interim(
    *,
    farm: Farm,
    git_server: gitserver.GitServer,
    arm: arm_.ArmEmulator,
    images: dict[str, int],
) -> list[str]:
    """What is already duplicated mid-run (work may still be missing): a build key with a second
    Job uid, a manifest changed in more commits than its RunnerImage had images, a principal
    holding AcrPull twice."""
    problems = [f"build key {k[:12]}: {len(u)} Jobs" for k, u in farm.seen.items() if len(u) > 1]
    changes = git_server.changes("catalog")
    for name, count in images.items():
        changed = changes.get(manifest_path(name), 0) - 1  # the first commit created it
        if changed > count:
            problems.append(f"{name}: {changed} catalog commits for {count} image(s)")
    held: collections.Counter[tuple[str, str, str]] = collections.Counter(
        (a.scope.lower(), a.role, a.principal_id.lower()) for a in arm.role_assignments()
    )
    problems.extend(f"{k[2]} holds {k[1]} {c} times" for k, c in held.items() if c != 1)
    return problems
