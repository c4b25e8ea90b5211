"""Catalog trust end to end: one owner per file, a Ready that is true, human edits kept.

Through the operator (Job builds on the kwok node, finished by the test; a real registry; the
catalog behind `git http-backend`), with resyncs every second and the catalog's head looked at
every 10 s (`spec.catalog.interval`):

- Two RunnerImages whose globs overlap settle with one commit each: the second skips the file the
  first owns and says so (`CatalogConflict` naming the owner), and resyncs write nothing more.
- A file someone changes by hand after the RunnerImage wrote it (Argo CD Image Updater #1249: a
  rollback to an older tag, by another author) is noticed at the next resync (`Ready=False`,
  `CatalogPinnedByHand` naming file and value), survives the next build, and is overwritten only
  once `spec.catalog.onHumanEdit: Overwrite` says so.
- A second RunnerImage pushing the same repository is refused (`RepositoryInUse`).
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import StartOperator
from tests.e2e import buildjobs
from tests.e2e.catalogs import GIT_PASSWORD, GIT_USER, MANIFEST, git_secret, with_catalog
from tests.env import gitserver, kube, kwok, oci, operator, registry

pytestmark = pytest.mark.e2e

FILES = {
    f"Environments/{name}/environment.yaml": MANIFEST.format(name=name)
    for name in ("webapp", "function", "storage")
}
OTHER = "Other/manifest.yaml"
CATALOG_INTERVAL = 10.0
"""spec.catalog.interval: how often the branch head is looked at (the least allowed)."""
RESYNCS = 12
"""Resyncs (one a second) watched for writes: more than one look at the branch head."""


@pytest.fixture
def git_server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        server.create_repo("catalog", {**FILES, OTHER: MANIFEST.format(name="other")})
        yield server


def _runner(
    namespace: str, host: str, base: str, url: str, name: str, globs: list[str], **catalog: Any
) -> dict[str, Any]:
    catalog.setdefault("interval", f"{CATALOG_INTERVAL:g}s")
    body = with_catalog(buildjobs.runner_image(namespace, host, base), url, globs, **catalog)
    body["metadata"]["name"] = name
    body["spec"]["image"]["repository"] = f"{namespace}/{name}"
    return body


def _built(cluster: kube.Cluster, namespace: str, pusher: oci.Pusher, name: str) -> None:
    """Finish the one unfinished build Job of `name`."""

    def unfinished() -> dict[str, Any] | None:
        for job in buildjobs.jobs(cluster, namespace, name):
            if not (job.get("status") or {}).get("succeeded"):
                return job
        return None

    job = kube.wait_for(unfinished, timeout=30, what=f"a build Job of {name}")
    buildjobs.finish(cluster, namespace, job, pusher)


def _runner_in(server: gitserver.GitServer, path: str) -> str:
    shown = server.show("catalog", f"main:{path}")
    found = re.search(r'(?m)^runner: "?([^"\s]+)', shown)
    assert found, shown
    return found.group(1)


def _resyncs(process: operator.OperatorProcess, name: str) -> int:
    """How many timer runs of RunnerImage `name` have finished."""
    return process.logs().count(f"/{name}] Timer 'register.<locals>.on_timer' succeeded")


def _wait_resyncs(process: operator.OperatorProcess, name: str, count: int) -> None:
    """Until `count` more timer runs of RunnerImage `name` have finished."""
    start = _resyncs(process, name)
    kube.wait_for(
        lambda: _resyncs(process, name) >= start + count or None,
        timeout=10 + 2 * count,
        what=f"{count} resyncs of {name}",
    )


def _message(obj: dict[str, Any], type_: str) -> str:
    found = kube.condition(obj, type_)
    assert found is not None
    return str(found["message"])


def test_overlapping_globs_settle_with_one_commit_each_and_no_flip_flop(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    git_secret(cluster, namespace)
    process = start_operator(ADE_RESYNC_INTERVAL="1s")
    url, host = git_server.url("catalog"), oci_registry.host
    first = _runner(namespace, host, base_image, url, "bicep", ["Environments/**/environment.yaml"])
    cluster.apply(namespace, json.dumps(first))
    _built(cluster, namespace, pusher, "bicep")
    ready = cluster.wait_condition(namespace, "bicep", "Ready", status="True", timeout=60)
    bicep_image = ready["status"]["latestImage"]["reference"]

    second = _runner(
        namespace, host, base_image, url, "terraform", ["Environments/storage/*.yaml", OTHER]
    )
    cluster.apply(namespace, json.dumps(second))
    _built(cluster, namespace, pusher, "terraform")
    obj = cluster.wait_condition(
        namespace, "terraform", "CatalogSynced", status="False", reason="CatalogConflict",
        timeout=60,
    )  # fmt: skip
    message = _message(obj, "CatalogSynced")
    assert f"RunnerImage {namespace}/bicep" in message
    assert "Environments/storage/environment.yaml" in message
    assert kube.condition(obj, "Ready")["reason"] == "CatalogConflict"  # type: ignore[index]
    assert kube.condition(obj, "Stalled") is None  # it clears when the owner lets go
    terraform_image = obj["status"]["latestImage"]["reference"]
    assert _runner_in(git_server, OTHER) == terraform_image
    assert _runner_in(git_server, "Environments/storage/environment.yaml") == bicep_image
    files = {entry["path"]: entry for entry in obj["status"]["catalog"]["files"]}
    assert files["Environments/storage/environment.yaml"]["state"] == "Conflict"
    assert files["Environments/storage/environment.yaml"]["owner"] == f"{namespace}/bicep"
    assert files[OTHER]["state"] == "Synced"
    assert obj["status"]["catalog"]["changed"] == [OTHER]

    commits = git_server.log("catalog")
    for name in ("bicep", "terraform"):
        _wait_resyncs(process, name, RESYNCS)
    assert git_server.log("catalog") == commits  # the resyncs wrote nothing: no flip-flop
    assert len(commits) == 3  # the initial commit and one for each RunnerImage
    assert cluster.get(namespace, "bicep")["status"]["catalog"]["manifests"] == sorted(FILES)  # type: ignore[index]


def test_a_human_rollback_is_noticed_kept_and_overwritten_only_when_asked(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    git_secret(cluster, namespace)
    start_operator(ADE_RESYNC_INTERVAL="1s")
    body = _runner(
        namespace, oci_registry.host, base_image, git_server.url("catalog"), "runner",
        ["Environments/**/environment.yaml"],
    )  # fmt: skip
    cluster.apply(namespace, json.dumps(body))
    _built(cluster, namespace, pusher, "runner")
    ready = cluster.wait_condition(namespace, "runner", "Ready", status="True", timeout=60)
    first = ready["status"]["latestImage"]["reference"]
    webapp = "Environments/webapp/environment.yaml"
    assert _runner_in(git_server, webapp) == first

    # Someone rolls webapp back to an older image of the same repository.
    rollback = first.rsplit(":", 1)[0] + ":known-good"
    text = MANIFEST.format(name="webapp").replace(
        "mcr.microsoft.com/deployment-environments/runners/core:latest", rollback
    )
    git_server.commit("catalog", {webapp: text}, "Roll webapp back to known-good")
    pinned = cluster.wait_condition(
        namespace, "runner", "Ready", status="False", reason="CatalogPinnedByHand", timeout=30
    )
    message = _message(pinned, "Ready")
    assert webapp in message
    assert rollback in message
    assert kube.condition(pinned, "Stalled") is None

    # The next build updates the other files and keeps the rollback.
    body["spec"]["source"]["inline"]["scripts"]["deploy.sh"] = "#!/bin/sh\necho deploy v2\n"
    cluster.apply(namespace, json.dumps(body))
    _built(cluster, namespace, pusher, "runner")
    kube.wait_for(
        lambda: (
            (cluster.get(namespace, "runner") or {})
            .get("status", {})
            .get("catalog", {})
            .get("image")
            not in (None, first)
            or None
        ),
        timeout=60,
        what="the second image's write",
    )
    obj = cluster.wait_condition(
        namespace, "runner", "Ready", status="False", reason="CatalogPinnedByHand", timeout=30
    )
    second = obj["status"]["latestImage"]["reference"]
    assert second != first
    assert _runner_in(git_server, webapp) == rollback
    assert _runner_in(git_server, "Environments/storage/environment.yaml") == second
    assert "Environments/webapp" not in " ".join(obj["status"]["catalog"]["changed"])

    # Opting in overwrites it.
    body["spec"]["catalog"]["onHumanEdit"] = "Overwrite"
    cluster.apply(namespace, json.dumps(body))
    cluster.wait_condition(namespace, "runner", "Ready", status="True", timeout=60)
    assert _runner_in(git_server, webapp) == second


def test_a_second_runner_image_pushing_the_same_repository_is_refused(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    base_image: str,
    git_server: gitserver.GitServer,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    git_secret(cluster, namespace)
    start_operator()
    url = git_server.url("catalog")
    first = _runner(namespace, oci_registry.host, base_image, url, "first", [OTHER])
    cluster.apply(namespace, json.dumps(first))
    kube.wait_for(
        lambda: buildjobs.jobs(cluster, namespace, "first") or None, timeout=30, what="a build"
    )
    twin = _runner(namespace, oci_registry.host, base_image, url, "twin", [OTHER])
    twin["spec"]["image"]["repository"] = f"{namespace}/first"
    cluster.apply(namespace, json.dumps(twin))
    obj = cluster.wait_condition(
        namespace, "twin", "Stalled", status="True", reason="RepositoryInUse", timeout=30
    )
    message = _message(obj, "Stalled")
    assert f"RunnerImage {namespace}/first" in message
    assert "spec.image.repository" in message
    assert buildjobs.jobs(cluster, namespace, "twin") == []


TEAM = 5
"""RunnerImages sharing one catalog, each selecting every environment definition and its own."""
HOUR_OF_RESYNCS = 60
"""Resyncs watched per RunnerImage: an hour's worth at the default `ADE_RESYNC_INTERVAL` (1m)."""


def test_a_team_with_overlapping_globs_commits_once_per_image_change_and_never_from_resyncs(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """TEAM RunnerImages whose globs all select the same three environment definitions (and
    each its own file) are built once, watched over HOUR_OF_RESYNCS resyncs each (with a look at
    the branch head every 10 s), then one of them gets a new image: the commits are counted."""
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    git_secret(cluster, namespace)
    own = {f"team-{i}": f"Own/team-{i}/environment.yaml" for i in range(TEAM)}
    git_server.commit(
        "catalog", {path: MANIFEST.format(name=name) for name, path in own.items()}, "Own files"
    )
    process = start_operator(ADE_RESYNC_INTERVAL="1s")
    url, start = git_server.url("catalog"), len(git_server.log("catalog"))
    bodies = {
        name: _runner(
            namespace,
            oci_registry.host,
            base_image,
            url,
            name,
            ["Environments/**/environment.yaml", f"Own/{name}/*.yaml"],
        )
        for name in own
    }
    for body in bodies.values():
        cluster.apply(namespace, json.dumps(body))
    for name in own:
        _built(cluster, namespace, pusher, name)
    for name in own:  # each has written its own file; the shared ones went to one of them
        kube.wait_for(
            functools.partial(_changed, cluster, namespace, name),
            timeout=60,
            what=f"{name}'s catalog write",
        )
    built = len(git_server.log("catalog")) - start
    owners = {
        name: (cluster.get(namespace, name) or {})["status"]["catalog"]["manifests"] for name in own
    }
    shared_owners = [name for name, files in owners.items() if set(FILES) <= set(files)]
    assert len(shared_owners) == 1, owners  # one owner for the shared files, no split
    checks_before = _head_reads(git_server)
    counts = {name: _resyncs(process, name) for name in own}
    for name in own:  # they resync side by side: the first wait covers most of the others'
        _wait_resyncs(process, name, HOUR_OF_RESYNCS - (_resyncs(process, name) - counts[name]))
    from_resyncs = len(git_server.log("catalog")) - start - built
    checks = _head_reads(git_server) - checks_before

    changed = next(name for name in own if name not in shared_owners)
    bodies[changed]["spec"]["source"]["inline"]["scripts"]["deploy.sh"] = "#!/bin/sh\necho v2\n"
    cluster.apply(namespace, json.dumps(bodies[changed]))
    _built(cluster, namespace, pusher, changed)
    kube.wait_for(
        lambda: len(git_server.log("catalog")) > start + built + from_resyncs or None,
        timeout=60,
        what="the new image's commit",
    )
    cluster.wait_condition(namespace, changed, "CatalogSynced", timeout=60)
    for name in own:
        _wait_resyncs(process, name, 3)
    second = len(git_server.log("catalog")) - start - built - from_resyncs
    with capsys.disabled():
        print(
            f"\n[catalog ownership] {TEAM} RunnerImages, globs overlapping on {len(FILES)} files:"
            f" {built} commit(s) for their first images; {from_resyncs} commit(s) over"
            f" {HOUR_OF_RESYNCS}+ resyncs each ({checks} reads of the branch head); {second}"
            " commit(s) for one new image"
        )
    assert built <= TEAM
    assert from_resyncs == 0
    assert second == 1
    assert checks >= TEAM  # each looked at the branch at least once: the check is real


def _changed(cluster: kube.Cluster, namespace: str, name: str) -> list[str] | None:
    """The files the last catalog commit of RunnerImage `name` changed, once there is one."""
    obj = cluster.get(namespace, name) or {}
    changed: list[str] | None = obj.get("status", {}).get("catalog", {}).get("changed")
    return changed or None


def _head_reads(server: gitserver.GitServer) -> int:
    """ls-remote and fetches of the catalog: its upload-pack advertisements."""
    return sum(
        1
        for r in server.requests_for("catalog")
        if r.method == "GET" and "git-upload-pack" in r.query and r.status == 200
    )
