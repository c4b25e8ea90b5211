"""Image reference parsing, normalization and formatting in controller.registry.reference."""

from __future__ import annotations

import pytest

from controller.registry import reference

D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "b" * 128


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "canonical"),
    [
        ("alpine", "docker.io", "library/alpine", None, None, "docker.io/library/alpine"),
        ("alpine:3.19", "docker.io", "library/alpine", "3.19", None, None),
        ("library/alpine", "docker.io", "library/alpine", None, None, None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, None),
        ("docker.io/alpine", "docker.io", "library/alpine", None, None, None),
        ("index.docker.io/foo/bar", "docker.io", "foo/bar", None, None, "docker.io/foo/bar"),
        ("registry-1.docker.io/foo/bar", "docker.io", "foo/bar", None, None, None),
        (
            "mcr.microsoft.com/deployment-environments/runners/core:latest",
            "mcr.microsoft.com",
            "deployment-environments/runners/core",
            "latest",
            None,
            None,
        ),
        ("contoso.azurecr.io/ade/bicep", "contoso.azurecr.io", "ade/bicep", None, None, None),
        ("Contoso.AzureCR.io/ade/bicep", "Contoso.AzureCR.io", "ade/bicep", None, None, None),
        ("localhost/x", "localhost", "x", None, None, None),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None, None),
        ("127.0.0.1:5000/ade/x:v1", "127.0.0.1:5000", "ade/x", "v1", None, None),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None, None),
        ("Upper/x", "Upper", "x", None, None, "Upper/x"),
        (f"alpine@{D256}", "docker.io", "library/alpine", None, D256, None),
        (f"h.io/a:t@{D256}", "h.io", "a", "t", D256, None),
        (f"h.io:443/a@{D512}", "h.io:443", "a", None, D512, None),
        ("h.io/a.b_c__d--e/f-g", "h.io", "a.b_c__d--e/f-g", None, None, None),
        ("h.io/a:" + "T" * 128, "h.io", "a", "T" * 128, None, None),
        ("foo:5000", "docker.io", "library/foo", "5000", None, "docker.io/library/foo:5000"),
    ],
)
def test_parse(
    text: str,
    registry: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    canonical: str | None,
) -> None:
    ref = reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    if canonical is not None:
        assert str(ref) == canonical
    assert reference.parse(str(ref)) == ref, "the canonical form parses to the same reference"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " alpine",
        "Alpine",
        "h.io/UPPER",
        "h.io/a//b",
        "h.io/-a",
        "h.io/a-",
        "h.io/a:",
        "h.io/a:-tag",
        "h.io/a:" + "t" * 129,
        "h.io/a@sha256:abc",
        "h.io/a@sha256:" + "A" * 64,
        "h.io/a@md5:" + "a" * 32,
        "h.io/a@" + "a" * 64,
        "h.io:99999/a",
        "h_o.io/a",
        "h.io/" + "a" * 260,
        "h.io/a b",
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(reference.InvalidReference) as caught:
        reference.parse(text)
    # the message quotes the part of the text it refuses
    quoted = str(caught.value).split("'")[1]
    assert quoted in text
    assert str(caught.value) != repr(quoted)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("core:", "'' is not a valid tag"), ("@", "'' is not a digest"), ("a@sha1:ab", "sha1")],
)
def test_a_bad_tag_or_digest_is_refused_quoting_the_whole_text(text: str, problem: str) -> None:
    """Found by tests/unit/properties/test_reference.py: a bad tag or digest was refused quoting
    only that part (`'' is not a valid tag`), leaving the reader to guess which reference."""
    with pytest.raises(reference.InvalidReference) as caught:
        reference.parse(text)
    assert str(caught.value).startswith(f"{text!r} is not an image reference: ")
    assert problem in str(caught.value)


def test_endpoint_and_identifier() -> None:
    hub = reference.parse("alpine")
    assert hub.endpoint == "registry-1.docker.io"
    assert hub.identifier == "latest"
    assert reference.parse("h.io:5000/a:v1").endpoint == "h.io:5000"
    pinned = reference.parse(f"h.io/a:v1@{D256}")
    assert pinned.identifier == D256, "the digest wins over the tag"


def test_with_digest_with_tag_and_repository_only() -> None:
    ref = reference.parse("h.io/a:v1")
    assert str(ref.with_digest(D256)) == f"h.io/a:v1@{D256}"
    assert str(ref.with_digest(D256).with_tag("v2")) == "h.io/a:v2"
    assert str(ref.with_digest(D256).repository_only()) == "h.io/a"
    with pytest.raises(reference.InvalidReference):
        ref.with_digest("sha256:short")


def test_reference_normalizes_when_built_directly() -> None:
    assert reference.Reference("INDEX.docker.io", "library/x").registry == "docker.io"
    with pytest.raises(reference.InvalidReference):
        reference.Reference("h.io", "Bad")


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("docker.io/library/alpine:3", "alpine:3"),
        ("docker.io/foo/bar", "foo/bar"),
        ("docker.io/library/a/b", "library/a/b"),
        ("h.io/library/alpine", "h.io/library/alpine"),
    ],
)
def test_format_familiar(text: str, familiar: str) -> None:
    assert reference.format_familiar(reference.parse(text)) == familiar


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (D256, True),
        (D512, True),
        ("sha256:" + "a" * 63, False),
        ("sha512:" + "a" * 64, False),
        ("sha256:" + "g" * 64, False),
        ("SHA256:" + "a" * 64, False),
        ("sha384:" + "a" * 96, False),
        ("", False),
    ],
)
def test_digests(text: str, ok: bool) -> None:
    assert reference.is_digest(text) is ok
    if ok:
        assert reference.validate_digest(text) == text
    else:
        with pytest.raises(reference.InvalidReference):
            reference.validate_digest(text)


def test_the_familiar_form_keeps_docker_io_before_a_host_like_component() -> None:
    """Found by tests/unit/properties/test_reference.py (long profile): `docker.io/0.0/ade`
    became `0.0/ade`, which reads `0.0` as the registry."""
    ref = reference.parse("docker.io/contoso.io/ade")
    assert reference.format_familiar(ref) == "docker.io/contoso.io/ade"
    assert reference.parse(reference.format_familiar(ref)) == ref
    assert reference.format_familiar(reference.parse("docker.io/team/ade")) == "team/ade"
