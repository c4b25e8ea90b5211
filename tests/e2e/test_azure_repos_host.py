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
from tests.e2e import hosts
from tests.e2e.hosts import BRANCH
from tests.env import azure_repos

pytestmark = pytest.mark.e2e

TOKEN = "azdo-pat-HostAdapter42"


@pytest.fixture(autouse=True)
def client_cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's discovery cache in this test's folder, not the home folder."""
    monkeypatch.setenv("AZURE_DEVOPS_CACHE_DIR", str(tmp_path / "azure-devops-cache"))


@pytest.fixture
def hub(tmp_path: pathlib.Path) -> Iterator[azure_repos.AzureReposEmulator]:
    with (
        hosts.catalog_server(tmp_path / "git", with_branch=True) as server,
        azure_repos.running(server, token=TOKEN) as emulator,
    ):
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
    opened = await hosts.open_find_describe_edit(
        _host(hub), lambda: hub.pulls("catalog"), lambda: hub.complete("catalog", 1)
    )
    assert opened.url == f"{hub.base_url}/proj/_git/catalog/pullrequest/1"


async def test_a_refused_token_and_a_missing_repository_stall_naming_the_field(
    hub: azure_repos.AzureReposEmulator,
) -> None:
    wrong, missing = _host(hub, token="azdo-wrong"), _host(hub, repository="nothing")
    await hosts.refused_and_missing(wrong, missing, "Azure DevOps refused the token", "azdo-wrong")


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
    await hosts.unreachable(gone)
