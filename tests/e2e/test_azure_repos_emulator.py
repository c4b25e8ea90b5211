"""The Azure Repos emulator (`tests.env.azure_repos`) driven by Microsoft's client `azure-devops`
(7.1) as the operator drives it, and checked against Microsoft's published description of the
Git REST API 7.1 (`tests.env.azure_repos_spec`).

A real git server (`tests.env.gitserver`) holds the repository `catalog`; the emulator serves it
as the repository `catalog` of the project `proj` in the organization `org`. The client finds
its routes (the discovery calls), opens pull requests, finds them by source and target, meets
the service's refusals (TF401179 a duplicate, TF401398 a missing branch), edits them, reads
their commits, iterations and changed files, completes them for real (the bare repository's
`main` moves), abandons and reactivates them; a wrong token gets 401, injected rate limiting
and 5xx show what the client (msrest, urllib3) does with them.

As for GitHub (`tests.e2e.hosts`), each exchange the emulator recorded is checked against the
description after every test and again, all of them, at the end, which prints the schemas used
per (method, path, status); deliberately broken bodies prove that the validator is not vacuous.
"""

from __future__ import annotations

import base64
import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.devops import _file_cache
from azure.devops.client import Client
from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsAuthenticationError, AzureDevOpsServiceError
from azure.devops.v7_1.git import models
from azure.devops.v7_1.git.git_client import GitClient
from azure.devops.v7_1.git.models import (
    GitCommitRef,
    GitPullRequest,
    GitPullRequestCompletionOptions,
    GitPullRequestSearchCriteria,
)
from msrest.authentication import BasicAuthentication
from msrest.exceptions import ClientRequestError

from tests.e2e import hosts
from tests.e2e.hosts import BRANCH, REPO, branch, is_ancestor
from tests.e2e.hosts import git as run_git
from tests.env import azure_repos_spec as spec
from tests.env.azure_repos import (
    LOCATIONS_TEMPLATE,
    RESOURCE_AREAS_TEMPLATE,
    AzureReposEmulator,
    Request,
    running,
)
from tests.env.gitserver import GitServer

pytestmark = pytest.mark.e2e

TOKEN = "ado0emulated0personal0access0token0000000000000000"
PROJECT = "proj"
MAIN = "refs/heads/main"
CHANGES_LOCATION = "4216bdcf-b6b1-4d59-8b82-c34cc183fc8b"

_SCHEMAS_USED: dict[tuple[str, str, int], set[str]] = {}
"""(method, path template or path, status) -> the schemas their exchanges were checked with."""


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def client_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The client keeps resource locations and areas for 12 hours, in memory (per process) and
    on disk (`~/.azure-devops`), keyed by URL: both emptied, the disk ones moved to a scratch
    folder, so that discovery happens here and nothing is written in the home folder."""
    folder = tmp_path_factory.mktemp("azure-devops-cache")
    caches = (_file_cache.OPTIONS_CACHE, _file_cache.RESOURCE_CACHE)
    saved = [(cache.file_name, cache.data, cache.initial_load_occurred) for cache in caches]
    for cache in caches:
        cache.file_name = str(folder / pathlib.Path(cache.file_name).name)
    forget_discovery()
    yield
    for cache, (name, data, loaded) in zip(caches, saved, strict=True):
        cache.file_name, cache.data, cache.initial_load_occurred = name, data, loaded
    Client._locations_cache.clear()


def forget_discovery() -> None:
    """Make the next client discover the routes again (as a fresh process does)."""
    for cache in (_file_cache.OPTIONS_CACHE, _file_cache.RESOURCE_CACHE):
        cache.data, cache.initial_load_occurred = {}, True
    Client._locations_cache.clear()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with hosts.catalog_server(tmp_path_factory.mktemp("azure-repos-emulator") / "git") as server:
        yield server


@pytest.fixture(scope="module")
def emulator(server: GitServer) -> Iterator[AzureReposEmulator]:
    with running(server, token=TOKEN) as emulator:
        yield emulator


def connect(emulator: AzureReposEmulator, token: str = TOKEN) -> GitClient:
    """The git client as the operator builds it (a PAT as the Basic password)."""
    connection = Connection(base_url=emulator.base_url, creds=BasicAuthentication("", token))
    client: GitClient = connection.clients_v7_1.get_git_client()
    return client


@pytest.fixture
def git(emulator: AzureReposEmulator) -> GitClient:
    return connect(emulator)


@pytest.fixture(autouse=True)
def exchanges_match_the_description(emulator: AzureReposEmulator) -> Iterator[None]:
    """After each test: every exchange it caused matches the published description."""
    yield from hosts.validated_after(lambda: emulator.requests, validate)


def validate(record: Request) -> None:
    """Validate one recorded exchange (response, request body, query); remember the schemas."""
    template = record.path_template
    used = _SCHEMAS_USED.setdefault((record.method, template or record.path, record.status), set())
    if template is None:  # no such route: the service's HTML 404 page (or the 401 first)
        assert record.status in (401, 404)
        assert record.response_json is None
        used.add("no JSON body (not a route)")
        return
    if template in (LOCATIONS_TEMPLATE, RESOURCE_AREAS_TEMPLATE):
        used.add(spec.validate_discovery(template, record.status, record.response_json))
        return
    if record.status == 405:  # a method the resource lacks
        used.add(spec.validate_schema("WrappedException", record.response_json))
        return
    used.add(
        "response "
        + spec.validate_response(record.method, template, record.status, record.response_json)
    )
    # What the client sent must match, always; a raw request sent wrong on purpose is checked
    # only when the emulator accepted it.
    from_client = "azure-devops/" in (record.user_agent or "")
    if not record.malformed and (from_client or record.status < 400):
        used.add("request " + spec.validate_request(record.method, template, record.request_json))
        spec.validate_query(record.method, template, record.query, accept=record.accept)
        used.add("query parameters")


# -- helpers -----------------------------------------------------------------------------------


def parents(server: GitServer, commit: str) -> list[str]:
    return run_git(server, "rev-list", "--parents", "-n1", commit).stdout.split()[1:]


def open_pull(git: GitClient, source: str, title: str = "Update runners") -> GitPullRequest:
    pull: GitPullRequest = git.create_pull_request(
        GitPullRequest(
            source_ref_name=f"refs/heads/{source}",
            target_ref_name=MAIN,
            title=title,
            description="Automated.",
        ),
        REPO,
        project=PROJECT,
    )
    return pull


def find(git: GitClient, source: str, status: str = "active") -> list[int]:
    criteria = GitPullRequestSearchCriteria(
        source_ref_name=f"refs/heads/{source}", target_ref_name=MAIN, status=status
    )
    return [p.pull_request_id for p in git.get_pull_requests(REPO, criteria, project=PROJECT)]


def complete(git: GitClient, number: int, head: str, **options: Any) -> GitPullRequest:
    done: GitPullRequest = git.update_pull_request(
        GitPullRequest(
            status="completed",
            last_merge_source_commit=GitCommitRef(commit_id=head),
            completion_options=GitPullRequestCompletionOptions(**options) if options else None,
        ),
        REPO,
        number,
        project=PROJECT,
    )
    return done


def refused(caught: pytest.ExceptionInfo[AzureDevOpsServiceError]) -> tuple[str, str]:
    """(typeKey, message) of the service's error, as the client exposes them."""
    return caught.value.type_key, caught.value.message


def last_status(emulator: AzureReposEmulator) -> int:
    return emulator.requests[-1].status


def raw(
    emulator: AzureReposEmulator,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    authorization: str | None = f"Bearer {TOKEN}",
    accept: str = "application/json;api-version=7.1",
) -> tuple[int, dict[str, str], Any]:
    """One request without the client: status, headers (lower-case names), parsed JSON (None
    for a body that is not JSON)."""
    headers = {"Accept": accept, "User-Agent": "raw-test"}
    if authorization is not None:
        headers["Authorization"] = authorization
    target = f"/{emulator.organization}{path}"
    status, found, data = hosts.request(emulator.port, method, target, body, headers)
    is_json = found.get("content-type", "").startswith("application/json")
    return status, found, json.loads(data) if is_json else None


# -- discovery and the repository --------------------------------------------------------------


def test_discovery_and_repository(emulator: AzureReposEmulator, server: GitServer) -> None:
    forget_discovery()
    start = len(emulator.requests)
    git = connect(emulator)
    repo = git.get_repository(REPO, project=PROJECT)
    discovery = [(r.method, r.path, r.status) for r in emulator.requests[start:]]
    assert discovery == [
        ("OPTIONS", "/org/_apis", 200),  # where the resources of the organization live
        ("GET", "/org/_apis/ResourceAreas", 200),  # git's area is at the organization URL
        ("GET", f"/org/{PROJECT}/_apis/git/repositories/{REPO}", 200),
    ]
    assert (repo.name, repo.default_branch, repo.project.name) == (REPO, MAIN, PROJECT)
    assert repo.remote_url == server.url(REPO)  # cloning it reaches the real git server
    assert repo.web_url == f"{emulator.base_url}/{PROJECT}/_git/{REPO}"
    by_ids = git.get_repository(repo.id, project=repo.project.id)  # GUIDs work as names do
    assert (by_ids.name, by_ids.url) == (REPO, repo.url)
    assert emulator.requests[-1].api_version == "7.1-preview.1"  # negotiated from the locations

    with pytest.raises(AzureDevOpsServiceError) as missing:
        git.get_repository("missing", project=PROJECT)
    assert refused(missing) == (
        "GitRepositoryNotFoundException",
        "TF401019: The Git repository with name or identifier missing does not exist or you do "
        "not have permissions for the operation you are attempting.",
    )
    assert last_status(emulator) == 404
    with pytest.raises(AzureDevOpsServiceError) as no_project:
        git.get_repository(REPO, project="elsewhere")
    assert no_project.value.type_key == "ProjectDoesNotExistWithNameException"
    assert no_project.value.message.startswith("TF200016: The following project does not exist")


# -- opening, finding, reading -----------------------------------------------------------------


def test_open_find_and_read_a_pull_request(
    git: GitClient, server: GitServer, emulator: AzureReposEmulator
) -> None:
    head = branch(server, BRANCH, {"runners/x.yaml": "image: a\n"})
    main = server.head(REPO)
    pr = open_pull(git, BRANCH)
    assert last_status(emulator) == 201
    assert (pr.status, pr.merge_status, pr.is_draft) == ("active", "queued", False)
    assert (pr.source_ref_name, pr.target_ref_name) == (f"refs/heads/{BRANCH}", MAIN)
    assert (pr.title, pr.description) == ("Update runners", "Automated.")
    assert pr.last_merge_source_commit.commit_id == head
    assert pr.last_merge_target_commit.commit_id == main
    assert pr.repository.name == REPO
    assert pr.created_by.display_name == "ade-bot"
    assert pr.url == f"{pr.repository.url}/pullRequests/{pr.pull_request_id}"
    assert pr.creation_date.tzinfo is not None

    assert find(git, BRANCH) == [pr.pull_request_id]
    assert find(git, BRANCH, "completed") == []
    assert find(git, "ade/no-such-branch") == []
    assert pr.pull_request_id in find(git, BRANCH, "all")

    # Read again, the service's test merge is done: mergeStatus and lastMergeCommit, a merge of
    # the branch into main kept at refs/pull/{id}/merge.
    read = git.get_pull_request(REPO, pr.pull_request_id, project=PROJECT)
    assert read.merge_status == "succeeded"
    test_merge = read.last_merge_commit.commit_id
    assert parents(server, test_merge) == [main, head]
    pull_ref = f"refs/pull/{pr.pull_request_id}/merge"
    assert run_git(server, "rev-parse", pull_ref).stdout.strip() == test_merge
    assert server.head(REPO) == main  # nothing merged

    # A push to the branch shows at once, as a new iteration.
    moved = branch(server, BRANCH, {"runners/y.yaml": "image: b\n"})
    again = git.get_pull_request(REPO, pr.pull_request_id, project=PROJECT)
    assert again.last_merge_source_commit.commit_id == moved
    iterations = git.get_pull_request_iterations(REPO, pr.pull_request_id, project=PROJECT)
    assert [(i.id, i.reason) for i in iterations] == [(1, "create"), (2, "push")]
    assert [i.source_ref_commit.commit_id for i in iterations] == [head, moved]

    with pytest.raises(AzureDevOpsServiceError) as duplicate:
        open_pull(git, BRANCH, title="Again")
    assert refused(duplicate) == (
        "GitPullRequestExistsException",
        "TF401179: An active pull request for the source and target branch already exists.",
    )
    assert last_status(emulator) == 409
    assert duplicate.value.type_name == (
        "Microsoft.TeamFoundation.Git.Server.GitPullRequestExistsException, "
        "Microsoft.TeamFoundation.Git.Server"
    )


def test_missing_pull_request_is_404(git: GitClient, emulator: AzureReposEmulator) -> None:
    with pytest.raises(AzureDevOpsServiceError) as missing:
        git.get_pull_request(REPO, 9999, project=PROJECT)
    assert refused(missing) == (
        "GitPullRequestNotFoundException",
        "TF401180: The requested pull request was not found.",
    )
    assert last_status(emulator) == 404
    assert not hasattr(missing.value, "status_code")  # the client keeps no status: see below


def test_refusals_for_branches(
    git: GitClient, server: GitServer, emulator: AzureReposEmulator
) -> None:
    tf401398 = (
        "GitPullRequestCannotBeActivated",
        "TF401398: The pull request cannot be activated because the source and/or the target "
        "branch no longer exists, or the requested refs are not branches",
    )
    with pytest.raises(AzureDevOpsServiceError) as no_source:
        open_pull(git, "ade/does-not-exist")
    assert (refused(no_source), last_status(emulator)) == (tf401398, 400)

    branch(server, "ade/short-target", {"short.yaml": "s\n"})
    with pytest.raises(AzureDevOpsServiceError) as short_name:  # "main" is not a ref name
        git.create_pull_request(
            GitPullRequest(
                source_ref_name="refs/heads/ade/short-target", target_ref_name="main", title="t"
            ),
            REPO,
            project=PROJECT,
        )
    assert refused(short_name) == tf401398

    with pytest.raises(AzureDevOpsServiceError) as same:
        git.create_pull_request(
            GitPullRequest(source_ref_name=MAIN, target_ref_name=MAIN, title="t"),
            REPO,
            project=PROJECT,
        )
    assert same.value.type_key == "InvalidArgumentValueException"
    assert same.value.message.startswith("Invalid argument value.\r\nParameter name: ")
    assert last_status(emulator) == 400


def test_no_commits_between_the_branches_is_allowed(git: GitClient, server: GitServer) -> None:
    """Unlike GitHub, Azure Repos opens a pull request with nothing to merge; completing it
    still makes a commit (no fast-forward), with main's tree (git drops the duplicate
    parent)."""
    main = server.head(REPO)
    assert run_git(server, "branch", "ade/nothing-new", main).returncode == 0
    pr = open_pull(git, "ade/nothing-new", title="Nothing")
    number = pr.pull_request_id
    assert git.get_pull_request_commits(REPO, number, project=PROJECT) == []
    iterations = git.get_pull_request_iterations(REPO, number, project=PROJECT)
    changes = git.get_pull_request_iteration_changes(REPO, number, 1, project=PROJECT)
    assert (len(iterations), changes.change_entries) == (1, [])
    complete(git, number, main)
    assert git.get_pull_request(REPO, number, project=PROJECT).status == "completed"
    merged = server.head(REPO)
    assert parents(server, merged) == [main]
    trees = run_git(server, "rev-parse", f"{merged}^{{tree}}", f"{main}^{{tree}}").stdout.split()
    assert trees[0] == trees[1]


def test_edit_title_and_description(git: GitClient, server: GitServer) -> None:
    branch(server, "ade/edit", {"edit.yaml": "e\n"})
    number = open_pull(git, "ade/edit", title="Before").pull_request_id
    edited = git.update_pull_request(
        GitPullRequest(title="After", description="New body"), REPO, number, project=PROJECT
    )
    assert (edited.title, edited.description, edited.status) == ("After", "New body", "active")
    read = git.get_pull_request(REPO, number, project=PROJECT)
    assert (read.title, read.description) == ("After", "New body")
    draft = git.update_pull_request(GitPullRequest(is_draft=True), REPO, number, project=PROJECT)
    assert draft.is_draft is True

    with pytest.raises(AzureDevOpsServiceError) as not_updatable:  # the source is fixed
        git.update_pull_request(
            GitPullRequest(source_ref_name="refs/heads/other"), REPO, number, project=PROJECT
        )
    assert refused(not_updatable) == (
        "InvalidArgumentValueException",
        "Invalid argument value.\r\nParameter name: The pull request to update was not valid.",
    )


# -- commits and changed files -----------------------------------------------------------------


def test_commits_and_changed_files(
    git: GitClient, server: GitServer, emulator: AzureReposEmulator
) -> None:
    server.commit(REPO, {"old-name.yaml": "runner: old\n", "gone.yaml": "g\n"}, "Add files")
    base = server.head(REPO)
    head = branch(
        server,
        "ade/files",
        {"added.yaml": "one\ntwo\n", "a.yaml": "runner: changed\n"},
        {"old-name.yaml": None, "new-name.yaml": "runner: old\n", "gone.yaml": None},
    )
    number = open_pull(git, "ade/files", title="Files").pull_request_id

    commits = git.get_pull_request_commits(REPO, number, project=PROJECT)
    mine = [c.sha for c in server.log(REPO, "ade/files") if not is_ancestor(server, c.sha, base)]
    assert [c.commit_id for c in commits] == mine  # newest first, as Azure lists them
    assert commits[0].commit_id == head
    assert commits[-1].comment == "ade/files: change 1"
    assert commits[-1].author.name == "Test Author"
    assert commits[-1].author.date.tzinfo is not None

    # The client's GitPullRequestChange model declares only changeTrackingId (the generator
    # dropped its generic base GitChange<GitItem>): msrest keeps the other members in
    # `additional_properties`, where the operator has to read them.
    changes = git.get_pull_request_iteration_changes(REPO, number, 1, project=PROJECT)
    entries = changes.change_entries
    assert set(models.GitPullRequestChange._attribute_map) == {"change_tracking_id"}
    found = {
        e.additional_properties["item"]["path"]: e.additional_properties["changeType"]
        for e in entries
    }
    assert found == {
        "/a.yaml": "edit",
        "/added.yaml": "add",
        "/gone.yaml": "delete",
        "/new-name.yaml": "rename",
    }
    renamed = next(e for e in entries if e.additional_properties["changeType"] == "rename")
    assert renamed.additional_properties["originalPath"] == "/old-name.yaml"
    added = next(e for e in entries if e.additional_properties["changeType"] == "add")
    blob = run_git(server, "rev-parse", f"{head}:added.yaml").stdout.strip()
    assert added.additional_properties["item"]["objectId"] == blob
    assert sorted(e.change_tracking_id for e in entries) == [1, 2, 3, 4]

    # Or untyped, through the client's own request machinery: the JSON as sent.
    route = {"project": PROJECT, "repositoryId": REPO, "pullRequestId": number, "iterationId": 1}
    response = git._send(
        http_method="GET",
        location_id=CHANGES_LOCATION,
        version="7.1",
        route_values=route,
        query_parameters={"$top": 3},
    )
    page = response.json()
    assert (len(page["changeEntries"]), page["nextSkip"], page["nextTop"]) == (3, 3, 3)

    # Commits beyond $top: the service says where to go on in a header the client drops.
    first = git.get_pull_request_commits(REPO, number, project=PROJECT, top=1)
    assert [c.commit_id for c in first] == [head]
    assert emulator.requests[-1].response_headers["x-ms-continuationtoken"] == "1"
    rest = git.get_pull_request_commits(
        REPO, number, project=PROJECT, top=1, continuation_token="1"
    )
    assert [c.commit_id for c in rest] == [mine[1]]


def test_commit_diffs(git: GitClient, server: GitServer, emulator: AzureReposEmulator) -> None:
    """`get_commit_diffs`: how far a branch is ahead of and behind another, and the files."""
    head = branch(server, "ade/diffs", {"d1.yaml": "1\n"}, {"d2.yaml": "2\n", "a.yaml": None})
    common = server.head(REPO)
    server.commit(REPO, {"main-only.yaml": "m\n"}, "Move main on")
    diffs = git.get_commit_diffs(
        REPO,
        project=PROJECT,
        diff_common_commit=True,
        base_version_descriptor=models.GitBaseVersionDescriptor(
            base_version="main", base_version_type="branch"
        ),
        target_version_descriptor=models.GitTargetVersionDescriptor(
            target_version="ade/diffs", target_version_type="branch"
        ),
    )
    assert (diffs.ahead_count, diffs.behind_count) == (2, 1)
    assert (diffs.common_commit, diffs.target_commit) == (common, head)
    assert {c["item"]["path"]: c["changeType"] for c in diffs.changes} == {
        "/a.yaml": "delete",
        "/d1.yaml": "add",
        "/d2.yaml": "add",
    }
    assert diffs.change_counts == {"Add": 2, "Delete": 1}
    assert diffs.all_changes_included is True

    # The descriptors' own `version`/`version_type` (inherited from GitVersionDescriptor) are
    # not sent: only `base_version*`/`target_version*` are. Nothing named compares the default
    # branch with itself.
    unnamed = git.get_commit_diffs(
        REPO,
        project=PROJECT,
        base_version_descriptor=models.GitBaseVersionDescriptor(
            version="main", version_type="branch"
        ),
        target_version_descriptor=models.GitTargetVersionDescriptor(
            version="ade/diffs", version_type="branch"
        ),
    )
    assert emulator.requests[-1].query == {}
    assert (unnamed.ahead_count, unnamed.behind_count, unnamed.changes) == (0, 0, [])

    with pytest.raises(AzureDevOpsServiceError) as unknown:
        git.get_commit_diffs(
            REPO,
            project=PROJECT,
            target_version_descriptor=models.GitTargetVersionDescriptor(
                target_version="ade/no-such-branch", target_version_type="branch"
            ),
        )
    assert (unknown.value.type_key, last_status(emulator)) == (
        "GitUnresolvableToCommitException",
        404,
    )
    assert unknown.value.message.startswith("TF401175:The version descriptor <Branch: ade/no-")


# -- completing, abandoning --------------------------------------------------------------------


def test_complete_through_the_api(
    git: GitClient, server: GitServer, emulator: AzureReposEmulator
) -> None:
    head = branch(server, "ade/merge-me", {"merged.yaml": "m\n"})
    pr = open_pull(git, "ade/merge-me", title="Merge me")
    number = pr.pull_request_id
    before = server.head(REPO)

    with pytest.raises(AzureDevOpsServiceError) as no_commit:  # lastMergeSourceCommit required
        git.update_pull_request(GitPullRequest(status="completed"), REPO, number, project=PROJECT)
    assert refused(no_commit) == (
        "InvalidArgumentValueException",
        "Invalid argument value.\r\nParameter name: You must specify a valid "
        "LastMergeSourceCommit to perform this operation.",
    )
    with pytest.raises(AzureDevOpsServiceError) as stale:  # not the source's head
        complete(git, number, before)
    assert (stale.value.type_key, last_status(emulator)) == ("GitPullRequestStaleException", 409)
    assert server.head(REPO) == before

    # As the service, the PATCH answers with the pull request queued for completion, still
    # active; the next read shows it completed.
    queued = complete(git, number, head)
    assert (queued.status, queued.closed_date) == ("active", None)
    assert queued.completion_queue_time is not None
    done = git.get_pull_request(REPO, number, project=PROJECT)
    assert (done.status, done.merge_status) == ("completed", "succeeded")
    assert done.closed_date is not None
    assert done.closed_by.display_name == "ade-bot"
    main = server.head(REPO)
    assert done.last_merge_commit.commit_id == main
    assert done.last_merge_source_commit.commit_id == head
    assert done.last_merge_target_commit.commit_id == before
    assert is_ancestor(server, head, MAIN)
    assert parents(server, main) == [before, head]
    assert server.log(REPO)[0].subject == f"Merged PR {number}: Merge me"
    assert find(git, "ade/merge-me", "completed") == [number]

    with pytest.raises(AzureDevOpsServiceError) as closed:
        git.update_pull_request(GitPullRequest(title="Too late"), REPO, number, project=PROJECT)
    assert closed.value.message == "TF401181: The pull request cannot be edited due to its state."


def test_squash_and_delete_the_source(git: GitClient, server: GitServer) -> None:
    head = branch(server, "ade/squash", {"s1.yaml": "1\n"}, {"s2.yaml": "2\n"})
    number = open_pull(git, "ade/squash", title="Squash").pull_request_id
    before = server.head(REPO)
    complete(
        git,
        number,
        head,
        merge_strategy="squash",
        delete_source_branch=True,
        merge_commit_message="Squashed runner updates",
    )
    main = server.head(REPO)
    assert parents(server, main) == [before]
    assert server.log(REPO)[0].subject == "Squashed runner updates"
    assert run_git(server, "rev-parse", "--verify", "refs/heads/ade/squash").returncode != 0
    done = git.get_pull_request(REPO, number, project=PROJECT)
    assert done.completion_options.merge_strategy == "squash"


def test_a_conflict_is_not_completed(git: GitClient, server: GitServer) -> None:
    head = branch(server, "ade/conflict", {"a.yaml": "runner: theirs\n"})
    server.commit(REPO, {"a.yaml": "runner: ours\n"}, "Change a.yaml on main")
    before = server.head(REPO)
    number = open_pull(git, "ade/conflict", title="Conflict").pull_request_id
    read = git.get_pull_request(REPO, number, project=PROJECT)
    assert (read.merge_status, read.last_merge_commit) == ("conflicts", None)
    queued = complete(git, number, head)
    assert (queued.status, queued.merge_status) == ("active", "conflicts")
    after = git.get_pull_request(REPO, number, project=PROJECT)
    assert (after.status, after.merge_status) == ("active", "conflicts")
    assert server.head(REPO) == before


def test_abandon_and_reactivate(
    git: GitClient, server: GitServer, emulator: AzureReposEmulator
) -> None:
    branch(server, "ade/abandon-me", {"abandoned.yaml": "a\n"})
    first = open_pull(git, "ade/abandon-me", title="First").pull_request_id
    abandoned = git.update_pull_request(
        GitPullRequest(status="abandoned"), REPO, first, project=PROJECT
    )
    assert abandoned.status == "abandoned"
    assert abandoned.closed_date is not None
    assert find(git, "ade/abandon-me") == []
    assert find(git, "ade/abandon-me", "abandoned") == [first]

    second = open_pull(git, "ade/abandon-me", title="Second").pull_request_id  # allowed now
    with pytest.raises(AzureDevOpsServiceError) as duplicate:
        git.update_pull_request(GitPullRequest(status="active"), REPO, first, project=PROJECT)
    assert (duplicate.value.type_key, last_status(emulator)) == (
        "GitPullRequestExistsException",
        409,
    )
    emulator.abandon(REPO, second)  # the helper, no HTTP
    reactivated = git.update_pull_request(
        GitPullRequest(status="active"), REPO, first, project=PROJECT
    )
    assert (reactivated.status, reactivated.closed_date) == ("active", None)
    assert find(git, "ade/abandon-me", "all") == [second, first]  # newest first


def test_helpers_complete_and_list(
    git: GitClient, server: GitServer, emulator: AzureReposEmulator
) -> None:
    head = branch(server, "ade/helper", {"helper.yaml": "h\n"})
    number = open_pull(git, "ade/helper", title="Helper").pull_request_id
    sha = emulator.complete(REPO, number)
    assert sha == server.head(REPO)
    assert is_ancestor(server, head, MAIN)
    shown = next(p for p in emulator.pulls(REPO) if p["pullRequestId"] == number)
    assert (shown["status"], shown["lastMergeCommit"]["commitId"]) == ("completed", sha)
    assert spec.validate_response("GET", spec.PULL, 200, shown) == "#/definitions/GitPullRequest"


# -- authentication, faults, raw requests ------------------------------------------------------


def test_wrong_token_is_401(emulator: AzureReposEmulator) -> None:
    # A fresh process: discovery is the first call, and it is refused.
    forget_discovery()
    start = len(emulator.requests)
    with pytest.raises(AzureDevOpsAuthenticationError) as caught:
        connect(emulator, token="not-the-token").get_repository(REPO, project=PROJECT)
    assert str(caught.value) == (
        f"The requested resource requires user authentication: {emulator.base_url}/_apis"
    )
    refusals = emulator.requests[start:]
    assert [(r.method, r.path, r.status) for r in refusals] == [("OPTIONS", "/org/_apis", 401)]
    challenge = refusals[0].response_headers["WWW-Authenticate"]
    assert 'Basic realm="' in challenge
    assert "Bearer authorization_uri=" in challenge

    # Routes known (cached): the call itself is refused, the same way.
    connect(emulator).get_repository(REPO, project=PROJECT)
    with pytest.raises(AzureDevOpsAuthenticationError) as again:
        connect(emulator, token="not-the-token").get_repository(REPO, project=PROJECT)
    assert str(again.value).endswith(f"/org/{PROJECT}/_apis/git/repositories/{REPO}")

    assert raw(emulator, "GET", f"/{PROJECT}/_apis/git/repositories/{REPO}")[0] == 200  # Bearer
    repository = f"/{PROJECT}/_apis/git/repositories/{REPO}"
    basic = "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert raw(emulator, "GET", repository, authorization=basic)[0] == 200
    status, headers, body = raw(emulator, "GET", repository, authorization=None)
    assert (status, body, headers["content-length"]) == (401, None, "0")


def test_rate_limiting(git: GitClient, emulator: AzureReposEmulator) -> None:
    """What azure-devops 7.1.0b4 (msrest 0.7, urllib3 2) does with Azure DevOps's 429."""
    git.get_repository(REPO, project=PROJECT)  # routes known

    # With Retry-After, urllib3 (msrest's retry policy: 3 retries) waits and retries a GET:
    # the caller sees only the success.
    emulator.fail_next(429, retry_after=1)
    start = len(emulator.requests)
    assert git.get_repository(REPO, project=PROJECT).name == REPO
    limited_then_ok = emulator.requests[start:]
    assert [r.status for r in limited_then_ok] == [429, 200]
    assert limited_then_ok[1].time - limited_then_ok[0].time >= 0.9
    assert limited_then_ok[0].response_headers["Retry-After"] == "1"
    assert limited_then_ok[0].response_headers["X-RateLimit-Remaining"] == "0"

    # Past the retries: AzureDevOpsServiceError, which carries the service's message and type
    # but neither the status nor the headers; a requests response hook on the client's
    # configuration sees them.
    seen: list[tuple[int, str | None]] = []
    git.config.hooks.append(
        lambda r, *_, **__: seen.append((r.status_code, r.headers.get("Retry-After")))
    )
    emulator.fail_next(429, retry_after=1, times=4)
    start = len(emulator.requests)
    with pytest.raises(AzureDevOpsServiceError) as blocked:
        git.get_repository(REPO, project=PROJECT)
    assert blocked.value.type_key == "RequestBlockedException"
    assert blocked.value.message.startswith("TF400733: The request has been canceled")
    assert [r.status for r in emulator.requests[start:]] == [429] * 4
    assert seen == [(429, "1")]

    # Without Retry-After a 429 is not retried; nor is a POST, ever (urllib3 2 ignores msrest's
    # `method_whitelist`).
    emulator.fail_next(429)
    start = len(emulator.requests)
    with pytest.raises(AzureDevOpsServiceError):
        git.get_repository(REPO, project=PROJECT)
    emulator.fail_next(429, retry_after=1)
    with pytest.raises(AzureDevOpsServiceError):
        open_pull(git, "ade/never-created")
    assert [r.status for r in emulator.requests[start:]] == [429, 429]
    git.config.hooks.clear()


def test_server_errors(git: GitClient, emulator: AzureReposEmulator) -> None:
    git.get_repository(REPO, project=PROJECT)  # routes known
    # A GET is retried on 5xx (backoff 0 s, 1.6 s, 3.2 s, or Retry-After).
    emulator.fail_next(503, times=2, retry_after=1)
    start = len(emulator.requests)
    assert git.get_repository(REPO, project=PROJECT).name == REPO
    assert [r.status for r in emulator.requests[start:]] == [503, 503, 200]

    # Past the retries: msrest's ClientRequestError wrapping urllib3's RetryError, no body.
    emulator.fail_next(502, times=4, retry_after=1)
    started = time.monotonic()
    with pytest.raises(ClientRequestError) as exhausted:
        git.get_repository(REPO, project=PROJECT)
    assert "too many 502 error responses" in str(exhausted.value)
    assert time.monotonic() - started >= 2.9

    # A POST is not retried: the service's error body comes through.
    emulator.fail_next(500)
    start = len(emulator.requests)
    with pytest.raises(AzureDevOpsServiceError) as failed:
        open_pull(git, "ade/never-created")
    assert failed.value.message.startswith("TF400898: An Internal Error Occurred.")
    assert [r.status for r in emulator.requests[start:]] == [500]


def test_without_client_retries(git: GitClient, emulator: AzureReposEmulator) -> None:
    """With the client's retries off (`config.retry_policy.retries = 0`) and a response hook,
    as an operator that paces its own retries would set it up."""
    git.get_repository(REPO, project=PROJECT)  # routes known
    git.config.retry_policy.retries = 0
    seen: list[tuple[int, str | None]] = []
    git.config.hooks.append(
        lambda r, *_, **__: seen.append((r.status_code, r.headers.get("Retry-After")))
    )
    emulator.fail_next(429, retry_after=7)
    with pytest.raises(AzureDevOpsServiceError) as limited:
        git.get_repository(REPO, project=PROJECT)
    assert limited.value.type_key == "RequestBlockedException"
    assert seen == [(429, "7")]

    # A 5xx is in urllib3's forced-retry list: with no retry left it raises before the
    # response reaches requests, so the hook sees nothing and the body is lost.
    emulator.fail_next(503, retry_after=7)
    start = len(emulator.requests)
    with pytest.raises(ClientRequestError) as unavailable:
        git.get_repository(REPO, project=PROJECT)
    assert "too many 503 error responses" in str(unavailable.value)
    assert ([r.status for r in emulator.requests[start:]], seen[1:]) == ([503], [])

    emulator.fail_next(500)  # a POST is never retried: its answer comes through
    with pytest.raises(AzureDevOpsServiceError) as failed:
        open_pull(git, "ade/never-created")
    assert failed.value.message.startswith("TF400898")
    assert seen[1:] == [(500, None)]


def test_raw_requests_and_headers(emulator: AzureReposEmulator, server: GitServer) -> None:
    pulls = f"/{PROJECT}/_apis/git/repositories/{REPO}/pullrequests"
    branch(server, "ade/raw", {"raw.yaml": "r\n"})
    fields = {"sourceRefName": "refs/heads/ade/raw", "targetRefName": MAIN, "title": "Raw"}
    body = json.dumps(fields).encode()
    status, headers, error = raw(emulator, "POST", pulls, body, accept="application/json")
    assert (status, error["typeKey"]) == (400, "VssVersionNotSpecifiedException")
    assert error["message"].startswith('No api-version was supplied for the "POST" request.')
    assert headers["x-tfs-serviceerror"].startswith("No%20api-version")
    status, _, error = raw(emulator, "GET", f"{pulls}?api-version=7.2")
    assert (status, error["typeKey"]) == (400, "VssInvalidPreviewVersionException")
    status, _, error = raw(emulator, "GET", f"{pulls}?api-version=9.0")
    assert (status, error["typeKey"]) == (400, "VssVersionOutOfRangeException")
    status, _, created = raw(emulator, "POST", f"{pulls}?api-version=7.1", body)
    assert (status, created["status"], created["mergeStatus"]) == (201, "active", "queued")

    status, headers, listed = raw(emulator, "GET", f"{pulls}?searchCriteria.status=all")
    assert status == 200
    assert headers["content-type"] == "application/json; charset=utf-8; api-version=7.1"
    assert listed["count"] == len(listed["value"]) > 0
    assert all("_links" not in pull for pull in listed["value"])  # lists omit them by default

    status, _, page = raw(emulator, "GET", "/no/such/route")
    assert (status, page) == (404, None)
    status, _, error = raw(emulator, "DELETE", f"{pulls}/1")
    assert (status, error["typeKey"]) == (405, "HttpResponseException")
    status, _, error = raw(emulator, "POST", pulls, b"{not json")
    assert (status, error["typeKey"]) == (400, "InvalidArgumentValueException")


# -- what the client reads, and where it disagrees with the description ------------------------


def test_client_models_against_the_description() -> None:
    """Compare the client's models (msrest attribute maps) with the published definitions."""
    definitions = spec.subset()["definitions"]

    def members(name: str) -> set[str]:
        schema = definitions[name]
        found = set(schema.get("properties", {}))
        for parent in schema.get("allOf", []):
            if "$ref" in parent:
                found |= members(parent["$ref"].rsplit("/", 1)[1])
        return found

    report = {}
    names = ("GitPullRequest", "GitRepository", "GitCommitRef", "GitPullRequestIteration",
             "GitPullRequestChange", "GitPullRequestIterationChanges", "IdentityRef")  # fmt: skip
    for name in names:
        model = getattr(models, name)
        read = {entry["key"] for entry in model._attribute_map.values()}
        report[name] = (sorted(members(name) - read), sorted(read - members(name)))
    print("\nmembers the description defines but the client drops / the client reads beyond it:")
    for name, (dropped, extra) in report.items():
        print(f"  {name}: dropped {dropped}, extra {extra}")
    assert report["GitPullRequestChange"][0] == [
        "changeId", "changeType", "item", "newContent", "newContentTemplate", "originalPath",
        "sourceServerItem", "url",
    ]  # fmt: skip
    assert report["GitPullRequest"] == ([], [])
    # No definition marks any member required: everything the operator relies on (the id,
    # status, refs, lastMergeSourceCommit...) is optional in the description.
    assert not any("required" in schema for schema in definitions.values())


# -- the validator ------------------------------------------------------------------------------


def test_validator_is_not_vacuous(git: GitClient, server: GitServer) -> None:
    branch(server, "ade/validator", {"validator.yaml": "v\n"})
    number = open_pull(git, "ade/validator", title="V").pull_request_id
    good = git._send(  # the JSON as the emulator sends it
        http_method="GET",
        location_id="9946fd70-0d40-406e-b686-b4744cbbcc37",
        version="7.1",
        route_values={"project": PROJECT, "repositoryId": REPO, "pullRequestId": number},
    ).json()
    assert spec.validate_response("GET", spec.PULL, 200, good) == "#/definitions/GitPullRequest"
    broken: list[Any] = [
        {**good, "pullRequestId": str(good["pullRequestId"])},
        {**good, "status": "merged"},
        {**good, "mergeStatus": "clean"},
        {**good, "creationDate": "yesterday"},
        {**good, "mergeId": "not-a-guid"},
        {**good, "isDraft": "false"},
        {**good, "pullRequestId": 2**31},
        {**good, "lastMergeSourceCommit": {"commitId": 5}},
        {**good, "repository": {**good["repository"], "project": {"state": "fine"}}},
        {**good, "createdBy": {**good["createdBy"], "login": "x"}},  # not a member (strict)
        {**good, "_links": {"self": "https://x"}},
        [good],
    ]
    for body in broken:
        with pytest.raises(spec.SchemaMismatch):
            spec.validate_response("GET", spec.PULL, 200, body)
    with pytest.raises(spec.SchemaMismatch):  # a list must come wrapped
        spec.validate_response("GET", spec.PULLS, 200, [good])
    with pytest.raises(spec.SchemaMismatch):  # and counted right
        spec.validate_response("GET", spec.PULLS, 200, {"count": 2, "value": [good]})
    with pytest.raises(spec.SchemaMismatch):  # an error body is a WrappedException
        spec.validate_response("GET", spec.PULL, 404, {"message": "not found"})
    with pytest.raises(spec.SchemaMismatch):  # a 401 has no JSON body here
        spec.validate_response("GET", spec.PULL, 401, {"message": "no"})
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_request("POST", spec.PULLS, {"sourceRefName": 1})
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_request("POST", spec.PULLS, None)  # the body is required
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_request("PATCH", spec.PULL, {"completionOptions": {"mergeStrategy": "ff"}})
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_response(
            "GET", spec.CHANGES, 200, {"changeEntries": [{"changeType": "moved"}]}
        )
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_query("GET", spec.PULLS, {"searchCriteria.status": "open"}, accept=None)
    with pytest.raises(spec.SchemaMismatch):  # api-version neither in the query nor Accept
        spec.validate_query("GET", spec.PULL, {}, accept="application/json")
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_query("GET", spec.PULLS, {"state": "open", "api-version": "7.1"})
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_discovery(LOCATIONS_TEMPLATE, 200, {"count": 1, "value": [{"id": "x"}]})
    with pytest.raises(spec.UnknownOperation):
        spec.validate_response("DELETE", spec.PULL, 204, None)


def test_every_recorded_exchange_matches_the_description(emulator: AzureReposEmulator) -> None:
    """All exchanges of the module, validated again together; the schema of each is shown."""
    records = emulator.requests
    statuses = hosts.validate_all(records, spec.OPERATIONS, validate, _SCHEMAS_USED, 7)
    assert {200, 201, 400, 401, 404, 405, 409, 429, 500, 502, 503} <= statuses
