"""`ade-runner-operator lint` as a runner author runs it: a subprocess, its exit status, its
output (text, and JSON whose shape is part of the interface), one line for bad input, and how
soon it answers. `verify` needs a registry: tests/e2e/test_author_verify.py."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from controller.conformance import lint

CORE = "mcr.microsoft.com/deployment-environments/runners/core"
BROKEN = (
    f"ARG BASE_IMAGE={CORE}\nARG IMAGE_VERSION=latest\nFROM ${{BASE_IMAGE}}:${{IMAGE_VERSION}}\n"
    "RUN apk add jq\nCOPY scripts/ /scripts/\n"
)
CLEAN = (
    f"FROM {CORE}:latest\nCOPY --chmod=755 scripts/ /scripts/\n"
    "RUN find /scripts -type f -exec sed -i 's/\\r$//' {} +\n"
)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_findings_exit_1_each_named_by_line_and_rule(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(BROKEN)
    done = run("lint", str(path))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{path}: FROM {CORE}:latest (line 3)"
    assert f"{path}:4: ApkOnCore: RUN uses apk" in done.stdout
    assert f"{path}:5: ScriptsNotExecutable:" in done.stdout
    assert lines[-1] == f"{len(lines) - 2} finding(s)"


def test_a_clean_dockerfile_exits_0(tmp_path: pathlib.Path) -> None:
    (tmp_path / "Dockerfile").write_text(CLEAN)
    done = subprocess.run(
        [sys.executable, "-m", "controller", "lint"],
        cwd=tmp_path,  # the default file, as docker build's
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.splitlines()[-1]) == (0, "no findings"), done.stderr


def test_json_from_standard_input_with_build_args_is_what_status_warnings_say() -> None:
    done = run("lint", "--format", "json", "--build-arg", "IMAGE_VERSION=4.0", "-", stdin=BROKEN)
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == {"dockerfile", "baseImage", "findings"}
    assert document["dockerfile"] == "standard input"
    assert document["baseImage"] == f"{CORE}:4.0"
    # the operator's status.warnings: the same engine, the same shape
    expected = [lint.as_status(w) for w in lint.lint(BROKEN, build_args={"IMAGE_VERSION": "4.0"})]
    assert document["findings"] == expected
    assert all(set(finding) == {"rule", "line", "message"} for finding in document["findings"])
    assert "core:4.0 is ADE core 4" in document["findings"][0]["message"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("lint", "/nonexistent/Dockerfile"), None, "/nonexistent/Dockerfile: cannot read it"),
        (("lint", "-"), "RUN echo no stage\n", "standard input: "),
        (("lint", "--target", "nope", "-"), CLEAN, "no stage named 'nope'"),
        (("lint", "--build-arg", "=x", "-"), CLEAN, "expected NAME=VALUE"),
        (("lint", "--format", "yaml", "-"), CLEAN, "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    done = run(*args, stdin=stdin)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def test_binary_input_is_refused_in_one_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"\xff\xfe\x00FROM x\n")
    done = run("lint", str(path))
    assert (done.returncode, done.stderr.strip()) == (2, f"{path}: not UTF-8 text")


def test_it_starts_without_the_operator() -> None:
    """No kopf, Kubernetes, Azure or HTTP client is imported by `lint` (seconds of start-up)."""
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['controller', 'lint', '-']\n"
        "try:\n    runpy.run_module('controller', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "names = ('kopf', 'kubernetes', 'azure', 'httpx', 'aiohttp')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        input=CLEAN,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "HEAVY []" in done.stderr, done.stderr
    started = time.monotonic()
    run("lint", "-", stdin=CLEAN)
    print(f"\n[figure] lint: {time.monotonic() - started:.2f} s from start to exit")
