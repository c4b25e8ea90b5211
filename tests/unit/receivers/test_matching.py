"""Which RunnerImages an event concerns: the host's URL forms, refs, base images; and the
request each gets, once per change."""

from __future__ import annotations

import pytest

from controller.api import identity
from controller.receivers import events, matching

A, B = "a" * 40, "b" * 40
DIGEST, OTHER = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _candidate(**fields: str | None) -> matching.Candidate:
    return matching.Candidate(namespace="team", name=str(fields.pop("name", "r1")), **fields)  # type: ignore[arg-type]


def _push(
    urls: tuple[str, ...],
    ref: str = "refs/heads/main",
    revision: str | None = B,
    default: str | None = "main",
) -> events.Event:
    return events.Event("d1", None, (events.SourcePush(urls, ref, revision, default),))


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        ("https://github.com/Contoso/Runners.git", "https://github.com/contoso/runners.git"),
        ("https://github.com/contoso/runners", "git@github.com:contoso/runners.git"),
        ("ssh://git@github.com/contoso/runners.git", "https://github.com/contoso/runners.git"),
        ("https://user@github.com/contoso/runners/", "https://github.com/contoso/runners.git"),
        ("git@ssh.dev.azure.com:v3/contoso/Platform%20Team/runners", "https://contoso@dev.azure.com/contoso/Platform%20Team/_git/runners"),
        ("https://contoso.visualstudio.com/Platform%20Team/_git/runners", "https://dev.azure.com/contoso/Platform%20Team/_git/runners"),
        ("https://contoso.visualstudio.com/DefaultCollection/p/_git/r", "https://dev.azure.com/contoso/p/_git/r"),
        ("http://127.0.0.1:8080/runners.git", "http://127.0.0.1:8080/runners.git"),
        ("https://git.example:443/runners.git", "https://git.example/runners"),
    ],
)  # fmt: skip
def test_one_repository_in_its_many_url_forms(mine: str, theirs: str) -> None:
    assert matching.repository_of(mine) == matching.repository_of(theirs) is not None
    nudges = matching.nudges(_push((theirs,)), [_candidate(git_url=mine)])
    assert nudges == [matching.Nudge("team", "r1", f"webhook source {B}")]


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        ("https://github.com/contoso/runners.git", "https://github.com/contoso/other.git"),
        ("https://github.com/contoso/runners.git", "https://gitlab.com/contoso/runners.git"),
        ("http://127.0.0.1:8080/runners.git", "http://127.0.0.1:8081/runners.git"),
        ("https://dev.azure.com/contoso/p/_git/r", "https://dev.azure.com/fabrikam/p/_git/r"),
    ],
)
def test_other_repositories_are_not_concerned(mine: str, theirs: str) -> None:
    assert matching.nudges(_push((theirs,)), [_candidate(git_url=mine)]) == []


@pytest.mark.parametrize(
    ("ref", "pushed", "concerned"),
    [
        ("main", "refs/heads/main", True),
        ("refs/heads/main", "refs/heads/main", True),
        ("main", "main", True),
        ("v1", "refs/tags/v1", True),
        ("main", "refs/heads/maint", False),
        ("release", "refs/heads/main", False),
        ("HEAD", "refs/heads/main", True),
        ("HEAD", "refs/heads/dev", False),
        (A, "refs/heads/main", False),
    ],
)
def test_refs(ref: str, pushed: str, concerned: bool) -> None:
    url = "https://github.com/c/r.git"
    found = matching.nudges(_push((url,), ref=pushed), [_candidate(git_url=url, git_ref=ref)])
    assert bool(found) is concerned


def test_a_runner_image_already_at_the_commit_or_already_asked_is_not_asked_again() -> None:
    url = "https://github.com/c/r.git"
    event = _push((url,))
    assert matching.nudges(event, [_candidate(git_url=url, source_revision=B)]) == []
    asked = _candidate(git_url=url, requested=f"webhook source {B}")
    assert matching.nudges(event, [asked]) == []
    older = _candidate(git_url=url, source_revision=A, requested=f"webhook source {A}")
    assert matching.nudges(event, [older]) == [matching.Nudge("team", "r1", f"webhook source {B}")]


def test_a_deleted_branch_asks_by_delivery() -> None:
    url = "https://github.com/c/r.git"
    found = matching.nudges(_push((url,), revision=None), [_candidate(git_url=url)])
    assert found == [matching.Nudge("team", "r1", "webhook delivery d1")]


@pytest.mark.parametrize(
    ("base", "concerned"),
    [
        ("contoso.azurecr.io/base/runner:1.2", True),
        ("contoso.azurecr.io/base/runner:1.3", False),
        ("contoso.azurecr.io/base/other:1.2", False),
        ("fabrikam.azurecr.io/base/runner:1.2", False),
        (f"contoso.azurecr.io/base/runner:1.2@{OTHER}", False),  # pinned: never moves
        (None, False),
    ],
)
def test_image_pushes_concern_runner_images_on_that_base(base: str | None, concerned: bool) -> None:
    event = events.Event(
        "d", None, (events.ImagePush("contoso.azurecr.io", "base/runner", "1.2", DIGEST),)
    )
    found = matching.nudges(event, [_candidate(base_image=base, base_digest=OTHER)])
    assert found == ([matching.Nudge("team", "r1", f"webhook image {DIGEST}")] if concerned else [])


def test_an_image_push_of_the_digest_already_built_on_asks_nothing() -> None:
    event = events.Event("d", None, (events.ImagePush("r.io", "base", "latest", DIGEST),))
    assert matching.nudges(event, [_candidate(base_image="r.io/base", base_digest=DIGEST)]) == []
    assert matching.nudges(event, [_candidate(base_image="r.io/base", base_digest=OTHER)])


def test_a_candidate_is_read_from_the_runner_image() -> None:
    body = {
        "metadata": {
            "namespace": "team",
            "name": "r1",
            "annotations": {identity.RECONCILE_REQUEST_ANNOTATION: "x"},
        },
        "spec": {"source": {"git": {"url": "https://g/r.git", "ref": "dev"}}},
        "status": {"sourceRevision": A, "baseImage": "r.io/b:1", "baseImageDigest": DIGEST},
    }
    assert matching.Candidate.of(body) == matching.Candidate(
        "team", "r1", "https://g/r.git", "dev", "r.io/b:1", A, DIGEST, "x"
    )
    inline = {"metadata": {"namespace": "t", "name": "n"}, "spec": {"source": {"inline": {}}}}
    assert matching.Candidate.of(inline).git_url is None


def test_only_concerned_runner_images_are_asked_each_once() -> None:
    url = "https://github.com/c/r.git"
    event = events.Event(
        "d",
        None,
        (
            events.SourcePush((url,), "refs/heads/main", B),
            events.ImagePush("r.io", "base", "1", DIGEST),
        ),
    )
    both = _candidate(name="both", git_url=url, base_image="r.io/base:1")
    none = _candidate(name="none", git_url="https://github.com/c/other.git")
    assert [n.name for n in matching.nudges(event, [both, none])] == ["both"]


def test_what_is_no_git_url() -> None:
    assert matching.repository_of("file:///srv/r.git") is None
    assert matching.repository_of("https://") is None
    assert matching.repository_of("https://host:notaport/r") is None
