"""References to one repository in any text: tags, digests, both; YAML and JSON; never inside a
longer name; the host in any case; Docker Hub's forms."""

from __future__ import annotations

import json

import pytest

from controller.retention import references

REGISTRY, REPOSITORY = "reg.io", "ade/bicep"
D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "b" * 128
TAG = "1a2b3c4d5e6f-0f1e2d3c4b5a"


def _find(text: str) -> tuple[set[str], set[str]]:
    return references.find(text, registry=REGISTRY, repository=REPOSITORY)


@pytest.mark.parametrize(
    ("text", "tags", "digests"),
    [
        (f"reg.io/ade/bicep:{TAG}", {TAG}, set()),
        (f"reg.io/ade/bicep@{D256}", set(), {D256}),
        (f"reg.io/ade/bicep@{D512}", set(), {D512}),
        (f"reg.io/ade/bicep:{TAG}@{D256}", {TAG}, {D256}),
        ('runner: "reg.io/ade/bicep:abc"', {"abc"}, set()),
        ("runner: 'reg.io/ade/bicep:abc'\n", {"abc"}, set()),
        ("  - image: reg.io/ade/bicep:v1.2_3\n", {"v1.2_3"}, set()),
        ("image:reg.io/ade/bicep:abc", {"abc"}, set()),
        ("IMAGE=reg.io/ade/bicep:abc", {"abc"}, set()),
        ("docker://reg.io/ade/bicep:abc", {"abc"}, set()),
        ("FROM reg.io/ade/bicep:abc AS base", {"abc"}, set()),
        ("see reg.io/ade/bicep:abc.", {"abc.", "abc"}, set()),
        ("REG.IO/ade/bicep:abc", {"abc"}, set()),
        ("Reg.Io/ade/bicep:abc", {"abc"}, set()),
        (f"reg.io/ade/bicep:{'t' * 128}", {"t" * 128}, set()),
    ],
)
def test_references_are_found(text: str, tags: set[str], digests: set[str]) -> None:
    assert _find(text) == (tags, digests)


@pytest.mark.parametrize(
    "text",
    [
        "reg.io/ade/bicep-extra:1",
        "reg.io/ade/bicep_extra:1",
        "reg.io/ade/bicep.extra:1",
        "reg.io/ade/bicep/buildcache:x",
        "other-reg.io/ade/bicep:1",
        "xreg.io/ade/bicep:1",
        "my.reg.io/ade/bicep:1",
        "mirror/reg.io/ade/bicep:1",
        "reg.io:5000/ade/bicep:1",
        "reg.io/ADE/bicep:1",
        "reg.io/ade/Bicep:1",
        "reg.io/ade/bicep",
        "reg.io/ade/bicep is pushed",
        "reg.io/ade/bicep:",
        "reg.io/ade/bicep: 1",
        f"reg.io/ade/bicep:{'t' * 129}",
        f"reg.io/ade/bicep@sha256:{'a' * 63}",
        f"reg.io/ade/bicep@sha256:{'a' * 65}",
        f"reg.io/ade/bicep@sha256:{'A' * 64}",
        f"reg.io/ade/bicep@md5:{'a' * 32}",
        "ade/bicep:1",
        "",
    ],
)
def test_other_names_are_not_references(text: str) -> None:
    assert _find(text) == (set(), set())


def test_a_bad_digest_after_a_tag_leaves_the_tag() -> None:
    assert _find("reg.io/ade/bicep:abc@sha256:beef") == ({"abc"}, set())


def test_several_references_on_one_line() -> None:
    text = (
        f"a=reg.io/ade/bicep:one b=reg.io/ade/bicep@{D256},"
        f"[reg.io/ade/bicep:two@{D512}] reg.io/ade/bicep-x:three"
    )
    assert _find(text) == ({"one", "two"}, {D256, D512})


def test_json_and_yaml_documents() -> None:
    document = {
        "environments": [
            {"name": "dev", "runner": f"reg.io/ade/bicep:{TAG}"},
            {"name": "prod", "runner": f"reg.io/ade/bicep@{D256}"},
            {"name": "other", "runner": "reg.io/ade/terraform:1"},
        ]
    }
    assert _find(json.dumps(document)) == ({TAG}, {D256})
    assert _find(json.dumps(document, indent=2)) == ({TAG}, {D256})
    yaml = f"""
name: Sandbox
runner: "reg.io/ade/bicep:{TAG}"
parameters:
  - id: image
    default: reg.io/ade/bicep@{D256}  # pinned
"""
    assert _find(yaml) == ({TAG}, {D256})


def test_find_all_unites() -> None:
    texts = ["reg.io/ade/bicep:a", f"reg.io/ade/bicep@{D256}", "nothing", "reg.io/ade/bicep:a"]
    assert references.find_all(texts, registry=REGISTRY, repository=REPOSITORY) == (
        {"a"},
        {D256},
    )
    assert references.find_all([], registry=REGISTRY, repository=REPOSITORY) == (set(), set())


def test_the_registry_given_in_any_case() -> None:
    assert references.find("reg.io/ade/bicep:a", registry="REG.io", repository=REPOSITORY) == (
        {"a"},
        set(),
    )


def test_a_registry_with_a_port() -> None:
    found = references.find(
        "localhost:5000/ade/bicep:a reg.io/ade/bicep:b",
        registry="localhost:5000",
        repository=REPOSITORY,
    )
    assert found == ({"a"}, set())


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("docker.io/library/alpine:3", True),
        ("index.docker.io/library/alpine:3", True),
        ("registry-1.docker.io/library/alpine:3", True),
        ("Docker.IO/alpine:3", True),
        ("alpine:3", False),
        ("library/alpine:3", False),
        ("docker.io/library/alpine-x:3", False),
        ("docker.io/other/alpine:3", False),
        ("mirror.io/library/alpine:3", False),
    ],
)
def test_docker_hub(text: str, found: bool) -> None:
    expected = ({"3"} if found else set(), set[str]())
    for registry, repository in (("docker.io", "library/alpine"), ("index.docker.io", "alpine")):
        assert references.find(text, registry=registry, repository=repository) == expected


def test_docker_hub_namespaces_need_their_host() -> None:
    text = "contoso/bicep:1 docker.io/contoso/bicep:2 index.docker.io/contoso/bicep:3"
    found = references.find(text, registry="docker.io", repository="contoso/bicep")
    assert found == ({"2", "3"}, set())


def test_a_missing_registry_or_repository_is_refused() -> None:
    with pytest.raises(ValueError, match="registry"):
        references.find("x", registry="", repository=REPOSITORY)
    with pytest.raises(ValueError, match="repository"):
        references.find("x", registry=REGISTRY, repository="")
