"""The final stage's base image (controller.builds.dockerfile.final_base_image)."""

from __future__ import annotations

import dockerfile as buildkit_parser
import pytest

from controller import errors
from controller.builds.dockerfile import BaseImage, DockerfileError, final_base_image

ADE = (
    "ARG BASE_IMAGE=mcr.microsoft.com/deployment-environments/runners/core\n"
    "ARG IMAGE_VERSION=latest\n"
    "FROM ${BASE_IMAGE}:${IMAGE_VERSION}\n"
    "COPY scripts/ /scripts/\n"
    "RUN find /scripts/ -type f -iname '*.sh' -exec dos2unix '{}' '+'\n"
)


def base(text: str, target: str | None = None, **build_args: str) -> str | None:
    return final_base_image(text, build_args=build_args, target=target).reference


# --- ADE's own pattern and ARG expansion -------------------------------------------------------


def test_ade_pattern_uses_the_arg_defaults() -> None:
    assert final_base_image(ADE, build_args={}) == BaseImage(
        "mcr.microsoft.com/deployment-environments/runners/core:latest", "0", 3
    )


@pytest.mark.parametrize(
    ("build_args", "expected"),
    [
        (
            {"IMAGE_VERSION": "2.7.0"},
            "mcr.microsoft.com/deployment-environments/runners/core:2.7.0",
        ),
        ({"BASE_IMAGE": "contoso.azurecr.io/core"}, "contoso.azurecr.io/core:latest"),
        (
            {"BASE_IMAGE": "contoso.azurecr.io/core", "IMAGE_VERSION": "1"},
            "contoso.azurecr.io/core:1",
        ),
    ],
)
def test_ade_pattern_with_build_args_overriding(build_args: dict[str, str], expected: str) -> None:
    assert base(ADE, **build_args) == expected


def test_build_args_not_declared_as_global_args_are_ignored() -> None:
    assert base("FROM alpine:${VERSION:-3.20}\n", VERSION="3.19") == "alpine:3.20"


def test_arg_without_default_takes_the_build_arg() -> None:
    text = "ARG REGISTRY\nFROM ${REGISTRY}/runner\n"
    assert base(text, REGISTRY="contoso.azurecr.io") == "contoso.azurecr.io/runner"


def test_arg_default_refers_to_an_earlier_arg_and_follows_its_override() -> None:
    text = "ARG VERSION=1\nARG IMAGE=runner:${VERSION}\nFROM ${IMAGE}\n"
    assert base(text) == "runner:1"
    assert base(text, VERSION="2") == "runner:2"
    assert base(text, IMAGE="other:9", VERSION="2") == "other:9"


def test_several_args_on_one_line_with_a_continuation() -> None:
    text = "ARG NAME=runner \\\n    TAG=7\nFROM $NAME:$TAG\n"
    assert base(text) == "runner:7"


@pytest.mark.parametrize(
    ("image", "declared", "build_args", "expected"),
    [
        ("${V:-fallback}", "ARG V", {}, "fallback"),
        ("${V:-fallback}", "ARG V=", {}, "fallback"),
        ("${V:-fallback}", "ARG V=set", {}, "set"),
        ("${V:-fallback}", "ARG V", {"V": "given"}, "given"),
        ("${V-fallback}", "ARG V=", {}, ""),
        ("${V-fallback}", "ARG V", {}, "fallback"),
        ("${V:+alt}", "ARG V", {}, ""),
        ("${V:+alt}", "ARG V=", {}, ""),
        ("${V:+alt}", "ARG V=set", {}, "alt"),
        ("${V+alt}", "ARG V=", {}, "alt"),
        ("$V", "ARG V=plain", {}, "plain"),
        ("${V}", "ARG V=braced", {}, "braced"),
        ("$V", "ARG V", {}, ""),
        ("$UNDECLARED", "ARG V=x", {}, ""),
    ],
)
def test_variable_forms(
    image: str, declared: str, build_args: dict[str, str], expected: str
) -> None:
    text = f"{declared}\nFROM registry.example/r{image}:1\n"
    assert base(text, **build_args) == f"registry.example/r{expected}:1"


def test_default_word_is_expanded_too() -> None:
    assert base("ARG TAG=9\nFROM runner:${MISSING:-v$TAG}\n") == "runner:v9"
    assert base("ARG TAG=9\nFROM runner:${TAG:+v$TAG}\n") == "runner:v9"


def test_arg_after_the_first_from_is_not_used_for_from() -> None:
    text = "\n".join(
        [
            "ARG TAG=1",
            "FROM runner:${TAG} AS one",
            "ARG TAG=2",
            "ARG LATE=late",
            "FROM other:${TAG}${LATE}",
        ]
    )
    assert base(text) == "other:1"
    assert base(text, LATE="x") == "other:1"


def test_build_arg_for_an_arg_declared_only_inside_a_stage_is_not_used() -> None:
    text = "FROM alpine AS one\nARG TAG=2\nFROM runner:${TAG}\n"
    with pytest.raises(DockerfileError) as raised:
        base(text, TAG="9")
    assert raised.value.message == (
        "spec.dockerfile: line 3: FROM runner:${TAG} expands to 'runner:', which is not an image"
        " reference: TAG is not declared by an ARG before the first FROM"
    )


# --- what the expansion gives must be an image reference (found by tests/unit/properties) -------


def test_an_arg_without_default_or_build_arg_is_refused_naming_the_line_and_the_arg() -> None:
    text = (
        "ARG IMAGE_VERSION\n"
        "FROM mcr.microsoft.com/deployment-environments/runners/core:${IMAGE_VERSION}\n"
    )
    with pytest.raises(DockerfileError) as raised:
        base(text)
    assert raised.value.reason == "DockerfileInvalid"
    assert raised.value.message == (
        "spec.dockerfile: line 2: FROM mcr.microsoft.com/deployment-environments/runners/core:"
        "${IMAGE_VERSION} expands to 'mcr.microsoft.com/deployment-environments/runners/core:',"
        " which is not an image reference: ARG IMAGE_VERSION has no value (give it a default or"
        " set spec.buildArgs.IMAGE_VERSION)"
    )
    assert base(text, IMAGE_VERSION="4.0.0") == (
        "mcr.microsoft.com/deployment-environments/runners/core:4.0.0"
    )


def test_an_empty_build_arg_is_refused_naming_it() -> None:
    with pytest.raises(DockerfileError, match=r"line 3: .*spec\.buildArgs\.IMAGE_VERSION is empty"):
        base(ADE, IMAGE_VERSION="")


def test_a_base_image_that_already_has_a_tag_is_refused_naming_the_line() -> None:
    with pytest.raises(DockerfileError) as raised:
        base(ADE, BASE_IMAGE="mcr.microsoft.com/deployment-environments/runners/core:4.0.0-preview")
    assert raised.value.message == (
        "spec.dockerfile: line 3: FROM ${BASE_IMAGE}:${IMAGE_VERSION} with"
        " spec.buildArgs.BASE_IMAGE expands to"
        " 'mcr.microsoft.com/deployment-environments/runners/core:4.0.0-preview:latest', which is"
        " not an image reference: the image already has a tag before the one the Dockerfile adds"
    )


def test_only_the_final_stage_chain_must_be_a_reference() -> None:
    """BuildKit skips a stage the target does not need; so does the check."""
    text = "ARG V\nFROM unused:${V} AS skipped\nFROM alpine:3.20\n"
    assert base(text) == "alpine:3.20"


# --- stages -------------------------------------------------------------------------------------


def test_last_from_is_the_final_stage() -> None:
    text = "FROM golang:1.22 AS build\nRUN make\nFROM alpine:3.20\nCOPY --from=build /x /x\n"
    assert final_base_image(text, build_args={}) == BaseImage("alpine:3.20", "1", 3)


def test_final_stage_built_from_a_chain_of_stages_reaches_the_external_image() -> None:
    text = (
        "FROM mcr.microsoft.com/core:latest AS base\n"
        "RUN echo base\n"
        "FROM base AS tools\n"
        "RUN echo tools\n"
        "FROM tools AS final\n"
        "RUN echo final\n"
    )
    result = final_base_image(text, build_args={})
    assert result == BaseImage("mcr.microsoft.com/core:latest", "final", 1)


@pytest.mark.parametrize(("keyword", "name"), [("AS", "base"), ("as", "Base"), ("As", "BASE")])
def test_as_and_stage_names_are_case_insensitive(keyword: str, name: str) -> None:
    """BuildKit stores stage names lowercased; a FROM refers to them in lowercase (image names
    are lowercase)."""
    text = f"FROM ubuntu:24.04 {keyword} {name}\nRUN true\nFROM base\n"
    assert final_base_image(text, build_args={}) == BaseImage("ubuntu:24.04", "1", 1)


def test_stage_name_is_reported_lowercase() -> None:
    text = "FROM alpine AS Final\n"
    assert final_base_image(text, build_args={}).stage == "final"


def test_a_stage_name_can_come_from_an_arg() -> None:
    text = "ARG FLAVOUR=slim\nFROM debian AS slim\nFROM python AS full\nFROM ${FLAVOUR}\n"
    assert base(text) == "debian"
    assert base(text, FLAVOUR="full") == "python"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("build", BaseImage("golang:1.22", "build", 1)),
        ("BUILD", BaseImage("golang:1.22", "build", 1)),
        ("test", BaseImage("golang:1.22", "test", 1)),
        ("release", BaseImage("alpine:3.20", "release", 5)),
    ],
)
def test_target_picks_a_stage(target: str, expected: BaseImage) -> None:
    text = (
        "FROM golang:1.22 AS build\n"
        "RUN make\n"
        "FROM build AS test\n"
        "RUN make test\n"
        "FROM alpine:3.20 AS release\n"
        "FROM scratch AS last\n"
    )
    assert final_base_image(text, build_args={}, target=target) == expected


def test_unknown_target_names_spec_target() -> None:
    with pytest.raises(DockerfileError) as raised:
        final_base_image("FROM alpine AS one\n", build_args={}, target="two")
    assert raised.value.message.startswith("spec.target:")
    assert "'two'" in raised.value.message
    assert raised.value.reason == "DockerfileInvalid"
    assert isinstance(raised.value, errors.StalledError)


@pytest.mark.parametrize(
    "line",
    [
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS build",
        "FROM --platform=${BUILDPLATFORM} golang:1.22 AS build",
        "FROM --platform=linux/amd64 golang:1.22 AS build",
    ],
)
def test_platform_flag_is_not_taken_for_the_image(line: str) -> None:
    text = f"{line}\nRUN go build\nFROM build\n"
    assert final_base_image(text, build_args={}) == BaseImage("golang:1.22", "1", 1)


def test_parser_returns_from_flags_apart_from_the_values() -> None:
    """The property `final_base_image` relies on: `value[0]` is the image, not a flag."""
    (command,) = buildkit_parser.parse_string("FROM --platform=$BUILDPLATFORM golang AS b\n")
    assert command.flags == ("--platform=$BUILDPLATFORM",)
    assert command.value == ("golang", "AS", "b")


@pytest.mark.parametrize(
    "text", ["FROM scratch\n", "FROM scratch AS x\n", "FROM scratch AS s\nFROM s\n"]
)
def test_scratch_has_no_reference(text: str) -> None:
    assert base(text) is None


@pytest.mark.parametrize("text", ["ARG A=1\n", "RUN echo hi\n", "# FROM x\nARG B\n"])
def test_no_from_is_an_error(text: str) -> None:
    with pytest.raises(DockerfileError, match="the Dockerfile has no FROM instruction"):
        final_base_image(text, build_args={})


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_dockerfile_does_not_parse(text: str) -> None:
    with pytest.raises(DockerfileError, match="the Dockerfile does not parse"):
        final_base_image(text, build_args={})


def test_from_without_an_image_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="line 2: FROM names no image"):
        final_base_image("ARG A=1\nFROM\n", build_args={})


def test_from_that_expands_to_nothing_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="line 2: FROM expands to an empty image name"):
        final_base_image("ARG BASE\nFROM ${BASE}\n", build_args={})


def test_comments_continuations_and_heredocs_do_not_confuse_it() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "# FROM commented:out\n"
        "ARG BASE=mcr.microsoft.com/core\n"
        "FROM \\\n"
        "    ${BASE}:1 \\\n"
        "    AS base\n"
        "RUN <<EOF\n"
        "FROM inside:heredoc\n"
        "echo done\n"
        "EOF\n"
        "RUN echo one \\\n"
        "  FROM not:an-instruction\n"
        "COPY <<EOF /etc/x\n"
        "FROM also:inside\n"
        "EOF\n"
        "FROM base\n"
        "  # FROM indented:comment\n"
    )
    assert final_base_image(text, build_args={}) == BaseImage("mcr.microsoft.com/core:1", "1", 4)


@pytest.mark.timeout(10)
def test_stages_naming_each_other_end() -> None:
    """Whatever the verdict on `FROM b AS a / FROM a AS b`, it must come (no endless loop)."""
    try:
        result = final_base_image("FROM b AS a\nFROM a AS b\n", build_args={})
    except DockerfileError:
        return
    assert result.reference == "b"


# --- bugs ---------------------------------------------------------------------------------------


def test_stage_named_like_its_own_image() -> None:
    assert final_base_image("FROM ubuntu AS ubuntu\nRUN true\n", build_args={}) == BaseImage(
        "ubuntu", "ubuntu", 1
    )


def test_only_earlier_stages_are_followed() -> None:
    assert final_base_image("FROM b AS a\nFROM a AS b\n", build_args={}) == BaseImage("b", "b", 1)


def test_forward_reference_is_an_external_image() -> None:
    text = "FROM later AS first\nFROM alpine AS later\nFROM first\n"
    assert final_base_image(text, build_args={}) == BaseImage("later", "2", 1)


@pytest.mark.parametrize("quoted", ['"mcr.microsoft.com/core"', "'mcr.microsoft.com/core'"])
def test_quoted_arg_default(quoted: str) -> None:
    assert base(f"ARG BASE={quoted}\nFROM $BASE:1\n") == "mcr.microsoft.com/core:1"


def test_nested_default() -> None:
    assert base("ARG B=alpine\nFROM ${A:-${B}}:3\n") == "alpine:3"


def test_target_by_index_is_unknown() -> None:
    with pytest.raises(DockerfileError, match=r"spec\.target"):
        final_base_image("FROM alpine\nFROM debian\n", build_args={}, target="0")


def test_a_line_with_no_instruction_is_skipped() -> None:
    """Found by tests/unit/properties/test_dockerfile.py (long profile): a lone backslash gave
    a command without an instruction, and AttributeError."""
    assert base("FROM alpine:3.20\nRUN true\n\\") == "alpine:3.20"
    with pytest.raises(DockerfileError, match="no FROM"):
        base("\\")
