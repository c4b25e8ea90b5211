"""The lint on a golden corpus of realistic runner Dockerfiles (tests/unit/conformance/corpus):
ADE's samples, Pulumi's runner, community runners on azure-cli, multi-stage builds,
here-documents, `bash -c` wrappers and CRLF handling. Each `NAME.Dockerfile` has
`NAME.expected.json`, the findings a reviewer agrees are problems ([{rule, line}]); the engine
and `ade-runner-operator lint --format json` must both say exactly that."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from controller.conformance import lint

CORPUS = pathlib.Path(__file__).parent / "corpus"
DOCKERFILES = sorted(CORPUS.glob("*.Dockerfile"))


def expected(path: pathlib.Path) -> list[tuple[str, int]]:
    document = json.loads(
        path.with_name(path.name.replace(".Dockerfile", ".expected.json")).read_text()
    )
    return [(item["rule"], item["line"]) for item in document]


def test_the_corpus_is_there() -> None:
    assert len(DOCKERFILES) >= 25
    for path in DOCKERFILES:
        expected(path)  # each has its expectations


@pytest.mark.parametrize(
    "path", DOCKERFILES, ids=lambda path: path.name.removesuffix(".Dockerfile")
)
def test_the_engine_finds_exactly_what_is_expected(path: pathlib.Path) -> None:
    found = lint.lint(path.read_bytes().decode("utf-8"), build_args={})
    assert [(w.rule, w.line) for w in found] == expected(path)


# Runs `python -m controller lint --format json FILE` for each file in one interpreter (runpy is
# what `-m` uses): one process start instead of one per file, on a loaded machine.
DRIVER = """
import contextlib, io, json, runpy, sys
results = []
for path in sys.argv[1:]:
    sys.argv = ["controller", "lint", "--format", "json", path]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_module("controller", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit:
            code = exit.code
    results.append({"path": path, "exit": code, "stdout": out.getvalue()})
print(json.dumps(results))
"""


def test_the_cli_agrees_with_the_engine_on_the_whole_corpus() -> None:
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    runs = json.loads(result.stdout)
    assert [run["path"] for run in runs] == list(map(str, DOCKERFILES))
    for path, run in zip(DOCKERFILES, runs, strict=True):
        engine = lint.lint(path.read_bytes().decode("utf-8"), build_args={})
        assert run["exit"] == (1 if engine else 0), path.name
        document = json.loads(run["stdout"])
        assert document["dockerfile"] == str(path)
        assert document["findings"] == [lint.as_status(w) for w in engine], path.name
        assert [(f["rule"], f["line"]) for f in document["findings"]] == expected(path)
