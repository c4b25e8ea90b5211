"""The pull request that carries the push branch (`controller.reconcile.pulls` and the pure
`controller.hosting.pulls`): opened once and never duplicated, its text rewritten only when what
it holds changed, open -> not Ready (not Stalled), merged -> Ready, closed -> Stalled with its URL,
a new commit after a merge or a close -> a new pull request; the host asked at most once a minute
for the same commit; the token from its Secret, else the git Secret."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import pytest

from controller import errors
from controller.api import status as status_
from controller.hosting import github, hosts, pulls
from controller.reconcile import memory as memory_
from controller.reconcile import pulls as reconcile_pulls
from controller.reconcile import steps
from tests.unit.reconcile import fakes

REV1, REV2 = "1" * 40, "2" * 40
SPEC: dict[str, Any] = {
    "source": {"inline": {"dockerfile": "FROM scratch\n", "scripts": {}}},
    "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
    "catalog": {
        "git": {
            "url": "https://github.com/org/catalog.git",
            "branch": "main",
            "secretRef": {"name": "git"},
        },
        "manifests": ["envs/*/environment.yaml"],
        "pushBranch": "ade/runners",
        "pullRequest": {},
    },
}
SETTLED = steps.Outcome.done("Synced", "1 manifest(s) point at r:1 (commit 111111111111)")


@dataclasses.dataclass
class FakeHost:
    """One repository's pull requests, as a host keeps them; counts the calls."""

    name: str = "GitHub"
    stored: dict[int, pulls.PullRequest] = dataclasses.field(default_factory=dict)
    commits: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    calls: list[str] = dataclasses.field(default_factory=list)
    branch_head: str = REV1
    nothing_to_merge: bool = False

    async def find_open(self, *, head: str, base: str) -> pulls.PullRequest | None:
        self.calls.append("find_open")
        return next((p for p in self.stored.values() if p.state == "open"), None)

    async def get(self, number: int) -> pulls.PullRequest | None:
        self.calls.append(f"get {number}")
        found = self.stored.get(number)
        if found is not None and found.state == "open":  # an open one follows its branch
            found = self.stored[number] = dataclasses.replace(found, head_sha=self.branch_head)
            if self.branch_head not in self.commits[number]:
                self.commits[number].append(self.branch_head)
        return found

    async def open(
        self, *, head: str, base: str, title: str, body: str
    ) -> pulls.PullRequest | None:
        self.calls.append("open")
        if self.nothing_to_merge:
            return None
        number = len(self.stored) + 1
        self.commits[number] = [self.branch_head]
        self.stored[number] = pulls.PullRequest(
            number, f"https://github.com/org/catalog/pull/{number}", "open", self.branch_head,
            title, body,
        )  # fmt: skip
        return self.stored[number]

    async def contents(self, number: int) -> pulls.Contents:
        self.calls.append(f"contents {number}")
        shas = self.commits[number]
        return pulls.Contents(tuple((sha, f"Use runner {sha[:1]}") for sha in shas), ("a.yaml",))

    async def edit(self, number: int, *, title: str, body: str) -> pulls.PullRequest:
        self.calls.append(f"edit {number}")
        self.stored[number] = dataclasses.replace(self.stored[number], title=title, body=body)
        return self.stored[number]

    def merge(self, number: int) -> None:
        self.stored[number] = dataclasses.replace(self.stored[number], state="merged")

    def close(self, number: int) -> None:
        self.stored[number] = dataclasses.replace(self.stored[number], state="closed")


class FakeHosts:
    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.asked: list[tuple[str, str, str, str]] = []

    def get(self, *, provider: str, api_url: str, repository: str, token: str) -> FakeHost:
        self.asked.append((provider, api_url, repository, token))
        return self.host


class Object:
    """One RunnerImage's reconciles of its pull request: status carried from one to the next."""

    def __init__(self, tmp_path: pathlib.Path, host: FakeHost, spec: dict[str, Any] = SPEC) -> None:
        kube = fakes.FakeKube({"git": {"username": b"bot", "password": b"ghp_token123"}})
        self.services = fakes.make_services(tmp_path, kube_=kube)
        self.hosts = FakeHosts(host)
        self.services.hosts = self.hosts  # type: ignore[assignment]
        self.memory = memory_.ObjectMemory()
        self.memory.checked_generation = 1
        self.spec = spec
        self.catalog = status_.CatalogStatus(
            revision=REV1, ref="refs/heads/ade/runners", image="r:1", changed=("a.yaml",)
        )

    async def reconcile(self, revision: str = REV1) -> steps.Outcome:
        self.catalog = dataclasses.replace(self.catalog, revision=revision)
        ctx = fakes.context(self.spec, status={"catalog": self.catalog.to_status()})
        assert ctx.spec.catalog is not None
        try:
            return await reconcile_pulls.follow(
                self.services, self.memory, ctx,
                catalog=ctx.spec.catalog, recorded=self.catalog, settled=SETTLED,
            )  # fmt: skip
        finally:
            if "catalog" in ctx.updates:
                self.catalog = status_.CatalogStatus.of({"catalog": ctx.updates["catalog"]})

    def age(self) -> None:
        """As if the last look at the host was long ago."""
        self.memory.part(reconcile_pulls.PullChecks).polled = -1e9


async def test_one_pull_request_is_opened_then_waited_for_then_merged(
    tmp_path: pathlib.Path,
) -> None:
    host = FakeHost()
    obj = Object(tmp_path, host)
    outcome = await obj.reconcile()
    assert (outcome.kind, outcome.reason) == (steps.Kind.BLOCKED, "PullRequestOpen")
    assert "https://github.com/org/catalog/pull/1" in outcome.message
    assert obj.catalog.pull_request == status_.PullRequestStatus(
        1, "https://github.com/org/catalog/pull/1", "open", REV1
    )
    assert host.calls == ["find_open", "open", "contents 1", "edit 1"]
    assert obj.hosts.asked == [("GitHub", "https://api.github.com", "org/catalog", "ghp_token123")]
    # the resync a moment later answers from status: no call
    host.calls.clear()
    assert (await obj.reconcile()).reason == "PullRequestOpen"
    assert host.calls == []
    # a minute on: one look; still open at the same head: its text is not read again
    obj.age()
    assert (await obj.reconcile()).reason == "PullRequestOpen"
    assert host.calls == ["get 1"]
    host.merge(1)
    host.calls.clear()
    obj.age()
    outcome = await obj.reconcile()
    assert outcome.kind is steps.Kind.DONE
    assert outcome.message.endswith("merged in pull request #1")
    assert obj.catalog.pull_request is not None
    assert obj.catalog.pull_request.state == "merged"
    assert host.calls == ["get 1", "contents 1"]  # merged with this commit?


async def test_a_new_commit_updates_the_open_pull_request_not_a_second_one(
    tmp_path: pathlib.Path,
) -> None:
    host = FakeHost()
    obj = Object(tmp_path, host)
    await obj.reconcile()
    host.branch_head = REV2
    host.calls.clear()
    outcome = await obj.reconcile(REV2)  # a new commit: looked at at once
    assert outcome.reason == "PullRequestOpen"
    assert host.calls == ["get 1", "contents 1", "edit 1"]
    assert len(host.stored) == 1
    assert host.stored[1].title == "Update runner images (2 commits)"
    assert obj.catalog.pull_request is not None
    assert obj.catalog.pull_request.head == REV2


async def test_another_runner_image_on_the_branch_finds_the_open_one(
    tmp_path: pathlib.Path,
) -> None:
    host = FakeHost()
    await Object(tmp_path / "a", host).reconcile()
    other = Object(tmp_path / "b", host)
    host.calls.clear()
    assert (await other.reconcile()).reason == "PullRequestOpen"
    assert host.calls == ["find_open", "contents 1"]  # same text: not rewritten
    assert len(host.stored) == 1


async def test_closed_without_merging_stalls_with_its_url_until_a_new_commit(
    tmp_path: pathlib.Path,
) -> None:
    host = FakeHost()
    obj = Object(tmp_path, host)
    await obj.reconcile()
    host.close(1)
    obj.age()
    with pytest.raises(errors.StalledError) as raised:
        await obj.reconcile()
    assert raised.value.reason == "PullRequestClosed"
    assert "https://github.com/org/catalog/pull/1" in str(raised.value)
    assert obj.catalog.pull_request is not None
    assert obj.catalog.pull_request.state == "closed"
    # reopened by a person: waited for again at the next look
    host.stored[1] = dataclasses.replace(host.stored[1], state="open")
    obj.age()
    assert (await obj.reconcile()).reason == "PullRequestOpen"
    host.close(1)
    obj.age()
    with pytest.raises(errors.StalledError):
        await obj.reconcile()
    # the next image: a new pull request
    host.branch_head = REV2
    assert (await obj.reconcile(REV2)).reason == "PullRequestOpen"
    assert sorted(host.stored) == [1, 2]
    assert obj.catalog.pull_request.number == 2


async def test_a_new_commit_after_a_merge_opens_a_new_pull_request(tmp_path: pathlib.Path) -> None:
    host = FakeHost()
    obj = Object(tmp_path, host)
    await obj.reconcile()
    host.merge(1)
    obj.age()
    assert (await obj.reconcile()).kind is steps.Kind.DONE
    host.branch_head = REV2
    assert (await obj.reconcile(REV2)).reason == "PullRequestOpen"
    assert obj.catalog.pull_request is not None
    assert obj.catalog.pull_request.number == 2


async def test_nothing_to_merge_is_synced_and_records_no_pull_request(
    tmp_path: pathlib.Path,
) -> None:
    host = FakeHost(nothing_to_merge=True)
    obj = Object(tmp_path, host)
    assert await obj.reconcile() == SETTLED
    assert obj.catalog.pull_request is None


async def test_without_a_push_branch_commit_there_is_nothing_to_follow(
    tmp_path: pathlib.Path,
) -> None:
    host = FakeHost()
    obj = Object(tmp_path, host)
    obj.catalog = dataclasses.replace(obj.catalog, ref="refs/heads/main")
    assert await obj.reconcile() == SETTLED
    assert host.calls == []


async def test_the_token_comes_from_its_own_secret_and_names_the_field(
    tmp_path: pathlib.Path,
) -> None:
    spec = {**SPEC, "catalog": {**SPEC["catalog"], "pullRequest": {"secretRef": {"name": "gh"}}}}
    obj = Object(tmp_path, FakeHost(), spec)
    with pytest.raises(errors.StalledError, match=r"spec.catalog.pullRequest.secretRef: .*'gh'"):
        await obj.reconcile()
    obj.services.kube.secrets["gh"] = {"token": b"ghs_app_token\n"}  # type: ignore[attr-defined]
    await obj.reconcile()
    assert obj.hosts.asked[-1][3] == "ghs_app_token"


async def test_a_host_outside_github_com_needs_its_api_url(tmp_path: pathlib.Path) -> None:
    catalog = {
        **SPEC["catalog"],
        "git": {**SPEC["catalog"]["git"], "url": "https://ghe.example/o/c"},
    }
    obj = Object(tmp_path, FakeHost(), {**SPEC, "catalog": catalog})
    with pytest.raises(errors.SpecError, match=r"spec.catalog.pullRequest.apiUrl: is required"):
        await obj.reconcile()
    catalog["pullRequest"] = {"apiUrl": "https://ghe.example/api/v3"}
    await Object(tmp_path / "b", FakeHost(), {**SPEC, "catalog": catalog}).reconcile()


def test_the_verdict_of_a_pull_request_for_the_last_commit() -> None:
    def pull(state: pulls.State) -> pulls.PullRequest:
        return pulls.PullRequest(7, "u", state, REV1)

    assert pulls.verdict(None, False) == "new"
    assert pulls.verdict(pull("open"), True) == "open"
    assert pulls.verdict(pull("merged"), True) == "merged"
    assert pulls.verdict(pull("closed"), True) == "closed"
    assert pulls.verdict(pull("merged"), False) == "new"  # merged before this commit
    assert pulls.verdict(pull("closed"), False) == "new"


def test_the_description_lists_every_commit_and_file() -> None:
    commits = tuple((f"{i:02d}" * 20, f"Use runner image r:{i}") for i in range(60))
    title, body = pulls.describe(pulls.Contents(commits, ("b.yaml", "a.yaml")))
    assert title == "Update runner images (60 commits)"
    assert "- 030303030303 Use runner image r:3" in body
    assert "- ... and 10 more" in body
    assert "- `a.yaml`" in body
    assert body.endswith(pulls.MARKER)
    one = pulls.describe(pulls.Contents(commits[:1], ()))
    assert one[0] == "Use runner image r:0"
    assert (
        pulls.describe(pulls.Contents(commits[:1], ()), title="Runner update")[0] == "Runner update"
    )


@pytest.mark.parametrize(
    ("url", "repository", "api"),
    [
        ("https://github.com/org/catalog.git", "org/catalog", "https://api.github.com"),
        ("https://github.com/org/catalog", "org/catalog", "https://api.github.com"),
        ("git@github.com:org/catalog.git", "org/catalog", "https://api.github.com"),
        ("ssh://git@github.com/org/catalog.git", "org/catalog", "https://api.github.com"),
        ("https://ghe.example/scm/org/catalog.git", "org/catalog", None),
    ],
)
def test_the_repository_and_api_of_a_git_url(url: str, repository: str, api: str | None) -> None:
    assert github.repository_of(url) == repository
    assert github.api_url_of(url) == api


def test_a_url_without_owner_and_name_is_refused() -> None:
    with pytest.raises(ValueError, match="owner/name"):
        github.repository_of("https://git.example/catalog.git")


@pytest.mark.parametrize(
    ("url", "api", "repository"),
    [
        (
            "https://dev.azure.com/contoso/Platform/_git/catalog",
            "https://dev.azure.com/contoso",
            "Platform/catalog",
        ),
        (
            "https://dev.azure.com/contoso/My%20Project/_git/catalog",
            "https://dev.azure.com/contoso",
            "My Project/catalog",
        ),
        (
            "https://contoso.visualstudio.com/Platform/_git/catalog",
            "https://contoso.visualstudio.com",
            "Platform/catalog",
        ),
        (
            "git@ssh.dev.azure.com:v3/contoso/Platform/catalog",
            "https://dev.azure.com/contoso",
            "Platform/catalog",
        ),
    ],
)
def test_an_azure_repos_url_names_its_organization_project_and_repository(
    url: str, api: str, repository: str
) -> None:
    assert hosts.locate("AzureRepos", git_url=url, api_url="", repository="") == (api, repository)


def test_what_a_url_cannot_tell_is_asked_for_by_field() -> None:
    with pytest.raises(hosts.Unlocated) as missing:
        hosts.locate("AzureRepos", git_url="https://git.example/c.git", api_url="", repository="")
    assert missing.value.field == "apiUrl"
    with pytest.raises(hosts.Unlocated) as unnamed:
        hosts.locate(
            "AzureRepos", git_url="https://git.example/c.git", api_url="https://a", repository=""
        )
    assert unnamed.value.field == "repository"
    assert hosts.locate(
        "AzureRepos", git_url="https://git.example/c.git", api_url="https://a", repository="p/c"
    ) == ("https://a", "p/c")


def test_a_github_app_or_a_token_is_read_from_the_secret_naming_keys() -> None:
    def read(data: dict[str, bytes]) -> pulls.Credential:
        return pulls.credential_from_secret(
            data, secret="gh", field="spec.catalog.pullRequest.secretRef"
        )

    assert read({"token": b"ghp_x\n"}) == "ghp_x"
    pem = b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"
    app = read(
        {"githubAppID": b"123", "githubAppInstallationID": b"456\n", "githubAppPrivateKey": pem}
    )
    assert isinstance(app, pulls.GitHubApp)
    assert (app.app_id, app.installation_id) == (123, 456)
    assert "MIIE" not in repr(app)
    for data, says in (
        ({}, "has neither key 'token' nor the GitHub App keys"),
        (
            {"githubAppID": b"1"},
            "has githubAppID but not githubAppInstallationID, githubAppPrivateKey",
        ),
        (
            {"githubAppID": b"x", "githubAppInstallationID": b"1", "githubAppPrivateKey": pem},
            "'githubAppID' must be a number",
        ),
        (
            {"githubAppID": b"1", "githubAppInstallationID": b"1", "githubAppPrivateKey": b"nope"},
            "is not a PEM private key",
        ),
    ):
        with pytest.raises(errors.StalledError, match=says) as raised:
            read(data)
        assert str(raised.value).startswith("spec.catalog.pullRequest.secretRef: Secret 'gh' ")


async def test_a_github_app_cannot_sign_in_to_azure_repos(tmp_path: pathlib.Path) -> None:
    catalog = {
        **SPEC["catalog"],
        "git": {**SPEC["catalog"]["git"], "url": "https://dev.azure.com/o/p/_git/c"},
        "pullRequest": {"provider": "AzureRepos", "secretRef": {"name": "app"}},
    }
    obj = Object(tmp_path, FakeHost(), {**SPEC, "catalog": catalog})
    obj.services.hosts = hosts.Hosts()
    pem = b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"
    obj.services.kube.secrets["app"] = {  # type: ignore[attr-defined]
        "githubAppID": b"1",
        "githubAppInstallationID": b"2",
        "githubAppPrivateKey": pem,
    }
    with pytest.raises(errors.SpecError, match="a GitHub App cannot sign in to Azure Repos"):
        await obj.reconcile()
