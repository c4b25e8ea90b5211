"""`controller.hosting.azure_repos` against the Azure Repos emulator, through Microsoft's client:
what Azure DevOps answers becomes the operator's errors as its table says (a refused token and a
missing repository stall, a rate limit is retried no sooner than `Retry-After`, a second pull
request for the same branches is never made, nothing to merge opens none), and the token shows in
no message."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from controller import errors
from controller.hosting import azure_repos as azure_host
from tests.env import azure_repos, gitserver

pytestmark = pytest.mark.e2e

TOKEN = "azdo-pat-HostAdapter42"
BRANCH = "ade/runner-updates"


@pytest.fixture(autouse=True)
def client_cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's discovery cache in this test's folder, not the home folder."""
    monkeypatch.setenv("AZURE_DEVOPS_CACHE_DIR", str(tmp_path / "azure-devops-cache"))


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {"user": "pw"}) as running:
        running.create_repo("catalog", {"a.yaml": "runner: x\n"})
        running.commit("catalog", {"a.yaml": "runner: y\n"}, "Use runner y", branch=BRANCH)
        yield running


@pytest.fixture
def hub(server: gitserver.GitServer) -> Iterator[azure_repos.AzureReposEmulator]:
    with azure_repos.running(server, token=TOKEN) as emulator:
        yield emulator


def _host(
    hub: azure_repos.AzureReposEmulator, token: str = TOKEN, repository: str = "catalog"
) -> azure_host.AzureReposRepository:
    return azure_host.AzureReposRepository(
        organization_url=hub.base_url, project="proj", repository=repository, token=token
    )


async def test_open_find_describe_edit_and_never_a_second(
    hub: azure_repos.AzureReposEmulator,
) -> None:
    host = _host(hub)
    assert await host.find_open(head=BRANCH, base="main") is None
    opened = await host.open(head=BRANCH, base="main", title="t", body="b")
    assert opened is not None
    assert (opened.number, opened.state) == (1, "open")
    assert opened.url == f"{hub.base_url}/proj/_git/catalog/pullrequest/1"
    again = await host.open(head=BRANCH, base="main", title="t2", body="b2")  # exists: the same
    assert again is not None
    assert again.number == 1
    assert len(hub.pulls("catalog")) == 1
    contents = await host.contents(1)
    assert [subject for _, subject in contents.commits] == ["Use runner y"]
    assert contents.files == ("a.yaml",)
    edited = await host.edit(1, title="New title", body="New body")
    assert (edited.title, edited.body) == ("New title", "New body")
    found = await host.find_open(head=BRANCH, base="main")
    assert found is not None
    assert found.number == 1
    hub.complete("catalog", 1)
    merged = await host.get(1)
    assert merged is not None
    assert merged.state == "merged"
    assert await host.get(99) is None
    # completed: nothing left between the branches, so no new pull request
    assert await host.open(head=BRANCH, base="main", title="t", body="b") is None
    assert len(hub.pulls("catalog")) == 1


async def test_a_refused_token_and_a_missing_repository_stall_naming_the_field(
    hub: azure_repos.AzureReposEmulator,
) -> None:
    with pytest.raises(errors.StalledError) as refused:
        await _host(hub, token="azdo-wrong").find_open(head=BRANCH, base="main")
    assert refused.value.reason == "PullRequestAuthFailed"
    assert str(refused.value).startswith("spec.catalog.pullRequest: Azure DevOps refused the token")
    assert "azdo-wrong" not in str(refused.value)
    with pytest.raises(errors.StalledError) as missing:
        await _host(hub, repository="nothing").find_open(head=BRANCH, base="main")
    assert missing.value.reason == "PullRequestRepositoryNotFound"


async def test_a_rate_limit_is_paced_by_retry_after(hub: azure_repos.AzureReposEmulator) -> None:
    host = _host(hub)
    assert await host.find_open(head=BRANCH, base="main") is None  # the client has discovered
    hub.fail_next(429, retry_after=41)
    with pytest.raises(errors.TransientError) as limited:
        await host.find_open(head=BRANCH, base="main")
    assert limited.value.reason == "PullRequestHostUnavailable"
    assert limited.value.retry_after == 41
    assert limited.value.paced
    assert await host.find_open(head=BRANCH, base="main") is None  # then it answers


async def test_a_server_error_and_an_unreachable_host_are_transient(
    hub: azure_repos.AzureReposEmulator,
) -> None:
    host = _host(hub)
    assert await host.find_open(head=BRANCH, base="main") is None
    hub.fail_next(503)
    with pytest.raises(errors.TransientError):
        await host.find_open(head=BRANCH, base="main")
    gone = azure_host.AzureReposRepository(
        organization_url="http://127.0.0.1:9/org", project="proj", repository="catalog", token=TOKEN
    )
    with pytest.raises(errors.TransientError) as unreachable:
        await gone.find_open(head=BRANCH, base="main")
    assert unreachable.value.reason == "PullRequestHostUnavailable"
