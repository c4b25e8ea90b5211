"""What a RUN's shell command runs (controller.conformance.shell): bashlex's tree walked into
simple commands with their directory and whether they may legitimately not run, and the
word-splitting fallback for the shell bashlex refuses."""

from __future__ import annotations

import pytest

from controller.conformance import shell


def argvs(script: str) -> list[list[str]]:
    return [list(c.argv) for c in shell.commands(script)]


def conditional(script: str) -> dict[str, bool]:
    return {c.program: c.conditional for c in shell.commands(script)}


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("a && b || c; d | e", [["a"], ["b"], ["c"], ["d"], ["e"]]),
        (
            "(cd /x && make) && { install -m 755 t /bin; }",
            [["cd", "/x"], ["make"], ["install", "-m", "755", "t", "/bin"]],
        ),
        ("if a; then b; elif c; then d; else e; fi", [["a"], ["c"], ["b"], ["d"], ["e"]]),
        ("for f in 1 2; do echo $f; done", [["echo", "1", "2"]]),
        ("while read l; do echo x; done", [["read", "l"], ["echo", "x"]]),
        ("A=1 sudo -u root -E env -u X B=2 nice -n 5 timeout 30 apk add x", [["apk", "add", "x"]]),
        ("exec command nohup time -p apk add x", [["apk", "add", "x"]]),
        ("bash -c 'sh -c \"apk add x\"'", [["apk", "add", "x"]]),
        ("bash -euo pipefail -c 'apk add x'", [["apk", "add", "x"]]),
        ("sh -ec 'a; b'", [["a"], ["b"]]),
        ("bash deploy.sh", [["bash", "deploy.sh"]]),
        (
            "echo $(apk add x) `true`",
            [["apk", "add", "x"], ["true"], ["echo", "$(apk add x)", "`true`"]],
        ),
        (
            "find /s -name '*.sh' -exec chmod +x {} + -execdir dos2unix {} \\;",
            [
                [
                    "find",
                    "/s",
                    "-name",
                    "*.sh",
                    "-exec",
                    "chmod",
                    "+x",
                    "{}",
                    "+",
                    "-execdir",
                    "dos2unix",
                    "{}",
                    ";",
                ],
                ["chmod", "+x", "/s"],
                ["dos2unix", "/s"],
            ],
        ),
        (
            "find /s -type f | xargs -0 -n 1 chmod +x",
            [["find", "/s", "-type", "f"], ["chmod", "+x", "/s"]],
        ),
        ("cat list | xargs -r apk add", [["cat", "list"], ["apk", "add", "list"]]),
        ("xargs -a pkgs apk add", [["apk", "add", shell.UNKNOWN]]),
        ("bash <<EOF\napk add x\nEOF\n", [["apk", "add", "x"]]),
        ("cat <<'EOF' > /s/d.sh\napk add x\nEOF\n", [["cat"]]),
        ("python3 <<EOF\nimport os\nEOF\n", [["python3"]]),
        ("tdnf install -y x # apk add x", [["tdnf", "install", "-y", "x"]]),
    ],
)
def test_the_commands_a_script_runs(script: str, expected: list[list[str]]) -> None:
    assert argvs(script) == expected


def test_redirect_targets_and_exec_form() -> None:
    (command,) = shell.commands("tr -d '\\r' < in > /scripts/deploy.sh")
    assert command.outputs == ("/scripts/deploy.sh",)
    assert [c.argv for c in shell.argv_commands(["/bin/sh", "-c", "apk add x"])] == [
        ("apk", "add", "x")
    ]
    assert [c.argv for c in shell.argv_commands(["apk", "add", "x"])] == [("apk", "add", "x")]


@pytest.mark.parametrize(
    "script",
    [
        "apk add x || tdnf install -y x",
        "tdnf install -y x || apk add x",
        "(apk update && apk add x) || (tdnf install -y x && tdnf clean all)",
        "command -v apk && apk add x",
        "which apk >/dev/null && apk add x",
        "type apk && apk add x",
        "[ -f /etc/alpine-release ] && apk add x",
        "grep -qi alpine /etc/os-release && apk add x",
        "if command -v apk; then apk add x; else tdnf install -y x; fi",
        'if [ -x "$(command -v apk)" ]; then apk add x; fi',
        "if command -v tdnf; then tdnf install -y x; else apk add x; fi",
        "install() { apk add x; }; install",
        "command -v apk >/dev/null || exit 0; apk add x",
    ],
)
def test_apk_that_may_legitimately_not_run_is_conditional(script: str) -> None:
    assert conditional(script)["apk"] is True


@pytest.mark.parametrize(
    "script",
    [
        "apk add x",
        "apk add x || true",
        "apk update || apk add x",
        "command -v tdnf; apk add x",
        "if true; then apk add x; fi",
        'if [ "$INSTALL" = 1 ]; then apk add x; fi',
        "tdnf install -y y && apk add x",
        "for p in a b; do apk add $p; done",
        "command apk add x",
        "command -v apk; exit 0; apk add x",
        "tdnf --version || exit 1; apk add x",
    ],
)
def test_apk_that_must_run_is_not_conditional(script: str) -> None:
    assert conditional(script)["apk"] is False


def test_cd_moves_the_following_commands() -> None:
    found = shell.commands(
        'cd /scripts && chmod +x *.sh; (cd /opt; ls) ; cat x; cd "$(dirname /x/y)"; ls'
    )
    assert [(c.program, c.cwd) for c in found] == [
        ("cd", None),
        ("chmod", "/scripts"),
        ("cd", "/scripts"),
        ("ls", "/opt"),
        ("cat", "/scripts"),
        ("dirname", "/scripts"),
        ("cd", "/scripts"),
        ("ls", "/" + shell.UNKNOWN),
    ]


@pytest.mark.parametrize(
    ("script", "apk_conditional"),
    [
        # bashlex refuses these valid scripts; the fallback splits words and stays lenient
        ("[[ -f /etc/alpine-release ]] && apk add x", True),
        ("case $ID in alpine) apk add x;; *) tdnf install -y x;; esac", True),
        ("echo $(( 1 + 2 )) && apk add x", False),
        ("echo $(( 1 + 2 )) && apk add x || tdnf install -y x", True),
    ],
)
def test_the_fallback_for_what_bashlex_cannot_parse(script: str, apk_conditional: bool) -> None:
    found = shell.commands(script)
    assert all(not c.exact for c in found)
    assert [c.conditional for c in found if c.program == "apk"] == [apk_conditional]


def test_the_fallback_skips_here_document_bodies() -> None:
    found = shell.commands("[[ -d /s ]] && cat > /s/d.sh <<'EOF'\napk add x\nEOF\necho done\n")
    assert "apk" not in [c.program for c in found]
    assert "echo" in [c.program for c in found]


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("set -e\napk add x\n", True),
        ("#!/bin/bash\napk add x\n", True),
        ("#!/usr/bin/env bash\napk add x\n", True),
        ("#!/usr/bin/env python3\nprint(1)\n", False),
    ],
)
def test_here_documents_with_another_interpreter_are_not_shell(text: str, script: bool) -> None:
    assert (shell.heredoc_script(text) is not None) is script
