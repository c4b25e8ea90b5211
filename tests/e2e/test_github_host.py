"""`controller.hosting.github` against the GitHub emulator: what GitHub answers becomes the
operator's errors as its table says (a refused token and a missing repository stall, a rate limit
is retried no sooner than GitHub asked, a second pull request for the same branch is never made),
and the token shows in no message."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from controller import errors
from controller.hosting import github as github_host
from tests.env import github, gitserver

pytestmark = pytest.mark.e2e

TOKEN = "ghp_HostAdapterToken42"
BRANCH = "ade/runner-updates"


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {"user": "pw"}) as running:
        running.create_repo("catalog", {"a.yaml": "runner: x\n"})
        running.commit("catalog", {"a.yaml": "runner: y\n"}, "Use runner y", branch=BRANCH)
        yield running


@pytest.fixture
def hub(server: gitserver.GitServer) -> Iterator[github.GitHubEmulator]:
    with github.running(server, token=TOKEN) as emulator:
        yield emulator


def _host(
    hub: github.GitHubEmulator, token: str = TOKEN, repo: str = "org/catalog"
) -> github_host.GitHubRepository:
    return github_host.GitHubRepository(api_url=hub.base_url, repository=repo, token=token)


async def test_open_find_describe_edit_and_never_a_second(hub: github.GitHubEmulator) -> None:
    host = _host(hub)
    assert await host.find_open(head=BRANCH, base="main") is None
    opened = await host.open(head=BRANCH, base="main", title="t", body="b")
    assert opened is not None
    assert (opened.number, opened.state, opened.url) == (
        1,
        "open",
        hub.pulls("catalog")[0]["html_url"],
    )
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
    hub.merge("catalog", 1)
    merged = await host.get(1)
    assert merged is not None
    assert merged.state == "merged"
    assert await host.get(99) is None
    # merged: nothing left between the branches
    assert await host.open(head=BRANCH, base="main", title="t", body="b") is None


async def test_a_refused_token_and_a_missing_repository_stall_naming_the_field(
    hub: github.GitHubEmulator,
) -> None:
    with pytest.raises(errors.StalledError) as refused:
        await _host(hub, token="ghp_wrong").find_open(head=BRANCH, base="main")
    assert refused.value.reason == "PullRequestAuthFailed"
    assert str(refused.value).startswith("spec.catalog.pullRequest: GitHub refused the token")
    assert "ghp_wrong" not in str(refused.value)
    with pytest.raises(errors.StalledError) as missing:
        await _host(hub, repo="org/nothing").find_open(head=BRANCH, base="main")
    assert missing.value.reason == "PullRequestRepositoryNotFound"


@pytest.mark.parametrize("status", [403, 429])
async def test_a_rate_limit_is_paced_by_retry_after(
    hub: github.GitHubEmulator, status: int
) -> None:
    hub.fail_next(status, retry_after=37)
    with pytest.raises(errors.TransientError) as limited:
        await _host(hub).find_open(head=BRANCH, base="main")
    assert limited.value.reason == "PullRequestHostUnavailable"
    assert limited.value.retry_after == 37
    assert limited.value.paced
    assert await _host(hub).find_open(head=BRANCH, base="main") is None  # then it answers


async def test_a_server_error_and_an_unreachable_host_are_transient(
    hub: github.GitHubEmulator,
) -> None:
    hub.fail_next(502)
    with pytest.raises(errors.TransientError, match="HTTP 502"):
        await _host(hub).find_open(head=BRANCH, base="main")
    gone = github_host.GitHubRepository(
        api_url="http://127.0.0.1:9/api/v3", repository="org/catalog", token=TOKEN
    )
    with pytest.raises(errors.TransientError) as unreachable:
        await gone.find_open(head=BRANCH, base="main")
    assert unreachable.value.reason == "PullRequestHostUnavailable"
