"""Findings from decided scripts and configs (controller.conformance.rules)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.conformance import filesystem as fs
from controller.conformance import rules
from controller.conformance.rules import Rule

DEPLOY, DELETE = fs.SCRIPTS


def good(path: str, content: bytes = b"#!/bin/sh\necho ok\n", mode: int = 0o755) -> fs.Decision:
    return fs.Decision(path, fs.State.FILE, 2, mode, content)


def config(entrypoint: Any = None, *, key: bool = True) -> dict[str, Any]:
    settings: dict[str, Any] = {"Env": ["PATH=/usr/bin"]}
    if key:
        settings["Entrypoint"] = entrypoint
    return {"architecture": "amd64", "os": "linux", "config": settings}


CORE = config(["/ade/entrypoint.sh"])


def messages(findings: list[rules.Finding]) -> list[tuple[Rule, str | None, str]]:
    return [(f.rule, f.path, f.message) for f in findings]


def test_a_good_runner_has_no_findings() -> None:
    found = rules.evaluate([good(DEPLOY), good(DELETE)], image_config=CORE, base_config=CORE)
    assert found == []
    assert rules.summary(found) is None


def test_not_executable_and_crlf_with_precise_messages() -> None:
    found = rules.evaluate(
        [good(DEPLOY, b"#!/bin/sh\r\necho a\r\n"), good(DELETE, mode=0o644)],
        image_config=CORE,
        base_config=CORE,
    )
    assert messages(found) == [
        (Rule.SCRIPT_CRLF, DEPLOY, "/scripts/deploy.sh has CRLF line endings (line 1)"),
        (
            Rule.SCRIPT_NOT_EXECUTABLE,
            DELETE,
            "/scripts/delete.sh is not executable (mode 0644)",
        ),
    ]
    assert rules.summary(found) == (
        "ImageNotConformant: /scripts/deploy.sh has CRLF line endings (line 1);"
        " /scripts/delete.sh is not executable (mode 0644)"
    )


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"", None),
        (b"#!/bin/sh\necho a\n", None),
        (b"a\rb\n", None),
        (b"#!/bin/sh\necho a\nexit 0\r\n", 3),
        (b"\r\n", 1),
    ],
)
def test_the_first_crlf_line_is_named(content: bytes, line: int | None) -> None:
    assert rules.crlf_line(content) == line


@pytest.mark.parametrize(
    ("mode", "executable"), [(0o755, True), (0o700, True), (0o100, True), (0o655, False)]
)
def test_the_owner_execute_bit_decides(mode: int, executable: bool) -> None:
    found = rules.check_script(good(DEPLOY, mode=mode))
    assert (found == []) is executable


def test_missing_and_not_regular_scripts_say_why() -> None:
    found = rules.evaluate(
        [
            fs.Decision(DEPLOY, fs.State.ABSENT, 3, detail="deleted by a whiteout in layer 3"),
            fs.Decision(
                DELETE,
                fs.State.NOT_REGULAR,
                2,
                detail="/scripts is a symlink to /opt/scripts in layer 2",
            ),
        ],
        image_config=CORE,
        base_config=None,
    )
    assert messages(found) == [
        (
            Rule.SCRIPT_MISSING,
            DEPLOY,
            "/scripts/deploy.sh is missing (deleted by a whiteout in layer 3)",
        ),
        (
            Rule.SCRIPT_NOT_REGULAR_FILE,
            DELETE,
            "/scripts/delete.sh is not a regular file"
            " (/scripts is a symlink to /opt/scripts in layer 2)",
        ),
    ]


def test_an_unresolved_hard_link_is_unreadable() -> None:
    decision = fs.Decision(
        DEPLOY, fs.State.UNRESOLVED, 1, detail="a hard link to /x, which layer 1 does not hold"
    )
    assert messages(rules.check_script(decision)) == [
        (
            Rule.SCRIPT_UNREADABLE,
            DEPLOY,
            "/scripts/deploy.sh could not be checked"
            " (a hard link to /x, which layer 1 does not hold)",
        )
    ]


@pytest.mark.parametrize(
    ("image", "base", "expected"),
    [
        (CORE, CORE, None),
        (config(["/bin/sh", "-c"]), CORE, 'the image sets ["/bin/sh", "-c"], but its base'),
        (config(None), CORE, "the image has no entrypoint, but its base"),
        (config([]), CORE, "the image has no entrypoint, but its base"),
        (config(key=False), CORE, "the image has no entrypoint, but its base"),
        # A base without an entrypoint is not ADE core: nothing to keep.
        (config(None), config(None), None),
        (config([]), config(key=False), None),
        (config(["/my/entry"]), config(None), None),
        # Absent, null and [] are the same entrypoint.
        (config(key=False), config([]), None),
        ({"config": None}, CORE, "the image has no entrypoint"),
    ],
)
def test_entrypoint_rule(image: dict[str, Any], base: dict[str, Any], expected: str | None) -> None:
    found = rules.check_entrypoint(image, base)
    if expected is None:
        assert found == []
    else:
        assert [f.rule for f in found] == [Rule.ENTRYPOINT_CHANGED]
        assert found[0].path is None
        assert found[0].message.startswith(expected)
        assert '["/ade/entrypoint.sh"] (ADE runs the scripts through it: keep it)' in (
            found[0].message
        )


def test_without_a_base_config_the_entrypoint_is_not_judged() -> None:
    assert rules.check_entrypoint(config(["/x"]), None) == []


def test_entrypoint_as_a_bare_string() -> None:
    assert rules.entrypoint_of({"config": {"Entrypoint": "/x"}}) == ("/x",)


def test_layer_findings() -> None:
    unsupported = rules.unsupported_layer(
        layer=3,
        total=3,
        digest="sha256:" + "a" * 64,
        media_type="application/vnd.oci.image.layer.v1.tar+zstd",
    )
    assert unsupported.rule == Rule.LAYER_UNSUPPORTED
    assert unsupported.message == (
        f"layer 3 of 3 (sha256:{'a' * 64}) has media type"
        " application/vnd.oci.image.layer.v1.tar+zstd, which the conformance check cannot read;"
        " the scripts were not checked past it"
    )
    unreadable = rules.unreadable_layer(layer=1, total=2, digest="sha256:b", problem="bad")
    assert unreadable.rule == Rule.LAYER_UNREADABLE
    assert "layer 1 of 2 (sha256:b) is not a readable tarball (bad)" in unreadable.message
