"""Catalog changes through a pull request, end to end, on GitHub and on Azure Repos: the operator
pushes its branch and opens one pull request on the host's emulator (`tests.env.github`,
`tests.env.azure_repos`, each checked against the host's published API description, driven by the
real client library; the git side is the real git server), updates it when a second RunnerImage
pushes the same branch (never a second one), turns Ready when it is merged (a real merge in the
repository), and stalls with the pull request's URL when one is closed without merging. Every
request the operator made, and every answer, is validated against the description.
"""

from __future__ import annotations

import dataclasses
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
from tests.env import (
    azure_repos,
    azure_repos_spec,
    azure_repos_wire,
    github,
    github_openapi,
    gitserver,
    kube,
    kwok,
    oci,
    registry,
    signing_keys,
)

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


@dataclasses.dataclass
class Hub:
    """One host's emulator, seen the same way for either host."""

    provider: str
    emulator: Any
    api_url: str
    repository: str
    secret: dict[str, str] = dataclasses.field(default_factory=lambda: {"token": TOKEN})
    """The pull request Secret's data: a token, or a GitHub App's keys."""

    def pulls(self) -> list[dict[str, Any]]:
        """Each pull request: number, head (branch name), body, state (open/merged/closed)."""
        if self.provider == "GitHub":
            return [
                {
                    "number": p["number"],
                    "head": p["head"]["ref"],
                    "base": p["base"]["ref"],
                    "body": p["body"] or "",
                    "state": "merged" if p["merged"] else p["state"],
                }
                for p in self.emulator.pulls("catalog")
            ]
        states = {"active": "open", "completed": "merged", "abandoned": "closed"}
        return [
            {
                "number": p["pullRequestId"],
                "head": p["sourceRefName"].removeprefix("refs/heads/"),
                "base": p["targetRefName"].removeprefix("refs/heads/"),
                "body": p.get("description") or "",
                "state": states[p["status"]],
            }
            for p in self.emulator.pulls("catalog")
        ]

    def merge(self, number: int) -> None:
        if self.provider == "GitHub":
            self.emulator.merge("catalog", number)
        else:
            self.emulator.complete("catalog", number)

    def close(self, number: int) -> None:
        if self.provider == "GitHub":
            self.emulator.close("catalog", number)
        else:
            self.emulator.abandon("catalog", number)

    def validate_traffic(self) -> set[tuple[str, str, int]]:
        """Every recorded exchange against the host's description; the operations seen."""
        operations = set()
        for record in self.emulator.requests:
            assert record.path_template is not None, record.path
            operations.add((record.method, record.path_template, record.status))
            if self.provider == "GitHub":
                github_openapi.validate_response(
                    record.method, record.path_template, record.status, record.response_json
                )
                if record.request_json is not None:
                    github_openapi.validate_request(
                        record.method, record.path_template, record.request_json
                    )
            elif record.path_template in (
                azure_repos_wire.LOCATIONS_TEMPLATE,
                azure_repos_wire.RESOURCE_AREAS_TEMPLATE,
            ):
                azure_repos_spec.validate_discovery(
                    record.path_template, record.status, record.response_json
                )
            else:
                azure_repos_spec.validate_response(
                    record.method, record.path_template, record.status, record.response_json
                )
                if record.request_json is not None:
                    azure_repos_spec.validate_request(
                        record.method, record.path_template, record.request_json
                    )
        return operations


@pytest.fixture(params=["GitHub", "GitHubApp", "AzureRepos"])
def hub(request: pytest.FixtureRequest, git_server: gitserver.GitServer) -> Iterator[Hub]:
    if request.param == "GitHub":
        with github.GitHubEmulator(git_server, token=TOKEN, owner="org") as emulator:
            yield Hub("GitHub", emulator, emulator.base_url, "org/catalog")
    elif request.param == "GitHubApp":  # installation tokens asked for with the App's key
        key = signing_keys.rsa_key()
        with github.GitHubEmulator(git_server, token=TOKEN, owner="org") as emulator:
            emulator.install_app(4242, 77, key.public)
            app = {
                "githubAppID": "4242",
                "githubAppInstallationID": "77",
                "githubAppPrivateKey": key.private.decode(),
            }
            yield Hub("GitHub", emulator, emulator.base_url, "org/catalog", app)
            assert emulator.apps.issued >= 1
    else:
        with azure_repos.running(git_server, token=TOKEN, organization="org", project="proj") as az:
            yield Hub("AzureRepos", az, az.base_url, "proj/catalog")


def _runner(
    namespace: str, registry_host: str, base_image: str, url: str, hub: Hub, name: str
) -> dict[str, Any]:
    manifest = WEBAPP if name == buildjobs.NAME else OTHER
    body = _with_catalog(
        buildjobs.runner_image(namespace, registry_host, base_image),
        url,
        [manifest],
        pushBranch=PUSH_BRANCH,
        pullRequest={
            "provider": hub.provider,
            "apiUrl": hub.api_url,
            "repository": hub.repository,
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
    hub: Hub,
    tmp_path: pathlib.Path,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    _git_secret(cluster, namespace)
    cluster.plane.kubectl(
        "create", "secret", "generic", "github", "-n", namespace,
        *(f"--from-literal={key}={value}" for key, value in hub.secret.items()),
    )  # fmt: skip
    operator = start_operator(
        ADE_RESYNC_INTERVAL="2s", AZURE_DEVOPS_CACHE_DIR=str(tmp_path / "azure-devops-cache")
    )
    url, base_before = git_server.url("catalog"), git_server.head("catalog", "main")
    first, second = buildjobs.NAME, "other-runner"

    cluster.apply(
        namespace,
        json.dumps(_runner(namespace, oci_registry.host, base_image, url, hub, first)),
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
    (opened,) = hub.pulls()
    assert (opened["head"], opened["base"], opened["state"]) == (PUSH_BRANCH, "main", "open")

    # a second RunnerImage pushing the same branch: the same pull request, its text updated
    cluster.apply(
        namespace,
        json.dumps(_runner(namespace, oci_registry.host, base_image, url, hub, second)),
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
    kube.wait_for(
        lambda: second in hub.pulls()[0]["body"],
        timeout=30,
        what="the pull request's body listing both images",
    )
    (updated,) = hub.pulls()
    assert f"{namespace}/{first}" in updated["body"]
    assert updated["number"] == 1

    # merged: both are Ready, and the catalog's branch has both changes
    hub.merge(1)
    for name in (first, second):
        ready = cluster.wait_condition(namespace, name, "Ready", status="True", timeout=60)
        assert ready["status"]["catalog"]["pullRequest"]["state"] == "merged"
    assert f"{namespace}/{first}" in git_server.show("catalog", f"main:{WEBAPP}")
    assert f"{namespace}/{second}" in git_server.show("catalog", f"main:{OTHER}")

    # a new image: a new pull request; closed without merging: Stalled with its URL
    changed = _runner(namespace, oci_registry.host, base_image, url, hub, first)
    changed["spec"]["buildArgs"] = {"REVISION": "2"}
    cluster.apply(namespace, json.dumps(changed))
    _build(cluster, namespace, pusher, first, 2)
    kube.wait_for(lambda: len(hub.pulls()) == 2, timeout=60, what="a second pull request")
    hub.close(2)
    stalled = cluster.wait_condition(
        namespace, first, "Stalled", status="True", reason="PullRequestClosed", timeout=60
    )
    message = kube.condition(stalled, "Stalled")["message"]  # type: ignore[index]
    assert stalled["status"]["catalog"]["pullRequest"]["number"] == 2
    assert stalled["status"]["catalog"]["pullRequest"]["url"] in message
    secrets = [TOKEN, *(line for line in hub.secret.get("githubAppPrivateKey", "").splitlines())]
    for value in (secret for secret in secrets if len(secret) >= 16 and "-----" not in secret):
        assert value not in operator.logs()
        assert value not in json.dumps(stalled)
    # every call the operator made, and every answer, is as the host's API description says
    operations = hub.validate_traffic()
    assert {method for method, _, status in operations if status < 300} >= {"GET", "POST", "PATCH"}
