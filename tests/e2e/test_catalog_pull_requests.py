"""Catalog changes through a pull request, end to end: the operator pushes its branch and opens
one pull request on a GitHub emulator (`tests.env.github`, checked against GitHub's published
API description; the git side is the real git server), updates it when a second RunnerImage
pushes the same branch (never a second one), turns Ready when it is merged (a real merge in the
repository), and stalls with the pull request's URL when one is closed without merging.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import StartOperator
from tests.e2e import buildjobs
from tests.e2e.catalogs import GIT_PASSWORD, GIT_USER, MANIFEST
from tests.e2e.catalogs import git_secret as _git_secret
from tests.e2e.catalogs import with_catalog as _with_catalog
from tests.env import github, github_openapi, gitserver, kube, kwok, oci, registry

pytestmark = pytest.mark.e2e

TOKEN = "ghp_EmulatedToken0123456789"
PUSH_BRANCH = "ade/runner-updates"
WEBAPP = "Environments/webapp/environment.yaml"
OTHER = "Environments/other/environment.yaml"


@pytest.fixture
def git_server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        server.create_repo(
            "catalog",
            {WEBAPP: MANIFEST.format(name="webapp"), OTHER: MANIFEST.format(name="other")},
        )
        yield server


@pytest.fixture
def hub(git_server: gitserver.GitServer) -> Iterator[github.GitHubEmulator]:
    with github.GitHubEmulator(git_server, token=TOKEN, owner="org") as emulator:
        yield emulator


def _runner(
    namespace: str, registry_host: str, base_image: str, url: str, hub_url: str, name: str
) -> dict[str, Any]:
    manifest = WEBAPP if name == buildjobs.NAME else OTHER
    body = _with_catalog(
        buildjobs.runner_image(namespace, registry_host, base_image),
        url,
        [manifest],
        pushBranch=PUSH_BRANCH,
        pullRequest={
            "apiUrl": hub_url,
            "repository": "org/catalog",
            "secretRef": {"name": "github"},
            "interval": "10s",
        },
    )
    body["metadata"] = {"name": name}
    body["spec"]["image"]["repository"] = f"{namespace}/{name}"
    return body


def _build(cluster: kube.Cluster, namespace: str, pusher: oci.Pusher, name: str, count: int) -> str:
    """Finish the `count`-th build Job of `name`; its digest."""

    def probe() -> list[dict[str, Any]] | None:
        found = buildjobs.jobs(cluster, namespace, name)
        return found if len(found) >= count else None

    jobs = kube.wait_for(probe, timeout=30, what=f"build Job {count} of {name}")
    newest = sorted(jobs, key=lambda job: job["metadata"]["creationTimestamp"])[-1]
    return buildjobs.finish(cluster, namespace, newest, pusher)


def test_one_pull_request_opened_updated_merged_then_a_closed_one_stalls(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    hub: github.GitHubEmulator,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    _git_secret(cluster, namespace)
    cluster.plane.kubectl(
        "create", "secret", "generic", "github", "-n", namespace, f"--from-literal=token={TOKEN}"
    )
    operator = start_operator(ADE_RESYNC_INTERVAL="2s")
    url, base_before = git_server.url("catalog"), git_server.head("catalog", "main")
    first, second = buildjobs.NAME, "other-runner"

    cluster.apply(
        namespace,
        json.dumps(_runner(namespace, oci_registry.host, base_image, url, hub.base_url, first)),
    )
    _build(cluster, namespace, pusher, first, 1)
    waiting = cluster.wait_condition(
        namespace, first, "CatalogSynced", status="False", reason="PullRequestOpen", timeout=60
    )
    pull = waiting["status"]["catalog"]["pullRequest"]
    assert pull["number"] == 1
    assert pull["state"] == "open"
    assert pull["url"] in kube.condition(waiting, "CatalogSynced")["message"]  # type: ignore[index]
    assert kube.condition(waiting, "Stalled") is None
    assert git_server.head("catalog", "main") == base_before  # nothing merged yet
    (opened,) = hub.pulls("catalog")
    assert opened["head"]["ref"] == PUSH_BRANCH
    assert opened["base"]["ref"] == "main"

    # a second RunnerImage pushing the same branch: the same pull request, its text updated
    cluster.apply(
        namespace,
        json.dumps(_runner(namespace, oci_registry.host, base_image, url, hub.base_url, second)),
    )
    _build(cluster, namespace, pusher, second, 1)
    other = kube.wait_for(
        lambda: (
            (obj := cluster.get(namespace, second))
            and ((obj.get("status") or {}).get("catalog") or {}).get("pullRequest")
            and obj
        ),
        timeout=60,
        what="the second RunnerImage's pull request",
    )
    assert other["status"]["catalog"]["pullRequest"]["number"] == 1
    (updated,) = hub.pulls("catalog")
    kube.wait_for(
        lambda: second in (hub.pulls("catalog")[0]["body"] or ""),
        timeout=30,
        what="the pull request's body listing both images",
    )
    assert f"{namespace}/{first}" in hub.pulls("catalog")[0]["body"]
    assert updated["number"] == 1

    # merged: both are Ready, and the catalog's branch has both changes
    hub.merge("catalog", 1)
    for name in (first, second):
        ready = cluster.wait_condition(namespace, name, "Ready", status="True", timeout=60)
        assert ready["status"]["catalog"]["pullRequest"]["state"] == "merged"
    assert f"{namespace}/{first}" in git_server.show("catalog", f"main:{WEBAPP}")
    assert f"{namespace}/{second}" in git_server.show("catalog", f"main:{OTHER}")

    # a new image: a new pull request; closed without merging: Stalled with its URL
    changed = _runner(namespace, oci_registry.host, base_image, url, hub.base_url, first)
    changed["spec"]["buildArgs"] = {"REVISION": "2"}
    cluster.apply(namespace, json.dumps(changed))
    _build(cluster, namespace, pusher, first, 2)
    kube.wait_for(lambda: len(hub.pulls("catalog")) == 2, timeout=60, what="a second pull request")
    hub.close("catalog", 2)
    stalled = cluster.wait_condition(
        namespace, first, "Stalled", status="True", reason="PullRequestClosed", timeout=60
    )
    message = kube.condition(stalled, "Stalled")["message"]  # type: ignore[index]
    assert hub.pulls("catalog")[1]["html_url"] in message
    assert TOKEN not in operator.logs()
    assert TOKEN not in json.dumps(stalled)
    # every call the operator made, and every answer, is as GitHub's API description says
    operations = set()
    for record in hub.requests:
        assert record.path_template is not None, record.path
        operations.add((record.method, record.path_template, record.status))
        github_openapi.validate_response(
            record.method, record.path_template, record.status, record.response_json
        )
        if record.request_json is not None:
            github_openapi.validate_request(
                record.method, record.path_template, record.request_json
            )
    assert ("POST", "/repos/{owner}/{repo}/pulls", 201) in operations
    assert ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}", 200) in operations
