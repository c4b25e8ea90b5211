"""The GitHub emulator (`tests.env.github`) driven by PyGithub as the operator drives it, and
checked against GitHub's published OpenAPI description (`tests.env.github_openapi`).

A real git server (`tests.env.gitserver`) holds the repository `catalog`; the emulator serves it
as `org/catalog` at a GitHub Enterprise `base_url`. PyGithub opens pull requests, lists them by
head and base, meets GitHub's 422s (a duplicate, a missing branch, no commits), edits them, reads
their commits and files, merges them for real (merge, squash, rebase: the bare repository's
`main` moves) or closes them; a wrong token gets 401, and injected secondary rate limits and
5xx show what PyGithub does with and without its retry.

Every request and response the emulator recorded is validated against the description: after
each test (an autouse fixture) and all together at the end, where the schema used for each
(method, path, status) is printed. A test proves the validator is not vacuous: bodies broken on
purpose must fail it.
"""

from __future__ import annotations

import inspect
import json
import pathlib
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from github import (
    Auth,
    BadCredentialsException,
    Github,
    GithubException,
    GithubRetry,
    RateLimitExceededException,
    UnknownObjectException,
)
from github.PullRequest import PullRequest
from github.Repository import Repository

from tests.e2e import hosts
from tests.e2e.hosts import BRANCH, REPO, branch, git, is_ancestor
from tests.env import github_openapi as spec
from tests.env import gitserver, signing_keys
from tests.env.github import HTML_ROOT, GitHubEmulator, Request, running
from tests.env.gitserver import GitServer

pytestmark = pytest.mark.e2e

TOKEN = "ghp_emulated0token0for0the0tests00000000"
DOCS = "https://docs.github.com/rest"

_SCHEMAS_USED: dict[tuple[str, str, int], set[str]] = {}
"""(method, path template or path, status) -> the schemas their bodies were validated against."""


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with hosts.catalog_server(tmp_path_factory.mktemp("github-emulator") / "git") as server:
        yield server


@pytest.fixture(scope="module")
def emulator(server: GitServer) -> Iterator[GitHubEmulator]:
    with running(server, token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
def gh(emulator: GitHubEmulator) -> Iterator[Github]:
    """PyGithub as the operator builds it, without retries (each test says when it wants them)."""
    client = Github(auth=Auth.Token(TOKEN), base_url=emulator.base_url, retry=None)
    yield client
    client.close()


@pytest.fixture
def repo(gh: Github) -> Repository:
    return gh.get_repo(f"org/{REPO}")


@pytest.fixture(autouse=True)
def exchanges_match_the_description(emulator: GitHubEmulator) -> Iterator[None]:
    """After each test: every exchange it caused matches GitHub's description."""
    yield from hosts.validated_after(lambda: emulator.requests, validate)


def validate(record: Request) -> None:
    """Validate one recorded exchange; remember which schemas were used."""
    key = (record.method, record.path_template or record.path, record.status)
    used = _SCHEMAS_USED.setdefault(key, set())
    if record.path_template is None:  # a path GitHub does not have: its 404 is a basic error
        used.add(spec.validate_schema("basic-error", record.response_json))
        return
    used.add(
        "response "
        + spec.validate_response(
            record.method, record.path_template, record.status, record.response_json
        )
    )
    # What PyGithub sent must match, always; a raw request sent wrong on purpose is only
    # checked when the emulator accepted it.
    from_pygithub = (record.user_agent or "").startswith("PyGithub")
    if not record.malformed and (from_pygithub or record.status < 400):
        used.add(
            "request "
            + spec.validate_request(record.method, record.path_template, record.request_json)
        )


# -- helpers -----------------------------------------------------------------------------------


def raw(
    emulator: GitHubEmulator,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = TOKEN,
) -> tuple[int, dict[str, str], Any]:
    """One request without PyGithub: status, headers (lower-case names), parsed JSON body."""
    headers = {"Accept": "application/vnd.github+json", "User-Agent": "raw-test"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, found, data = hosts.request(emulator.port, method, f"/api/v3{path}", body, headers)
    return status, found, json.loads(data)


def github_error(caught: pytest.ExceptionInfo[GithubException]) -> tuple[int, dict[str, Any]]:
    data = caught.value.data
    assert isinstance(data, dict)
    return caught.value.status, data


# -- the repository ----------------------------------------------------------------------------


def test_repository_is_the_git_servers(gh: Github, repo: Repository, server: GitServer) -> None:
    assert repo.full_name == f"org/{REPO}"
    assert repo.default_branch == "main"
    assert repo.html_url == f"{HTML_ROOT}/org/{REPO}"
    assert repo.clone_url == server.url(REPO)  # cloning it reaches the real git server
    assert repo.private is True
    assert repo.owner.login == "org"
    with pytest.raises(UnknownObjectException) as missing:
        gh.get_repo("org/missing")
    assert github_error(missing) == (
        404,
        {
            "message": "Not Found",
            "documentation_url": f"{DOCS}/repos/repos#get-a-repository",
            "status": "404",
        },
    )
    with pytest.raises(UnknownObjectException):
        gh.get_repo(f"someone-else/{REPO}")


# -- opening, listing, reading -----------------------------------------------------------------


def test_open_list_and_read_a_pull_request(
    repo: Repository, server: GitServer, emulator: GitHubEmulator
) -> None:
    head = branch(server, BRANCH, {"runners/x.yaml": "image: a\n"})
    pr = repo.create_pull(title="Update runners", body="Automated.", head=BRANCH, base="main")
    assert pr.state == "open"
    assert (pr.head.ref, pr.head.sha, pr.head.label) == (BRANCH, head, f"org:{BRANCH}")
    assert (pr.base.ref, pr.base.sha) == ("main", server.head(REPO))
    assert pr.head.repo.full_name == f"org/{REPO}"
    assert pr.html_url == f"{HTML_ROOT}/org/{REPO}/pull/{pr.number}"
    assert pr.user.login == "ade-bot"
    assert (pr.merged, pr.mergeable, pr.mergeable_state, pr.draft) == (False, True, "clean", False)
    assert (pr.commits, pr.changed_files, pr.additions, pr.deletions) == (1, 1, 1, 0)
    assert pr.merged_at is None
    assert pr.closed_at is None

    def numbers(**filters: str) -> list[int]:
        return [listed.number for listed in repo.get_pulls(**filters)]

    assert numbers(head=f"org:{BRANCH}", base="main") == [pr.number]
    assert numbers(head=f"org:{BRANCH}", base="other") == []
    assert numbers(head="org:no-such-branch") == []
    assert numbers(head=f"someone-else:{BRANCH}") == []
    # As on GitHub, a `head` without its "owner:" is ignored rather than matched.
    assert pr.number in numbers(head=BRANCH)
    assert repo.get_pull(pr.number).title == "Update runners"

    # A pull request follows its head branch: new commits show at once.
    moved = branch(server, BRANCH, {"runners/y.yaml": "image: b\n"})
    again = repo.get_pull(pr.number)
    assert (again.head.sha, again.commits, again.changed_files) == (moved, 2, 2)

    with pytest.raises(GithubException) as duplicate:
        repo.create_pull(title="Again", body="", head=BRANCH, base="main")
    status, data = github_error(duplicate)
    assert status == 422
    assert data["message"] == "Validation Failed"
    assert data["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": f"A pull request already exists for org:{BRANCH}.",
        }
    ]
    assert data["documentation_url"] == f"{DOCS}/pulls/pulls#create-a-pull-request"
    created = [r for r in emulator.requests if r.method == "POST" and r.status == 201]
    assert created[-1].request_json == {
        "title": "Update runners",
        "body": "Automated.",
        "head": BRANCH,
        "base": "main",
    }


def test_422s_for_branches(repo: Repository, server: GitServer) -> None:
    with pytest.raises(GithubException) as no_head:
        repo.create_pull(title="t", body="", head="ade/does-not-exist", base="main")
    status, data = github_error(no_head)
    assert status == 422
    assert data["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]

    branch(server, "ade/base-missing", {"z.yaml": "z\n"})
    with pytest.raises(GithubException) as no_base:
        repo.create_pull(title="t", body="", head="ade/base-missing", base="nope")
    assert github_error(no_base)[1]["errors"] == [
        {"resource": "PullRequest", "field": "base", "code": "invalid"}
    ]

    assert git(server, "branch", "ade/nothing-new", "main").returncode == 0
    with pytest.raises(GithubException) as empty:
        repo.create_pull(title="t", body="", head="ade/nothing-new", base="main")
    status, data = github_error(empty)
    assert status == 422
    assert data["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "No commits between main and ade/nothing-new",
        }
    ]

    with pytest.raises(UnknownObjectException) as absent:
        repo.get_pull(9999)
    assert github_error(absent)[1]["message"] == "Not Found"


def test_edit_title_body_and_base(repo: Repository, server: GitServer) -> None:
    branch(server, "ade/edit", {"edit.yaml": "e\n"})
    pr = repo.create_pull(title="Before", body="old", head="ade/edit", base="main")
    pr.edit(title="After", body="new body")
    assert (pr.title, pr.body) == ("After", "new body")  # PyGithub takes the PATCH's answer
    fetched = repo.get_pull(pr.number)
    assert (fetched.title, fetched.body, fetched.state) == ("After", "new body", "open")
    assert fetched.raw_data["updated_at"] >= fetched.raw_data["created_at"]
    with pytest.raises(GithubException) as bad_base:
        pr.edit(base="no-such-branch")
    assert github_error(bad_base)[1]["errors"] == [
        {"resource": "PullRequest", "field": "base", "code": "invalid"}
    ]


def test_commits_and_files(repo: Repository, server: GitServer) -> None:
    server.commit(REPO, {"old-name.yaml": "runner: old\n"}, "Add a file to rename")
    base = server.head(REPO)
    head = branch(
        server,
        "ade/files",
        {"added.yaml": "one\ntwo\n", "a.yaml": "runner: changed\n"},
        {"old-name.yaml": None, "new-name.yaml": "runner: old\n"},
    )
    pr = repo.create_pull(title="Files", body="", head="ade/files", base="main")
    commits = list(pr.get_commits())
    mine = [c for c in server.log(REPO, "ade/files") if not is_ancestor(server, c.sha, base)]
    assert [c.sha for c in commits] == [c.sha for c in reversed(mine)]  # oldest first
    assert commits[-1].sha == head
    assert commits[0].commit.message == "ade/files: change 1"
    assert commits[0].commit.author.name == "Test Author"
    assert [p.sha for p in commits[1].parents] == [commits[0].sha]
    assert (
        commits[0].commit.tree.sha
        == git(server, "rev-parse", f"{commits[0].sha}^{{tree}}").stdout.strip()
    )

    files = {f.filename: f for f in pr.get_files()}
    assert {name: f.status for name, f in files.items()} == {
        "a.yaml": "modified",
        "added.yaml": "added",
        "new-name.yaml": "renamed",
    }
    assert files["new-name.yaml"].previous_filename == "old-name.yaml"
    assert (files["added.yaml"].additions, files["added.yaml"].deletions) == (2, 0)
    assert (files["a.yaml"].additions, files["a.yaml"].deletions, files["a.yaml"].changes) == (
        1,
        1,
        2,
    )
    assert files["a.yaml"].patch == "@@ -1 +1 @@\n-runner: x\n+runner: changed"
    blob = git(server, "rev-parse", f"{head}:added.yaml").stdout.strip()
    assert files["added.yaml"].sha == blob
    assert (pr.changed_files, pr.additions, pr.deletions) == (3, 3, 1)


# -- merging and closing -----------------------------------------------------------------------


def test_merge_through_the_api(repo: Repository, server: GitServer) -> None:
    head = branch(server, "ade/merge-me", {"merged.yaml": "m\n"})
    pr = repo.create_pull(title="Merge me", body="", head="ade/merge-me", base="main")
    before = server.head(REPO)

    with pytest.raises(GithubException) as moved:
        pr.merge(sha=before)  # not the head: GitHub refuses
    status, data = github_error(moved)
    assert (status, data["message"]) == (
        409,
        "Head branch was modified. Review and try the merge again.",
    )
    assert server.head(REPO) == before

    result = pr.merge(commit_title="Merge runner updates", sha=head)
    assert result.merged is True
    assert result.message == "Pull Request successfully merged"
    main = server.head(REPO)
    assert result.sha == main
    assert is_ancestor(server, head, "refs/heads/main")
    assert git(server, "rev-list", "--parents", "-n1", main).stdout.split()[1:] == [before, head]
    assert server.log(REPO)[0].subject == "Merge runner updates"

    merged = repo.get_pull(pr.number)
    assert (merged.state, merged.merged) == ("closed", True)
    assert merged.raw_data["mergeable"] is None  # GitHub: no mergeability once merged
    assert merged.merged_at is not None
    assert merged.closed_at is not None
    assert merged.merge_commit_sha == main
    assert merged.merged_by.login == "ade-bot"
    assert (merged.commits, merged.head.sha, merged.base.sha) == (1, head, before)

    with pytest.raises(GithubException) as again:
        merged.merge()
    assert github_error(again)[0] == 405
    assert github_error(again)[1]["message"] == "Pull Request is not mergeable"


def test_squash_and_rebase(repo: Repository, server: GitServer) -> None:
    squash_head = branch(server, "ade/squash", {"s1.yaml": "1\n"}, {"s2.yaml": "2\n"})
    squashed = repo.create_pull(title="Squash me", body="", head="ade/squash", base="main")
    before = server.head(REPO)
    sha = squashed.merge(merge_method="squash").sha
    assert git(server, "rev-list", "--parents", "-n1", sha).stdout.split()[1:] == [before]
    assert server.log(REPO)[0].subject == f"Squash me (#{squashed.number})"
    assert not is_ancestor(server, squash_head, "refs/heads/main")
    assert git(server, "cat-file", "-e", "refs/heads/main:s2.yaml").returncode == 0

    rebase_head = branch(server, "ade/rebase", {"r1.yaml": "1\n"}, {"r2.yaml": "2\n"})
    rebased = repo.create_pull(title="Rebase me", body="", head="ade/rebase", base="main")
    before = server.head(REPO)
    sha = rebased.merge(merge_method="rebase").sha
    assert sha == server.head(REPO)
    assert [c.subject for c in server.log(REPO)[:2]] == [
        "ade/rebase: change 2",
        "ade/rebase: change 1",
    ]
    assert git(server, "rev-parse", f"{sha}~2").stdout.strip() == before  # linear, on main
    assert not is_ancestor(server, rebase_head, "refs/heads/main")  # new commits, as GitHub
    committer = git(server, "log", "-1", "--format=%cn", sha).stdout.strip()
    assert committer == "GitHub"


def test_conflicting_pull_request_is_not_mergeable(repo: Repository, server: GitServer) -> None:
    server.commit(REPO, {"shared.yaml": "value: 0\n"}, "Add shared")
    branch(server, "ade/conflict-1", {"shared.yaml": "value: 1\n"})
    branch(server, "ade/conflict-2", {"shared.yaml": "value: 2\n"})
    first = repo.create_pull(title="One", body="", head="ade/conflict-1", base="main")
    second = repo.create_pull(title="Two", body="", head="ade/conflict-2", base="main")
    assert second.mergeable is True  # before the first lands
    first.merge()
    second = repo.get_pull(second.number)
    assert (second.mergeable, second.mergeable_state) == (False, "dirty")
    before = server.head(REPO)
    with pytest.raises(GithubException) as caught:
        second.merge()
    assert github_error(caught)[0] == 405
    assert github_error(caught)[1]["message"] == "Pull Request is not mergeable"
    assert server.head(REPO) == before


def test_close_without_merging(
    repo: Repository, server: GitServer, emulator: GitHubEmulator
) -> None:
    branch(server, "ade/close-me", {"closed.yaml": "c\n"})
    pr = repo.create_pull(title="Close me", body="", head="ade/close-me", base="main")
    pr.edit(state="closed")
    assert (pr.state, pr.merged, pr.merged_at) == ("closed", False, None)
    assert pr.closed_at is not None
    assert pr.number in [p.number for p in repo.get_pulls(state="closed")]
    assert pr.number not in [p.number for p in repo.get_pulls()]  # open is the default
    pr.edit(state="open")
    assert repo.get_pull(pr.number).state == "open"

    emulator.close(REPO, pr.number)  # the helper, no HTTP
    shown = emulator.pulls(REPO)[pr.number - 1]
    assert (shown["number"], shown["state"], shown["merged"]) == (pr.number, "closed", False)
    assert repo.get_pull(pr.number).state == "closed"


def test_draft_is_not_merged(repo: Repository, server: GitServer) -> None:
    branch(server, "ade/draft", {"draft.yaml": "d\n"})
    pr = repo.create_pull(title="Draft", body="", head="ade/draft", base="main", draft=True)
    assert (pr.draft, pr.mergeable_state) == (True, "draft")
    with pytest.raises(GithubException) as caught:
        pr.merge()
    assert github_error(caught)[:1] == (405,)
    assert github_error(caught)[1]["message"] == "Pull Request is still a draft"


def test_merge_passes_a_protected_branch_hook(
    gh: Github, server: GitServer, tmp_path: pathlib.Path
) -> None:
    """GitHub merges as an admin: a pre-receive hook refusing clients' unsigned pushes (the git
    server's `require_signed`) does not stop the API's merge, in any of its three methods."""
    name = "signed"
    server.create_repo(name, {"a.yaml": "a\n"})
    server.require_signed(name)
    clone = tmp_path / "clone"
    env = gitserver.git_env(tmp_path)
    subprocess.run(
        ["git", "clone", "--quiet", server.url_with_user(name), str(clone)], env=env, check=True
    )
    (clone / "pushed.yaml").write_text("p\n")
    subprocess.run(["git", "-C", str(clone), "add", "."], env=env, check=True)
    subprocess.run(["git", "-C", str(clone), "commit", "-qm", "unsigned"], env=env, check=True)
    pushed = subprocess.run(
        ["git", "-C", str(clone), "push", "--quiet", "origin", "HEAD:main"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert pushed.returncode != 0, "the hook should refuse an unsigned push"
    assert "not signed" in pushed.stderr

    repo = gh.get_repo(f"org/{name}")
    for method in ("merge", "squash", "rebase"):
        server.commit(name, {f"{method}.yaml": f"{method}\n"}, method, branch=f"ade/{method}")
        pr = repo.create_pull(title=method, body="", head=f"ade/{method}", base="main")
        result = pr.merge(merge_method=method)
        assert result.sha == server.head(name)
        assert f"{method}.yaml" in git_show_files(server, name, "refs/heads/main")


def git_show_files(server: GitServer, name: str, revision: str) -> list[str]:
    listed = subprocess.run(
        ["git", "--git-dir", str(server.path(name)), "ls-tree", "--name-only", revision],
        env=gitserver.git_env(server.folder),
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def test_helpers_merge_and_list(
    repo: Repository, server: GitServer, emulator: GitHubEmulator
) -> None:
    head = branch(server, "ade/helper", {"helper.yaml": "h\n"})
    pr = repo.create_pull(title="Helper", body="", head="ade/helper", base="main")
    sha = emulator.merge(REPO, pr.number, method="squash")
    assert sha == server.head(REPO)
    shown = emulator.pulls(REPO)[pr.number - 1]
    assert (shown["merged"], shown["merge_commit_sha"], shown["head"]["sha"]) == (True, sha, head)
    assert repo.get_pull(pr.number).merged is True


# -- authentication, faults, pagination, raw requests ------------------------------------------


def test_wrong_token_is_401(emulator: GitHubEmulator) -> None:
    wrong = Github(auth=Auth.Token("not-the-token"), base_url=emulator.base_url, retry=None)
    try:
        with pytest.raises(BadCredentialsException) as caught:
            wrong.get_repo(f"org/{REPO}")
    finally:
        wrong.close()
    assert github_error(caught) == (
        401,
        {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
    )
    status, _, body = raw(emulator, "GET", f"/repos/org/{REPO}", token=None)
    assert (status, body["message"]) == (401, "Requires authentication")


def test_a_github_app_signs_in_with_its_jwt_for_installation_tokens(
    emulator: GitHubEmulator,
) -> None:
    """PyGithub's App installation auth: a JWT (RS256, the App's key) asks for an installation
    token, which then opens the repository; a JWT signed by another key is 401, an installation
    of another App 404, and the JWT itself opens nothing else."""
    key = signing_keys.rsa_key()
    emulator.install_app(31, 310, key.public)

    def client(app_id: int, installation: int, private: bytes) -> Github:
        app = Auth.AppAuth(app_id, private.decode())
        return Github(
            auth=app.get_installation_auth(installation), base_url=emulator.base_url, retry=None
        )

    issued = emulator.apps.issued
    good = client(31, 310, key.private)
    try:
        assert good.get_repo(f"org/{REPO}").full_name == f"org/{REPO}"
        assert emulator.apps.issued == issued + 1
        tokens = [r for r in emulator.requests if r.path.endswith("/access_tokens")]
        assert tokens[-1].status == 201
        assert tokens[-1].response_json["token"].startswith("ghs_")
    finally:
        good.close()
    for app_id, installation, private, status in (
        (31, 310, signing_keys.rsa_key().private, 401),
        (32, 310, key.private, 404),
        (31, 999, key.private, 404),
    ):
        bad = client(app_id, installation, private)
        try:
            with pytest.raises(GithubException) as refused:
                bad.get_repo(f"org/{REPO}")
        finally:
            bad.close()
        assert refused.value.status == status
    jwt_only = Auth.AppAuth(31, key.private.decode()).token
    status, _, body = raw(emulator, "GET", f"/repos/org/{REPO}", token=jwt_only)
    assert (status, body["message"]) == (401, "Bad credentials")


def test_secondary_rate_limit_and_server_errors(gh: Github, emulator: GitHubEmulator) -> None:
    """What PyGithub 2.10 does with GitHub's secondary rate limit and with 5xx."""
    # Without retries: a 429 is a plain GithubException (PyGithub maps only 403 to
    # RateLimitExceededException), with the Retry-After header for the caller to honour.
    emulator.fail_next(429, retry_after=1)
    with pytest.raises(GithubException) as limited:
        gh.get_repo(f"org/{REPO}")
    assert type(limited.value) is GithubException
    status, data = github_error(limited)
    assert status == 429
    assert data["message"].startswith("You have exceeded a secondary rate limit.")
    assert limited.value.headers is not None
    assert limited.value.headers["retry-after"] == "1"

    emulator.fail_next(403, retry_after=1)
    with pytest.raises(RateLimitExceededException) as forbidden:
        gh.get_repo(f"org/{REPO}")
    assert forbidden.value.status == 403

    emulator.fail_next(502)
    with pytest.raises(GithubException) as bad_gateway:
        gh.get_repo(f"org/{REPO}")
    assert github_error(bad_gateway) == (
        502,
        {"message": "Server Error", "documentation_url": DOCS, "status": "502"},
    )

    # With PyGithub's default retry (GithubRetry): the 429 and the 403 are retried after their
    # Retry-After, a 5xx at once; the caller sees only the success.
    retrying = Github(auth=Auth.Token(TOKEN), base_url=emulator.base_url, retry=GithubRetry())
    try:
        for status in (429, 403):
            emulator.fail_next(status, retry_after=1)
            start = len(emulator.requests)
            assert retrying.get_repo(f"org/{REPO}").full_name == f"org/{REPO}"
            limited_then_ok = emulator.requests[start:]
            assert [r.status for r in limited_then_ok] == [status, 200]
            assert limited_then_ok[1].time - limited_then_ok[0].time >= 0.9  # waited Retry-After
        emulator.fail_next(503, times=2)
        start = len(emulator.requests)
        assert retrying.get_repo(f"org/{REPO}").name == REPO
        assert [r.status for r in emulator.requests[start:]] == [503, 503, 200]
    finally:
        retrying.close()


def test_pagination_follows_link(emulator: GitHubEmulator, server: GitServer) -> None:
    paging = Github(auth=Auth.Token(TOKEN), base_url=emulator.base_url, per_page=2, retry=None)
    try:
        repo = paging.get_repo(f"org/{REPO}")
        for name in ("ade/page-1", "ade/page-2", "ade/page-3"):
            branch(server, name, {f"{name.replace('/', '-')}.yaml": "p\n"})
            repo.create_pull(title=name, body="", head=name, base="main")
        start = len(emulator.requests)
        listed = [p.number for p in repo.get_pulls(state="all")]
        everything = sorted((p["number"] for p in emulator.pulls(REPO)), reverse=True)
        assert listed == everything  # newest first, as GitHub's default sort
        pages = [r for r in emulator.requests[start:] if r.path.endswith("/pulls")]
        assert [r.query.get("page", "1") for r in pages] == [
            str(n) for n in range(1, (len(everything) + 1) // 2 + 1)
        ]
        assert repo.get_pulls(state="all").totalCount == len(everything)
    finally:
        paging.close()
    status, headers, _ = raw(
        emulator, "GET", f"/repos/org/{REPO}/pulls?state=all&per_page=1&page=2"
    )
    assert status == 200
    last = len(everything)
    root = emulator.base_url
    assert headers["link"] == (
        f'<{root}/repos/org/{REPO}/pulls?state=all&per_page=1&page=1>; rel="prev", '
        f'<{root}/repos/org/{REPO}/pulls?state=all&per_page=1&page=3>; rel="next", '
        f'<{root}/repos/org/{REPO}/pulls?state=all&per_page=1&page={last}>; rel="last", '
        f'<{root}/repos/org/{REPO}/pulls?state=all&per_page=1&page=1>; rel="first"'
    )


def test_raw_errors_and_headers(emulator: GitHubEmulator) -> None:
    status, headers, body = raw(emulator, "POST", f"/repos/org/{REPO}/pulls", b"{not json")
    assert (status, body["message"]) == (400, "Problems parsing JSON")
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert re.fullmatch(
        r"[0-9A-F]{4}:[0-9A-F]{4}:[0-9A-F]{6}:[0-9A-F]{6}:[0-9A-F]{8}",
        headers["x-github-request-id"],
    )
    for name in ("limit", "remaining", "reset", "used"):
        assert headers[f"x-ratelimit-{name}"].isdigit()
    assert headers["x-ratelimit-resource"] == "core"
    limit, remaining, used = (
        int(headers[f"x-ratelimit-{n}"]) for n in ("limit", "remaining", "used")
    )
    assert limit - used == remaining

    status, _, body = raw(emulator, "GET", "/no/such/path")
    assert (status, body) == (
        404,
        {"message": "Not Found", "documentation_url": DOCS, "status": "404"},
    )
    assert raw(emulator, "GET", f"/repos/org/{REPO}/pulls/not-a-number")[0] == 404
    assert raw(emulator, "DELETE", f"/repos/org/{REPO}/pulls/1")[0] == 404

    wrong_type = json.dumps({"title": 1, "head": BRANCH, "base": "main"}).encode()
    status, _, body = raw(emulator, "POST", f"/repos/org/{REPO}/pulls", wrong_type)
    assert status == 422
    assert body["message"] == "Invalid request.\n\nFor 'properties/title', 1 is not a string."


# -- what PyGithub reads -----------------------------------------------------------------------


def _pygithub_keys(cls: type) -> set[str]:
    """The JSON members PyGithub's class reads (`"name" in attributes` in `_useAttributes`)."""
    source = inspect.getsource(cls._useAttributes)  # type: ignore[attr-defined]
    return set(re.findall(r'"(\w+)" in attributes', source))


def test_fields_pygithub_reads(
    repo: Repository, server: GitServer, emulator: GitHubEmulator
) -> None:
    branch(server, "ade/fields", {"fields.yaml": "f\n"})
    pr = repo.create_pull(title="Fields", body="b", head="ade/fields", base="main")
    served = emulator.pulls(REPO)[pr.number - 1]
    read = _pygithub_keys(PullRequest)
    assert read - set(served) == set(), "PyGithub reads members the emulator leaves out"
    required = set(spec.subset()["components"]["schemas"]["pull-request"]["required"])
    optional_but_read = sorted(read - required)
    print(
        f"\nPullRequest members PyGithub reads that the schema marks optional: {optional_but_read}"
    )
    assert {"draft", "rebaseable", "requested_reviewers", "assignees"} <= set(optional_but_read)

    # The values the operator relies on.
    assert (pr.number, pr.state, pr.merged, pr.draft) == (served["number"], "open", False, False)
    assert pr.html_url == served["html_url"]
    assert (pr.head.ref, pr.head.sha, pr.base.ref) == (
        "ade/fields",
        server.head(REPO, "ade/fields"),
        "main",
    )
    assert pr.created_at.tzinfo is not None

    # A listed pull request is the "simple" shape, which lacks `merged`, `mergeable`,
    # `commits`...: PyGithub fetches the full one when one of those is read.
    listed = next(p for p in repo.get_pulls(head="org:ade/fields"))
    simple = set(spec.subset()["components"]["schemas"]["pull-request-simple"]["properties"])
    assert "merged" not in simple
    start = len(emulator.requests)
    assert listed.merged is False
    completing = emulator.requests[start:]
    assert [(r.method, r.path_template) for r in completing] == [
        ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
    ]


# -- the validator ------------------------------------------------------------------------------


def test_validator_is_not_vacuous(
    repo: Repository, server: GitServer, emulator: GitHubEmulator
) -> None:
    branch(server, "ade/validator", {"validator.yaml": "v\n"})
    number = repo.create_pull(title="V", body="", head="ade/validator", base="main").number
    good = emulator.pulls(REPO)[number - 1]
    template = "/repos/{owner}/{repo}/pulls/{pull_number}"
    assert spec.validate_response("GET", template, 200, good) == "#/components/schemas/pull-request"
    broken: list[dict[str, Any]] = [
        {k: v for k, v in good.items() if k != "head"},
        {**good, "number": str(good["number"])},
        {**good, "state": "merged"},
        {**good, "created_at": "yesterday"},
        {**good, "html_url": "not a url"},
        {**good, "merged_at": 5},
        {**good, "head": {**good["head"], "repo": {"name": "x"}}},
        {**good, "user": None},  # simple-user is not nullable in pull-request
    ]
    for body in broken:
        with pytest.raises(spec.SchemaMismatch):
            spec.validate_response("GET", template, 200, body)
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_response("GET", template, 404, {"documentation_url": DOCS, "message": 404})
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_response("POST", "/repos/{owner}/{repo}/pulls", 422, {"message": "x"})
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_request("POST", "/repos/{owner}/{repo}/pulls", {"title": "no head"})
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_request("POST", "/repos/{owner}/{repo}/pulls", None)
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_request("PUT", f"{template}/merge", {"merge_method": "fast-forward"})
    with pytest.raises(spec.SchemaMismatch):
        spec.validate_response("GET", f"{template}/files", 200, [{"filename": "x"}])
    with pytest.raises(spec.UnknownOperation):
        spec.validate_response("DELETE", template, 204, None)


def test_every_recorded_exchange_matches_the_description(emulator: GitHubEmulator) -> None:
    """All exchanges of the module, validated again together; the schema of each is shown."""
    records = emulator.requests
    statuses = hosts.validate_all(records, spec.OPERATIONS, validate, _SCHEMAS_USED, 5)
    assert {200, 201, 400, 401, 403, 404, 405, 409, 422, 429, 502, 503} <= statuses
