"""Registry retention end to end (`spec.retention`): a year of daily builds in the real registry
(deletes enabled, token auth), a catalog over real git naming some of them, the operator's real
build on buildkitd; what it deletes, what it keeps and why; a registry that refuses deletion.

The year is simulated: 365 images carrying this RunnerImage's `runners.ade.dev/runner-image`
label are pushed to its repository, and `status.retention.seen` is set to when the operator
would have first seen each one (one a day), as a year of passes would have recorded it. Foreign
images (no label, or another RunnerImage's) sit beside them.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PUSH_PASSWORD, StartOperator
from tests.e2e import daemon_builds
from tests.e2e.catalogs import GIT_PASSWORD, GIT_USER, MANIFEST, git_secret, with_catalog
from tests.e2e.daemon_builds import operator_env, push_secret
from tests.env import buildkitd, gitserver, kube, oci, registry, tokenserver

pytestmark = pytest.mark.e2e

PRUNER, PRUNER_PASSWORD = "pruner", "pRune-s3cret-Pa55"
OWNER_LABEL = "runners.ade.dev/runner-image"
DOCKERFILE = daemon_builds.RUNNER_DOCKERFILE
SCRIPTS = {"deploy.sh": "#!/bin/sh\necho deploying\n", "delete.sh": "#!/bin/sh\necho deleting\n"}
DAYS = 365
PUSH_BRANCH = "runner-updates"


@pytest.fixture
def catalog(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        yield server


@pytest.fixture
def pruner(token_server: tokenserver.TokenServer) -> Iterator[str]:
    """A registry user that may delete (ACR's `delete` permission)."""
    token_server.users[PRUNER] = tokenserver.User(
        password=PRUNER_PASSWORD, actions=frozenset({"pull", "push", "delete"})
    )
    yield PRUNER
    del token_server.users[PRUNER]


def _simulate(
    pusher: oci.Pusher, repository: str, owner: str, days: int, now: datetime.datetime
) -> list[str]:
    """`days` images of `owner`, one made a day (the newest first); their digests."""
    digests = []
    for day in range(days):
        made = (now - datetime.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
        image = oci.Image(
            layers=[[oci.file("scripts/deploy.sh", f"#!/bin/sh\necho {day}\n", 0o755)]],
            labels={OWNER_LABEL: owner},
            created=made,
        )
        digests.append(pusher.push_image(repository, image, tag=f"nightly-{day:03d}").digest)
    return digests


def _runner_image(
    namespace: str, host: str, core: str, retention: dict[str, Any], **catalog: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": "bicep"},
        "spec": {
            "source": {"inline": {"dockerfile": DOCKERFILE, "scripts": SCRIPTS}},
            "buildArgs": {"BASE_IMAGE": core},
            "image": {
                "registry": host,
                "repository": f"{namespace}/bicep",
                "pushSecretRef": {"name": "push"},
            },
            "build": {"backend": "BuildKitDaemon", "timeout": "10m"},
            "retention": retention,
        },
    }
    if catalog:
        with_catalog(body, catalog["url"], catalog["manifests"], **catalog.get("extra", {}))
    return body


def _retention(cluster: kube.Cluster, namespace: str, reason: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = cluster.get(namespace, "bicep") or {}
        found = kube.condition(obj, "ImagesRetained") or {}
        generation = obj.get("metadata", {}).get("generation")
        current = found.get("observedGeneration") == generation
        return obj if current and found.get("reason") == reason else None

    try:
        return kube.wait_for(probe, timeout=240, what=f"ImagesRetained {reason}")
    except AssertionError:
        obj = cluster.get(namespace, "bicep") or {}
        raise AssertionError(f"not {reason}: {obj.get('status')}") from None


def test_a_year_of_daily_builds_keeps_what_the_policy_and_the_catalog_name(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    core: str,
    catalog: gitserver.GitServer,
    pruner: str,
) -> None:
    repository = f"{namespace}/bicep"
    name = f"{oci_registry.host}/{repository}"
    now = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    sims = _simulate(pusher, repository, f"{namespace}/bicep", DAYS, now)
    foreign = [
        pusher.push_image(
            repository, oci.Image(labels=labels, created="2025-01-01T00:00:00Z"), tag=tag
        ).digest
        for tag, labels in [("by-hand", {}), ("other", {OWNER_LABEL: f"{namespace}/other"})]
    ]
    simulated = time.monotonic() - started
    catalog.create_repo(
        "catalog",
        {
            "Environments/Current/environment.yaml": MANIFEST.format(name="current"),
            "Environments/Legacy/environment.yaml": MANIFEST.format(name="legacy").replace(
                "mcr.microsoft.com/deployment-environments/runners/core:latest",
                f"{name}:nightly-200",
            ),
            "Environments/Pinned/environment.yaml": MANIFEST.format(name="pinned").replace(
                "mcr.microsoft.com/deployment-environments/runners/core:latest",
                f"{name}@{sims[300]}",
            ),
        },
    )
    catalog.commit(
        "catalog",
        {"Environments/Proposed/parameters.json": json.dumps({"runner": f"{name}@{sims[364]}"})},
        "a proposal on the push branch",
        branch=PUSH_BRANCH,
    )
    git_secret(cluster, namespace)
    push_secret(cluster, namespace, oci_registry.host, PRUNER_PASSWORD, user=pruner)
    retention = {"keepLast": 10, "keepFor": "720h", "dryRun": True}
    body = _runner_image(
        namespace,
        oci_registry.host,
        core,
        retention,
        url=catalog.url("catalog"),
        manifests=["Environments/Current/environment.yaml"],
        extra={"pushBranch": PUSH_BRANCH},
    )
    cluster.apply(namespace, json.dumps(body))
    # A year of passes would have recorded one image a day (status is the operator's: written
    # before it starts).
    seen = {
        digest: (now - datetime.timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for day, digest in enumerate(sims)
    }
    cluster.plane.kubectl(
        "patch", "ri", "bicep", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"retention": {"seen": seen}}}),
    )  # fmt: skip
    start_operator(**operator_env(buildkit))
    dry = _retention(cluster, namespace, "DryRun")
    latest = dry["status"]["latestImage"]["digest"]
    referenced = {200, 300, 364}
    young = set(range(30))  # seen less than 720 h ago
    expected_kept = {sims[day] for day in referenced | young} | {latest}
    expected_gone = set(sims) - expected_kept
    assert dry["status"]["retention"]["images"] == DAYS + 1
    assert dry["status"]["retention"]["foreign"] == 2
    condition = kube.condition(dry, "ImagesRetained") or {}
    assert f"dry run: {len(expected_gone)} of {DAYS + 1} image(s) would be deleted" in str(
        condition.get("message")
    )
    listed = dry["status"]["retention"]["wouldDelete"]
    assert len(listed) == 50
    # the oldest first (364 is named by the push branch)
    assert listed[0] == f"{name}:nightly-363@{sims[363]}"
    assert all(pusher.manifest_digest(repository, digest) for digest in sims)  # nothing deleted

    retention["dryRun"] = False
    cluster.plane.kubectl(
        "patch", "ri", "bicep", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"retention": retention}}),
    )  # fmt: skip
    pass_started = time.monotonic()
    done = _retention(cluster, namespace, "Pruned")
    took = time.monotonic() - pass_started
    summary = done["status"]["retention"]
    assert (summary["deleted"], summary["kept"]) == (len(expected_gone), len(expected_kept))
    assert kube.condition(done, "Ready")["status"] == "True"  # type: ignore[index]
    # what the catalog names, the latest, the young and the foreign are all still pullable
    for digest in expected_kept | set(foreign):
        pulled = pusher.manifest_digest(repository, digest)
        assert pulled == digest, f"{digest} was deleted"
    for digest in expected_gone:
        assert pusher.manifest_digest(repository, digest) is None, f"{digest} is still there"
    assert set(summary["seen"]) == expected_kept
    assert pusher.tags(f"{repository}/buildcache"), "the build cache is gone"
    print(
        f"\n[figure] a year of daily builds ({DAYS} images, pushed in {simulated:.1f} s) and the "
        f"operator's own: {len(expected_kept)} kept (10 newest, 30 younger than 720 h, 3 named "
        f"by the catalog and its push branch, the latest), {len(expected_gone)} deleted in one "
        f"pass of {took:.1f} s; 0 referenced digests deleted (each pulled after), 2 foreign "
        f"images untouched"
    )


def test_a_registry_that_refuses_deletion_is_reported_not_retried(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    core: str,
) -> None:
    repository = f"{namespace}/bicep"
    sims = _simulate(
        pusher, repository, f"{namespace}/bicep", 3, datetime.datetime.now(datetime.UTC)
    )
    # the push user may pull and push, not delete (an ACR token without `delete`)
    push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
    operator = start_operator(**operator_env(buildkit, ADE_RESYNC_INTERVAL="2s"))
    body = _runner_image(
        namespace, oci_registry.host, core, {"keepLast": 1, "keepFor": "0s", "interval": "1h"}
    )
    cluster.apply(namespace, json.dumps(body))
    refused = _retention(cluster, namespace, "DeletionRefused")
    message = str((kube.condition(refused, "ImagesRetained") or {}).get("message"))
    assert "kept 2 image(s) the policy would delete" in message
    assert kube.condition(refused, "Ready")["status"] == "True"  # type: ignore[index]
    assert all(pusher.manifest_digest(repository, digest) for digest in sims)
    events = cluster.plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector=reason=DeletionRefused", "-o", "json"
    ).stdout
    assert len(json.loads(events)["items"]) == 1
    # resyncs every 2 s: within the hour nothing asks the registry again
    deletes = _deletes(oci_registry, repository)
    assert deletes in (1, 2)  # the first refusal stopped the pass (the 401, then once with a token)
    time.sleep(6)  # three resyncs; what must not happen has no condition to wait for
    assert _deletes(oci_registry, repository) == deletes
    assert len(json.loads(cluster.plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector=reason=DeletionRefused", "-o", "json"
    ).stdout)["items"]) == 1  # fmt: skip
    assert PUSH_PASSWORD not in operator.logs()


def _deletes(oci_registry: registry.Registry, repository: str) -> int:
    """DELETE requests of `repository`'s manifests the registry logged (access log)."""
    return sum(
        f'"DELETE /v2/{repository}/manifests/' in line for line in oci_registry.logs().splitlines()
    )
