"""`buildctl build` arguments (controller.builds.buildctl.arguments)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controller.builds import buildctl
from controller.registry import reference

IMAGE = "contoso.azurecr.io/ade/runner:abc-123"
CACHE = "contoso.azurecr.io/ade/runner/buildcache:latest"


def request(**changes: Any) -> buildctl.BuildRequest:
    base = buildctl.BuildRequest(
        context=buildctl.LocalContext("/workspace/context"),
        dockerfile="Dockerfile",
        image=IMAGE,
        build_args={},
        platforms=("linux/amd64",),
        target=None,
        metadata_file="/tmp/metadata.json",
    )
    return dataclasses.replace(base, **changes)


def test_typical_request_exact_argv() -> None:
    args = buildctl.arguments(
        request(
            dockerfile="docker/Dockerfile.runner",
            build_args={"IMAGE_VERSION": "2.7", "BASE_IMAGE": "mcr.microsoft.com/core"},
            labels={"org.opencontainers.image.revision": "abc", "a.b": "c"},
            platforms=("linux/amd64", "linux/arm64"),
            target="final",
            cache_ref=CACHE,
        )
    )
    assert args == [
        "--frontend", "dockerfile.v0",
        "--local", "context=/workspace/context",
        "--local", "dockerfile=/workspace/context/docker",
        "--opt", "filename=Dockerfile.runner",
        "--opt", "build-arg:BASE_IMAGE=mcr.microsoft.com/core",
        "--opt", "build-arg:IMAGE_VERSION=2.7",
        "--opt", "label:a.b=c",
        "--opt", "label:org.opencontainers.image.revision=abc",
        "--opt", "platform=linux/amd64,linux/arm64",
        "--opt", "target=final",
        "--output", f"type=image,name={IMAGE},push=true",
        "--export-cache", f"type=registry,ref={CACHE},mode=max,ignore-error=true",
        "--import-cache", f"type=registry,ref={CACHE}",
        "--metadata-file", "/tmp/metadata.json",
    ]  # fmt: skip


def test_minimal_request_exact_argv() -> None:
    assert buildctl.arguments(request()) == [
        "--frontend", "dockerfile.v0",
        "--local", "context=/workspace/context",
        "--local", "dockerfile=/workspace/context",
        "--opt", "filename=Dockerfile",
        "--opt", "platform=linux/amd64",
        "--output", f"type=image,name={IMAGE},push=true",
        "--metadata-file", "/tmp/metadata.json",
    ]  # fmt: skip


def options(args: list[str], flag: str) -> list[str]:
    return [args[index + 1] for index, arg in enumerate(args) if arg == flag]


@pytest.mark.parametrize(
    ("dockerfile", "folder", "filename"),
    [
        ("Dockerfile", "/ctx", "Dockerfile"),
        ("build/Dockerfile", "/ctx/build", "Dockerfile"),
        ("a/b/runner.Dockerfile", "/ctx/a/b", "runner.Dockerfile"),
    ],
)
def test_dockerfile_folder_and_name(dockerfile: str, folder: str, filename: str) -> None:
    args = buildctl.arguments(request(context=buildctl.LocalContext("/ctx"), dockerfile=dockerfile))
    assert options(args, "--local") == ["context=/ctx", f"dockerfile={folder}"]
    assert f"filename={filename}" in options(args, "--opt")


def test_build_args_are_sorted_and_values_kept_verbatim() -> None:
    args = buildctl.arguments(
        request(build_args={"Z": "last", "A": "a=b,c", "M": "with space 'quote'", "E": ""})
    )
    assert [opt for opt in options(args, "--opt") if opt.startswith("build-arg:")] == [
        "build-arg:A=a=b,c",
        "build-arg:E=",
        "build-arg:M=with space 'quote'",
        "build-arg:Z=last",
    ]


def test_no_platforms_no_platform_option() -> None:
    args = buildctl.arguments(request(platforms=()))
    assert not [opt for opt in options(args, "--opt") if opt.startswith("platform=")]


@pytest.mark.parametrize("target", [None, ""])
def test_no_target_no_target_option(target: str | None) -> None:
    args = buildctl.arguments(request(target=target))
    assert not [opt for opt in options(args, "--opt") if opt.startswith("target=")]


@pytest.mark.parametrize("cache_ref", [None, ""])
def test_cache_only_with_a_cache_ref(cache_ref: str | None) -> None:
    args = buildctl.arguments(request(cache_ref=cache_ref))
    assert "--export-cache" not in args
    assert "--import-cache" not in args


def test_the_cache_has_a_repository_of_its_own_next_to_the_image() -> None:
    # Not a tag in the image's repository: BuildKit pushes the image and exports the cache in
    # parallel, and two pushes of the same blobs into one repository race.
    ref = buildctl.cache_ref("contoso.azurecr.io", "ade/runner")
    assert ref == CACHE
    cache, image = reference.parse(ref), reference.parse(IMAGE)
    assert cache.registry == image.registry
    assert cache.repository == f"{image.repository}/buildcache" != image.repository


def test_the_cache_is_exported_max_and_never_fails_the_build() -> None:
    args = buildctl.arguments(request(cache_ref=CACHE))
    (export,) = options(args, "--export-cache")
    assert export.split(",") == ["type=registry", f"ref={CACHE}", "mode=max", "ignore-error=true"]
    assert options(args, "--import-cache") == [f"type=registry,ref={CACHE}"]


@pytest.mark.parametrize(
    "changes",
    [{}, {"cache_ref": "r/c:cache"}, {"target": "t", "labels": {"a": "b"}, "platforms": ()}],
)
def test_metadata_file_is_last(changes: dict[str, Any]) -> None:
    args = buildctl.arguments(request(metadata_file="/m.json", **changes))
    assert args[-2:] == ["--metadata-file", "/m.json"]
    assert args.count("--metadata-file") == 1


def test_one_output_that_pushes() -> None:
    args = buildctl.arguments(request())
    assert options(args, "--output") == [f"type=image,name={IMAGE},push=true"]


def test_reproducible_the_source_time_and_rewritten_timestamps() -> None:
    args = buildctl.arguments(request(source_date_epoch=1733400000, build_args={"A": "1"}))
    assert options(args, "--opt")[1:3] == [
        "build-arg:A=1",
        "build-arg:SOURCE_DATE_EPOCH=1733400000",
    ]
    assert options(args, "--output") == [
        f"type=image,name={IMAGE},push=true,rewrite-timestamp=true"
    ]
    inline = buildctl.arguments(request(source_date_epoch=0))  # an inline source: 1970
    assert "build-arg:SOURCE_DATE_EPOCH=0" in options(inline, "--opt")


def test_reproducible_a_source_date_epoch_of_the_spec_wins() -> None:
    args = buildctl.arguments(
        request(source_date_epoch=5, build_args={"SOURCE_DATE_EPOCH": "1700000000"})
    )
    assert options(args, "--opt").count("build-arg:SOURCE_DATE_EPOCH=1700000000") == 1
    assert "build-arg:SOURCE_DATE_EPOCH=5" not in options(args, "--opt")


def test_no_attestation_unless_asked() -> None:
    assert not [o for o in options(buildctl.arguments(request()), "--opt") if "attest" in o]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_provenance_in_its_mode(mode: str) -> None:
    args = buildctl.arguments(request(provenance=mode))
    assert f"attest:provenance=mode={mode}" in options(args, "--opt")


def test_sbom_with_buildkits_default_scanner_or_a_named_one() -> None:
    default = buildctl.arguments(request(sbom=True))
    assert "attest:sbom=" in options(default, "--opt")
    named = buildctl.arguments(request(sbom=True, sbom_generator="127.0.0.1:5000/scanner:1"))
    assert "attest:sbom=generator=127.0.0.1:5000/scanner:1" in options(named, "--opt")
    ignored = buildctl.arguments(request(sbom=False, sbom_generator="x/scanner"))
    assert not [o for o in options(ignored, "--opt") if o.startswith("attest:sbom")]
