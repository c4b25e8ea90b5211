"""Build identity (controller.builds.identity): the key, the inline revision, the tag, the
reason."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from controller.api import spec as model
from controller.builds import identity

REVISION = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "a" * 64
KEY = "f" * 64


def git_spec(**changes: Any) -> model.RunnerImageSpec:
    spec = model.RunnerImageSpec(
        source=model.Source(git=model.GitSource(url="https://github.com/org/runner.git")),
        image=model.ImageSpec(registry="contoso.azurecr.io", repository="ade/runner"),
        build_args={"B": "2", "A": "1"},
        platforms=("linux/amd64", "linux/arm64"),
    )
    return dataclasses.replace(spec, **changes)


def inline_spec(dockerfile: str = "FROM alpine\n", **scripts: str) -> model.RunnerImageSpec:
    return model.RunnerImageSpec(
        source=model.Source(inline=model.InlineSource(dockerfile=dockerfile, scripts=scripts)),
        image=model.ImageSpec(registry="contoso.azurecr.io", repository="ade/runner"),
    )


INPUTS = identity.Inputs(revision=REVISION, base_image="mcr.microsoft.com/core", base_digest=DIGEST)


def key(spec: model.RunnerImageSpec | None = None, inputs: identity.Inputs = INPUTS) -> str:
    return identity.build_key(spec or git_spec(), inputs)


# --- build_key ----------------------------------------------------------------------------------


def test_key_is_a_sha256_hex_digest_stable_for_equal_inputs() -> None:
    first = key()
    assert len(first) == 64
    assert int(first, 16) >= 0
    assert key(git_spec(), dataclasses.replace(INPUTS)) == first


def test_key_ignores_the_order_of_build_args_and_platforms() -> None:
    reordered = git_spec(build_args={"A": "1", "B": "2"}, platforms=("linux/arm64", "linux/amd64"))
    assert key(reordered) == key()


@pytest.mark.parametrize(
    "inputs",
    [
        dataclasses.replace(INPUTS, revision="1" * 40),
        dataclasses.replace(INPUTS, base_digest="sha256:" + "b" * 64),
        dataclasses.replace(INPUTS, base_digest=None),
        dataclasses.replace(INPUTS, base_image="mcr.microsoft.com/other"),
        dataclasses.replace(INPUTS, base_image=None),
    ],
)
def test_key_changes_with_the_resolved_inputs(inputs: identity.Inputs) -> None:
    assert key(inputs=inputs) != key()


@pytest.mark.parametrize(
    "changes",
    [
        {"build_args": {"A": "1", "B": "3"}},
        {"build_args": {"A": "1"}},
        {"build_args": {"A": "1", "B": "2", "C": ""}},
        {"platforms": ("linux/amd64",)},
        {"target": "final"},
        {"dockerfile": "docker/Dockerfile"},
        {"image": model.ImageSpec(registry="fabrikam.azurecr.io", repository="ade/runner")},
        {"image": model.ImageSpec(registry="contoso.azurecr.io", repository="ade/other")},
        {
            "source": model.Source(
                git=model.GitSource(url="https://github.com/org/runner.git", path="images")
            )
        },
    ],
    ids=",".join,
)
def test_key_changes_with_each_material_spec_field(changes: dict[str, Any]) -> None:
    assert key(git_spec(**changes)) != key()


@pytest.mark.parametrize(
    "changes",
    [
        {"image": model.ImageSpec("contoso.azurecr.io", "ade/runner", tag="{timestamp}")},
        {
            "image": model.ImageSpec(
                "contoso.azurecr.io", "ade/runner", push_secret_ref=model.SecretRef("push")
            )
        },
        {"build": model.BuildSpec(backend=model.BuildBackend.DOCKER, timeout="1h")},
        {
            "build": model.BuildSpec(
                resources=model.ResourceRequirements(
                    requests={"cpu": "2"}, limits={"memory": "8Gi"}
                )
            )
        },
        {"build": model.BuildSpec(node_selector={"kubernetes.io/arch": "arm64"})},
        {
            "build": model.BuildSpec(
                tolerations=(model.Toleration(operator=model.TolerationOperator.EXISTS),)
            )
        },
        {"build": model.BuildSpec(service_account_name="runner-builds")},
        {"suspend": True},
        {"history_limit": model.HistoryLimit(succeeded=1)},
    ],
    ids=[
        "tag",
        "pushSecretRef",
        "build",
        "build.resources",
        "build.nodeSelector",
        "build.tolerations",
        "build.serviceAccountName",
        "suspend",
        "historyLimit",
    ],
)
def test_key_ignores_fields_that_do_not_change_the_image(changes: dict[str, Any]) -> None:
    assert key(git_spec(**changes)) == key()


def test_key_material_names_every_material_field() -> None:
    material = INPUTS.key_material(git_spec(target="final"))
    assert material == {
        "v": identity.KEY_VERSION,
        "revision": REVISION,
        "baseImage": "mcr.microsoft.com/core",
        "baseDigest": DIGEST,
        "dockerfile": "Dockerfile",
        "path": ".",
        "buildArgs": {"A": "1", "B": "2"},
        "platforms": ["linux/amd64", "linux/arm64"],
        "target": "final",
        "image": "contoso.azurecr.io/ade/runner",
    }


@pytest.mark.parametrize(
    "attestations",
    [
        model.Attestations(provenance=model.ProvenanceMode.DISABLED),
        model.Attestations(provenance=model.ProvenanceMode.MAX),
        model.Attestations(sbom=True),
        model.Attestations(sbom=True, sbom_generator="registry.local/scanner:1"),
    ],
    ids=["no provenance", "max provenance", "sbom", "sbom generator"],
)
def test_key_changes_with_the_attestations_asked_for(attestations: model.Attestations) -> None:
    changed = key(git_spec(build=model.BuildSpec(attestations=attestations)))
    assert changed != key()
    assert (
        INPUTS.key_material(git_spec(build=model.BuildSpec(attestations=attestations)))[
            "attestations"
        ]["provenance"]
        == attestations.provenance.value
    )


def test_default_attestations_keep_the_keys_of_earlier_releases() -> None:
    assert "attestations" not in INPUTS.key_material(git_spec())
    explicit = model.BuildSpec(attestations=model.Attestations(provenance=model.ProvenanceMode.MIN))
    assert key(git_spec(build=explicit)) == key()


# --- inline_revision ----------------------------------------------------------------------------


def test_inline_revision_is_a_stable_content_hash() -> None:
    revision = identity.inline_revision(inline_spec("FROM alpine\n", **{"a.sh": "echo a"}))
    assert revision.startswith("inline-")
    assert len(revision) == len("inline-") + 32
    assert identity.inline_revision(inline_spec("FROM alpine\n", **{"a.sh": "echo a"})) == revision


@pytest.mark.parametrize(
    "other",
    [
        inline_spec("FROM alpine:3\n", **{"a.sh": "echo a"}),
        inline_spec("FROM alpine\n", **{"a.sh": "echo b"}),
        inline_spec("FROM alpine\n", **{"b.sh": "echo a"}),
        inline_spec("FROM alpine\n", **{"a.sh": "echo a", "b.sh": ""}),
        inline_spec("FROM alpine\n"),
    ],
)
def test_inline_revision_changes_with_any_content(other: model.RunnerImageSpec) -> None:
    this = inline_spec("FROM alpine\n", **{"a.sh": "echo a"})
    assert identity.inline_revision(other) != identity.inline_revision(this)


def test_inline_revision_ignores_script_order() -> None:
    one = inline_spec("FROM alpine\n", **{"a.sh": "1", "b.sh": "2"})
    two = inline_spec("FROM alpine\n", **{"b.sh": "2", "a.sh": "1"})
    assert identity.inline_revision(one) == identity.inline_revision(two)


def test_short_revision() -> None:
    assert identity.short_revision(REVISION) == REVISION[:12]
    assert identity.short_revision("inline-" + "c" * 32) == "c" * 12


# --- render_tag ---------------------------------------------------------------------------------

AT = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("template", "revision", "expected"),
    [
        ("{revision}", REVISION, REVISION),
        ("{shortRevision}", REVISION, REVISION[:12]),
        ("{revision}", "inline-" + "c" * 32, "c" * 32),
        ("{shortRevision}", "inline-" + "c" * 32, "c" * 12),
        ("{buildKey}", REVISION, KEY),
        ("{shortBuildKey}", REVISION, KEY[:12]),
        ("{timestamp}", REVISION, "20240506070809"),
        ("v1-{shortRevision}-{timestamp}", REVISION, f"v1-{REVISION[:12]}-20240506070809"),
        (model.DEFAULT_TAG_TEMPLATE, REVISION, f"{REVISION[:12]}-{KEY[:12]}"),
        ("fixed", REVISION, "fixed"),
    ],
)
def test_render_tag_placeholders(template: str, revision: str, expected: str) -> None:
    assert identity.render_tag(template, revision=revision, key=KEY, at=AT) == expected


def test_render_tag_timestamp_is_utc() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    at = datetime.datetime(2024, 5, 6, 1, 0, 0, tzinfo=plus_two)
    assert identity.render_tag("{timestamp}", revision=REVISION, key=KEY, at=at) == "20240505230000"


def test_render_tag_is_cut_at_128_characters() -> None:
    tag = identity.render_tag("{buildKey}{buildKey}{buildKey}", revision=REVISION, key=KEY, at=AT)
    assert tag == (KEY * 3)[:128]
    assert len(tag) == 128


# --- reasons ------------------------------------------------------------------------------------

CURRENT = INPUTS.key_material(git_spec())


def changed(**fields: Any) -> dict[str, Any]:
    return {**CURRENT, **fields}


@pytest.mark.parametrize("previous", [None, {}])
def test_first_build_is_initial(previous: dict[str, Any] | None) -> None:
    assert identity.reasons(previous, CURRENT) == ("Initial", [])


@pytest.mark.parametrize(
    ("previous", "reason"),
    [
        (changed(revision="old"), "SourceChanged"),
        (changed(revision="old", baseDigest="sha256:old"), "SourceChanged"),
        (changed(revision="old", buildArgs={}), "SourceChanged"),
        (changed(baseDigest="sha256:old"), "BaseImageChanged"),
        (changed(baseImage="old"), "BaseImageChanged"),
        (changed(baseDigest="sha256:old", target="x"), "BaseImageChanged"),
        (changed(buildArgs={}), "SpecChanged"),
        (changed(platforms=["linux/amd64"]), "SpecChanged"),
        (changed(image="old/image"), "SpecChanged"),
        (changed(v=0), "SpecChanged"),
    ],
)
def test_reason_precedence(previous: dict[str, Any], reason: str) -> None:
    assert identity.reasons(previous, CURRENT)[0] == reason


def test_changes_name_each_changed_field_sorted() -> None:
    previous = changed(revision="old", target="t", baseDigest=None)
    reason, changes = identity.reasons(previous, CURRENT)
    assert reason == "SourceChanged"
    assert changes == [
        f"baseDigest: None -> {DIGEST!r}",
        f"revision: 'old' -> {REVISION!r}",
        "target: 't' -> None",
    ]


def test_no_change_is_spec_changed_with_no_changes() -> None:
    assert identity.reasons(dict(CURRENT), CURRENT) == ("SpecChanged", [])


def test_field_missing_from_the_previous_material_is_a_change() -> None:
    """Material written by an older operator lacks newer fields: they count as changed."""
    previous = {name: value for name, value in CURRENT.items() if name != "path"}
    assert identity.reasons(previous, CURRENT) == ("SpecChanged", ["path: None -> '.'"])
