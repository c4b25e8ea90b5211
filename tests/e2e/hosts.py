"""What the tests of the hosting emulators and of the operator's host adapters share, for GitHub
(`test_github_emulator`, `test_github_host`) and Azure Repos (`test_azure_repos_emulator`,
`test_azure_repos_host`): the git server holding `catalog`, git on its bare repository, branches
made of commits, raw HTTP requests, validating every recorded exchange, and the host adapter
scenarios that read the same on both hosts.
"""

from __future__ import annotations

import contextlib
import http.client
import pathlib
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import pytest

from controller import errors
from controller.hosting.pulls import Host, PullRequest
from tests.env import gitserver
from tests.env.bare_repo import BareRepo
from tests.env.gitserver import GitServer

REPO = "catalog"
BRANCH = "ade/runner-updates"


class Recorded(Protocol):
    """A recorded exchange (`tests.env.api_emulator.Request`), as far as these helpers read."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def path_template(self) -> str | None: ...
    @property
    def status(self) -> int: ...


# -- git ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def catalog_server(folder: pathlib.Path, *, with_branch: bool = False) -> Iterator[GitServer]:
    """A git server with `catalog` (`a.yaml`); `with_branch`: and `BRANCH`, one commit ahead."""
    with gitserver.running(folder, {"user": "pw"}) as server:
        server.create_repo(REPO, {"a.yaml": "runner: x\n"})
        if with_branch:
            server.commit(REPO, {"a.yaml": "runner: y\n"}, "Use runner y", branch=BRANCH)
        yield server


def git(server: GitServer, *args: str) -> subprocess.CompletedProcess[str]:
    """git in the bare repository, as an admin (no hook refuses it)."""
    return BareRepo(server, REPO).run(*args)


def branch(server: GitServer, name: str, *changes: dict[str, str | None]) -> str:
    """Branch `name` off main with one commit per `changes`; its head."""
    for number, files in enumerate(changes, 1):
        server.commit(REPO, files, f"{name}: change {number}", branch=name)
    return server.head(REPO, name)


def is_ancestor(server: GitServer, commit: str, of: str) -> bool:
    return git(server, "merge-base", "--is-ancestor", commit, of).returncode == 0


# -- HTTP and the recorded exchanges -----------------------------------------------------------


def request(
    port: int, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """One request to 127.0.0.1:`port` (`Content-Type: application/json` with a body): status,
    headers (lower-case names), body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = {**headers, **({"Content-Type": "application/json"} if body is not None else {})}
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


def validated_after(
    requests: Callable[[], Sequence[Any]], validate: Callable[[Any], None]
) -> Iterator[None]:
    """For an autouse fixture: after the test, `validate` each exchange it caused."""
    before = len(requests())
    yield
    for record in requests()[before:]:
        validate(record)


def validate_all(
    records: Sequence[Recorded],
    operations: Mapping[str, Sequence[str]],
    validate: Callable[[Any], None],
    used: Mapping[tuple[str, str, int], set[str]],
    width: int,
) -> set[int]:
    """Validate all of a module's exchanges (skip unless every operation was exercised), print
    the schemas used for each (method, path, status); the statuses seen."""
    exercised = {(r.method.lower(), r.path_template) for r in records if 200 <= r.status < 300}
    wanted = {(m, t) for t, methods in operations.items() for m in methods}
    if not wanted <= exercised:
        pytest.skip("run the whole module: only some operations were exercised")
    for record in records:
        validate(record)
    lines = [
        f"{method:{width}} {path} {status}: {', '.join(sorted(schemas))}"
        for (method, path, status), schemas in sorted(used.items())
    ]
    print(f"\n{len(records)} exchanges validated:\n" + "\n".join(lines))
    assert all(r.path_template for r in records if r.status < 400)
    return {r.status for r in records}


# -- host adapter scenarios --------------------------------------------------------------------


async def open_find_describe_edit(
    host: Host, pulls: Callable[[], Sequence[Any]], merge: Callable[[], object]
) -> PullRequest:
    """Open, find, describe, edit, merge (`merge`) one pull request through `host`, never a
    second one (`pulls`: the emulator's); the one opened."""
    assert await host.find_open(head=BRANCH, base="main") is None
    opened = await host.open(head=BRANCH, base="main", title="t", body="b")
    assert opened is not None
    assert (opened.number, opened.state) == (1, "open")
    again = await host.open(head=BRANCH, base="main", title="t2", body="b2")  # exists: the same
    assert again is not None
    assert again.number == 1
    assert len(pulls()) == 1
    contents = await host.contents(1)
    assert [subject for _, subject in contents.commits] == ["Use runner y"]
    assert contents.files == ("a.yaml",)
    edited = await host.edit(1, title="New title", body="New body")
    assert (edited.title, edited.body) == ("New title", "New body")
    found = await host.find_open(head=BRANCH, base="main")
    assert found is not None
    assert found.number == 1
    merge()
    merged = await host.get(1)
    assert merged is not None
    assert merged.state == "merged"
    assert await host.get(99) is None
    # merged: nothing left between the branches, so no new pull request
    assert await host.open(head=BRANCH, base="main", title="t", body="b") is None
    assert len(pulls()) == 1
    return opened


async def refused_and_missing(wrong_token: Host, missing: Host, refusal: str, token: str) -> None:
    """A refused token and a missing repository stall naming the field; the token shows in no
    message (`refusal`: how the message starts)."""
    with pytest.raises(errors.StalledError) as refused:
        await wrong_token.find_open(head=BRANCH, base="main")
    assert refused.value.reason == "PullRequestAuthFailed"
    assert str(refused.value).startswith(f"spec.catalog.pullRequest: {refusal}")
    assert token not in str(refused.value)
    with pytest.raises(errors.StalledError) as not_found:
        await missing.find_open(head=BRANCH, base="main")
    assert not_found.value.reason == "PullRequestRepositoryNotFound"


async def unreachable(gone: Host) -> None:
    """A host nobody answers at is transient, `PullRequestHostUnavailable`."""
    with pytest.raises(errors.TransientError) as caught:
        await gone.find_open(head=BRANCH, base="main")
    assert caught.value.reason == "PullRequestHostUnavailable"
