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
from controller.hosting import pulls
from tests.e2e import hosts
from tests.e2e.hosts import BRANCH
from tests.env import github, signing_keys

pytestmark = pytest.mark.e2e

TOKEN = "ghp_HostAdapterToken42"


@pytest.fixture
def hub(tmp_path: pathlib.Path) -> Iterator[github.GitHubEmulator]:
    with (
        hosts.catalog_server(tmp_path / "git", with_branch=True) as server,
        github.running(server, token=TOKEN) as emulator,
    ):
        yield emulator


def _host(
    hub: github.GitHubEmulator, token: str = TOKEN, repo: str = "org/catalog"
) -> github_host.GitHubRepository:
    return github_host.GitHubRepository(api_url=hub.base_url, repository=repo, token=token)


async def test_open_find_describe_edit_and_never_a_second(hub: github.GitHubEmulator) -> None:
    opened = await hosts.open_find_describe_edit(
        _host(hub), lambda: hub.pulls("catalog"), lambda: hub.merge("catalog", 1)
    )
    assert opened.url == hub.pulls("catalog")[0]["html_url"]


async def test_a_refused_token_and_a_missing_repository_stall_naming_the_field(
    hub: github.GitHubEmulator,
) -> None:
    wrong, missing = _host(hub, token="ghp_wrong"), _host(hub, repo="org/nothing")
    await hosts.refused_and_missing(wrong, missing, "GitHub refused the token", "ghp_wrong")


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
    await hosts.unreachable(gone)


async def test_a_github_app_gets_installation_tokens_and_uses_them(
    hub: github.GitHubEmulator,
) -> None:
    key = signing_keys.rsa_key()
    hub.install_app(4242, 77, key.public)
    app = pulls.GitHubApp(4242, 77, key.private.decode())
    host = github_host.GitHubRepository(api_url=hub.base_url, repository="org/catalog", token=app)
    assert await host.find_open(head=BRANCH, base="main") is None
    opened = await host.open(head=BRANCH, base="main", title="t", body="b")
    assert opened is not None
    assert hub.apps.issued == 1  # one installation token, used until it nears its end
    other = pulls.GitHubApp(4242, 77, signing_keys.rsa_key().private.decode())  # not the App's key
    with pytest.raises(errors.StalledError) as refused:
        await github_host.GitHubRepository(
            api_url=hub.base_url, repository="org/catalog", token=other
        ).find_open(head=BRANCH, base="main")
    assert refused.value.reason == "PullRequestAuthFailed"
    assert "PRIVATE KEY" not in str(refused.value)
