"""The inputs step on an inline source (no git, no registry for `FROM scratch`): what it
resolves, what it remembers, and the Dockerfile warnings told once."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from controller import errors
from controller.builds import identity
from controller.reconcile import inputs, memory
from tests.unit.reconcile import fakes

SCRIPTS = {"deploy.sh": "#!/bin/sh\necho deploy\n", "delete.sh": "#!/bin/sh\necho delete\n"}


def spec(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"inline": {"dockerfile": text, "scripts": SCRIPTS}},
        "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
        **extra,
    }


async def test_an_inline_source_resolves_to_its_content_hash_and_a_context(
    tmp_path: pathlib.Path,
) -> None:
    step = inputs.ResolveInputs(fakes.make_services(tmp_path), memory.ObjectMemory())
    ctx = fakes.context(spec("FROM scratch\nCOPY scripts /scripts\n"))
    outcome = await step(ctx)
    found = ctx.resolved()
    assert found.inputs.revision == identity.inline_revision(ctx.spec)
    assert found.key == identity.build_key(ctx.spec, found.inputs)
    assert ctx.updates["buildKey"] == found.key
    assert ctx.updates["baseImageDigest"] is None
    assert (found.context_dir / "Dockerfile").read_text().startswith("FROM scratch")
    assert (found.context_dir / "scripts" / "deploy.sh").stat().st_mode & 0o111
    assert outcome.reason == "Resolved"
    assert "base scratch" in outcome.message


async def test_a_base_image_is_resolved_once_per_interval(tmp_path: pathlib.Path) -> None:
    base = "contoso.azurecr.io/base:1"
    registry = fakes.FakeRegistry(digests={base: "sha256:" + "b" * 64})
    step = inputs.ResolveInputs(
        fakes.make_services(tmp_path, registry=registry), memory.ObjectMemory()
    )
    first = fakes.context(spec(f"FROM {base}\n"))
    await step(first)
    assert first.resolved().inputs.base_digest == "sha256:" + "b" * 64
    again = fakes.context(spec(f"FROM {base}\n"), status=first.updates)
    await step(again)
    assert registry.lookups == [(base, False)]  # the second pass trusted the first


async def test_a_missing_base_image_stalls_naming_the_line(tmp_path: pathlib.Path) -> None:
    step = inputs.ResolveInputs(fakes.make_services(tmp_path), memory.ObjectMemory())
    with pytest.raises(errors.StalledError) as raised:
        await step(fakes.context(spec("# base\nFROM contoso.azurecr.io/gone:1\n")))
    assert raised.value.reason == "BaseImageNotFound"
    assert "line 2" in raised.value.message


async def test_a_missing_dockerfile_stalls_naming_the_field(tmp_path: pathlib.Path) -> None:
    step = inputs.ResolveInputs(fakes.make_services(tmp_path), memory.ObjectMemory())
    with pytest.raises(errors.StalledError) as raised:
        await step(fakes.context(spec("FROM scratch\n", dockerfile="build/Dockerfile")))
    assert raised.value.reason == "DockerfileNotFound"
    assert raised.value.message.startswith("spec.dockerfile: 'build/Dockerfile'")


async def test_dockerfile_warnings_go_to_status_and_their_event_is_told_once(
    tmp_path: pathlib.Path,
) -> None:
    step = inputs.ResolveInputs(fakes.make_services(tmp_path), memory.ObjectMemory())
    text = 'FROM scratch\nCOPY scripts /scripts\nENTRYPOINT ["/bin/other"]\n'
    first = fakes.context(spec(text))
    await step(first)
    # an ENTRYPOINT on a base that is not ADE's is the image's own business
    assert [w["rule"] for w in first.updates["warnings"]] == [
        "ScriptsNotExecutable",
        "ScriptsLineEndings",
    ]
    assert [e.reason for e in first.events] == [inputs.WARNINGS_REASON]
    # the next pass reads a status the first one's write has not reached yet: no second Event
    again = fakes.context(spec(text))
    await step(again)
    assert again.events == []
    assert again.updates["warnings"] == first.updates["warnings"]


@pytest.mark.parametrize(
    ("build_args", "problem"),
    [
        ({}, "ARG IMAGE_VERSION has no value"),
        (
            {"IMAGE_VERSION": "1", "BASE_IMAGE": "contoso.azurecr.io/core:4.0.0"},
            "already has a tag",
        ),
    ],
)
async def test_a_from_that_is_no_image_reference_stalls_naming_the_line(
    tmp_path: pathlib.Path, build_args: dict[str, str], problem: str
) -> None:
    """Before, `core:` and `core:4.0.0:1` reached the registry client, whose error was retried
    as a generic failure in a loop; now the step stalls before any registry call."""
    registry = fakes.FakeRegistry(digests={})
    step = inputs.ResolveInputs(
        fakes.make_services(tmp_path, registry=registry), memory.ObjectMemory()
    )
    text = (
        "ARG BASE_IMAGE=contoso.azurecr.io/core\nARG IMAGE_VERSION\n"
        "FROM ${BASE_IMAGE}:${IMAGE_VERSION}\n"
    )
    with pytest.raises(errors.StalledError) as raised:
        await step(fakes.context(spec(text, buildArgs=build_args)))
    assert raised.value.reason == "DockerfileInvalid"
    assert raised.value.message.startswith("spec.dockerfile: line 3: FROM ")
    assert problem in raised.value.message
    assert registry.lookups == []
