"""`catalog plan` (controller.catalog.cli), in-process and as `python -m controller catalog plan`,
on temporary copies of the golden testdata."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from controller import __main__ as entry
from controller.catalog import cli
from tests.unit.catalog import test_golden

REPO = pathlib.Path(__file__).resolve().parents[3]
IMAGE = "contoso.azurecr.io/ade/bicep:2.0.0"
D256 = "sha256:" + "4c1d" * 16


def checkout(tmp_path: pathlib.Path, case: str) -> pathlib.Path:
    """A copy of the case's `original` folder, standing for a catalog checkout."""
    target = tmp_path / case
    shutil.copytree(test_golden.TESTDATA / case / "original", target, symlinks=True)
    return target


def expected(case: str) -> dict[str, bytes]:
    return test_golden.tree(test_golden.TESTDATA / case / "expected")


def plan(repo: pathlib.Path, *extra: str, manifests: str = "**/environment.yaml") -> list[str]:
    return ["plan", "--repo", str(repo), "--manifests", manifests, "--image", IMAGE, *extra]


def test_plan_prints_a_diff_and_writes_nothing(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "comments_schema")
    before = test_golden.tree(repo)
    assert cli.main(plan(repo)) == cli.EXIT_CHANGED
    out, err = capsys.readouterr()
    path = "Environments/WebApp/environment.yaml"
    assert out.startswith(f"--- a/{path}\n+++ b/{path}\n@@ ")
    assert '\n-runner: "contoso.azurecr.io/ade/bicep:1.0.0"  # managed by' in out
    assert '\n+runner: "contoso.azurecr.io/ade/bicep:2.0.0"  # managed by' in out
    assert sum(line.startswith(("-", "+")) for line in out.splitlines()) == 4
    assert "1 of 1 file(s) would change" in err
    assert test_golden.tree(repo) == before


def test_write_writes_the_expected_files_then_nothing_changes(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "nested_globstar")
    args = plan(repo, "--write", manifests="Environments/**/environment.yaml")
    assert cli.main(args) == cli.EXIT_CHANGED
    assert test_golden.tree(repo) == expected("nested_globstar")
    assert "4 of 4 file(s) written" in capsys.readouterr().err
    assert cli.main(args) == cli.EXIT_UNCHANGED
    out, err = capsys.readouterr()
    assert out == ""
    assert "0 of 4 file(s) written" in err


def test_nothing_to_change_exits_0(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "no_change")
    assert cli.main(plan(repo)) == cli.EXIT_UNCHANGED
    assert capsys.readouterr().out == ""


def test_digest_pin_and_field_options(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "digest_pin_keep_tag")
    args = plan(repo, "--pin", "Digest", "--digest", D256, "--keep-tag", "--write")
    assert cli.main(args) == cli.EXIT_CHANGED
    assert test_golden.tree(repo) == expected("digest_pin_keep_tag")
    capsys.readouterr()
    assert cli.main(plan(repo, "--field", "image")) == cli.EXIT_CHANGED
    assert '+image: "contoso.azurecr.io/ade/bicep:2.0.0"' in capsys.readouterr().out


@pytest.mark.parametrize("case", ["crlf", "bom_no_final_newline", "missing_field", "anchors"])
def test_the_diff_applies_with_git(tmp_path: pathlib.Path, case: str) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("needs git")
    repo = checkout(tmp_path, case)
    result = subprocess.run(
        [sys.executable, "-m", "controller", "catalog", *plan(repo)],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    assert result.returncode == cli.EXIT_CHANGED, result.stderr
    if case == "bom_no_final_newline":
        assert b"\n\\ No newline at end of file\n" in result.stdout
    if case == "crlf":
        assert b'\n+runner: "contoso.azurecr.io/ade/bicep:2.0.0" # image\r\n' in result.stdout
    subprocess.run(
        [git, "apply", "--whitespace=nowarn", "-"],
        cwd=repo,
        input=result.stdout,
        check=True,
        capture_output=True,
    )
    assert test_golden.tree(repo) == expected(case)


def test_invalid_manifest_is_named_and_the_others_proceed(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "nested_globstar")
    broken = repo / "Environments/Team/B/environment.yaml"
    broken.write_text("name: [unclosed\ntemplatePath: main.bicep\n")
    code = cli.main(plan(repo, "--write", manifests="Environments/**/environment.yaml"))
    assert code == cli.EXIT_ERROR
    out, err = capsys.readouterr()
    assert "+++ b/Environments/A/environment.yaml" in out
    assert "Environments/Team/B" not in out
    assert "error: Environments/Team/B/environment.yaml: not valid YAML: " in err
    assert "3 of 4 file(s) written" in err
    assert (repo / "Environments/A/environment.yaml").read_bytes() == expected("nested_globstar")[
        "Environments/A/environment.yaml"
    ]


def test_symlink_escaping_the_repository_is_refused(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "plain")
    outside = tmp_path / "outside.yaml"
    outside.write_text("name: Outside\nrunner: old\ntemplatePath: t\n")
    (repo / "Escape").mkdir()
    (repo / "Escape/environment.yaml").symlink_to(outside)
    assert cli.main(plan(repo, "--write")) == cli.EXIT_ERROR
    out, err = capsys.readouterr()
    assert "+++ b/Sandbox/environment.yaml" in out
    assert "Escape" not in out
    assert "error: Escape/environment.yaml: refused: symbolic link outside the repository" in err
    assert outside.read_text() == "name: Outside\nrunner: old\ntemplatePath: t\n"


@pytest.mark.parametrize(
    ("extra", "manifests", "message"),
    [
        ((), "nothing/*.yaml", "nothing/*.yaml: no file matches (ManifestNotFound)"),
        ((), "../*.yaml", "manifest glob '../*.yaml': matches outside the repository"),
        (("--pin", "Digest"), "**/environment.yaml", "needs a sha256 or sha512 digest"),
        (
            ("--pin", "Digest", "--digest", "sha256:12"),
            "**/environment.yaml",
            "needs a sha256 or sha512 digest",
        ),
        (("--field", "runner"), "**/environment.yaml", ""),
    ],
)
def test_errors_exit_2(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    manifests: str,
    message: str,
) -> None:
    repo = checkout(tmp_path, "no_change")
    code = cli.main(plan(repo, *extra, manifests=manifests))
    if not message:
        assert code == cli.EXIT_UNCHANGED
        return
    assert code == cli.EXIT_ERROR
    assert message in capsys.readouterr().err


def test_missing_repository_and_bad_image(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(plan(tmp_path / "missing")) == cli.EXIT_ERROR
    assert "not a folder" in capsys.readouterr().err
    args = ["plan", "--repo", str(tmp_path), "--manifests", "*", "--image", "r.io/a"]
    assert cli.main(args) == cli.EXIT_ERROR
    assert "'r.io/a' has no tag to pin" in capsys.readouterr().err


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "--repo", "."]) == cli.EXIT_ERROR
    assert "the following arguments are required" in capsys.readouterr().err
    assert cli.main(["frobnicate"]) == cli.EXIT_ERROR
    assert cli.main(["plan", "--help"]) == 0
    assert "--manifests GLOB" in capsys.readouterr().out


def test_entry_point_dispatches_catalog(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "single_quoted")
    assert entry.main(["catalog", *plan(repo)]) == cli.EXIT_CHANGED
    assert "+runner: 'contoso.azurecr.io/ade/bicep:2.0.0'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "args", "code"),
    [
        ("no_change", (), cli.EXIT_UNCHANGED),
        ("double_quoted", (), cli.EXIT_CHANGED),
        ("double_quoted", ("--pin", "Digest"), cli.EXIT_ERROR),
    ],
)
def test_as_a_process(tmp_path: pathlib.Path, case: str, args: tuple[str, ...], code: int) -> None:
    repo = checkout(tmp_path, case)
    result = subprocess.run(
        [sys.executable, "-m", "controller", "catalog", *plan(repo, *args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == code, result.stderr
    if code == cli.EXIT_CHANGED:
        assert result.stdout.startswith("--- a/Sandbox/environment.yaml\n")
    else:
        assert result.stdout == ""
    if code == cli.EXIT_ERROR:
        assert "ade-runner-operator catalog plan: error:" in result.stderr


def test_process_refuses_invalid_yaml_naming_the_file(tmp_path: pathlib.Path) -> None:
    repo = checkout(tmp_path, "plain")
    (repo / "Sandbox/environment.yaml").write_bytes(b"name: A\nname: B\ntemplatePath: t\n")
    result = subprocess.run(
        [sys.executable, "-m", "controller", "catalog", *plan(repo)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == cli.EXIT_ERROR
    assert "error: Sandbox/environment.yaml: not valid YAML: found duplicate key" in result.stderr


def test_unified_diff_marks_a_missing_final_newline() -> None:
    diff = cli.unified_diff("p", "a\nb", "a\nc")
    assert diff == (
        "--- a/p\n+++ b/p\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n"
        "+c\n\\ No newline at end of file\n"
    )
    assert cli.unified_diff("p", "same\n", "same\n") == ""


def test_plan_with_format_yaml_edits_a_helm_values_line_keeping_its_comment(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "helm_values")
    args = plan(repo, "--format", "yaml", "--field", "image", manifests="charts/*/values.yaml")
    assert cli.main([*args, "--write"]) == cli.EXIT_CHANGED
    out = capsys.readouterr().out
    assert "\n-image: old.example/app:1  # pinned\n+image: " + IMAGE + "  # pinned\n" in out
    assert test_golden.tree(repo) == expected("helm_values")


def test_plan_splits_repository_and_tag_for_kustomize(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "kustomize_images")
    args = plan(
        repo,
        "--format", "yaml",
        "--field", "images[name=app].newTag",
        "--repository-field", "images[name=app].newName",
        "--write",
        manifests="overlays/*/kustomization.yaml",
    )  # fmt: skip
    assert cli.main(args) == cli.EXIT_CHANGED
    assert test_golden.tree(repo) == expected("kustomize_images")
    assert cli.main(args) == cli.EXIT_UNCHANGED  # idempotent


def test_plan_refuses_a_repository_field_without_format_yaml(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = checkout(tmp_path, "helm_values")
    assert cli.main(plan(repo, "--repository-field", "image.repository")) == cli.EXIT_ERROR
    assert "--repository-field needs --format yaml" in capsys.readouterr().err


def test_plan_help_loads_only_the_catalog_engine(capsys: pytest.CaptureFixture[str]) -> None:
    """`catalog plan` is a local tool: it must not pay for the operator's imports (kopf, the
    Kubernetes and Azure clients). The figure printed is one cold process start."""
    probe = (
        "import sys, time; from controller import __main__ as m; "
        "code = m.main(['catalog', 'plan', '--help']); "
        "heavy = sorted(n for n in ('kopf', 'kubernetes_asyncio', 'azure', 'prometheus_client',"
        " 'controller.handlers') if n in sys.modules); print(code, heavy, file=sys.stderr)"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    seconds = time.perf_counter() - started
    assert result.stderr.strip().splitlines()[-1] == "0 []", result.stderr
    with capsys.disabled():
        print(f"\n[figure] python -m controller catalog plan --help: {seconds * 1000:.0f} ms")


# --- as a user drives it: a pipe that closes, options checked like the CRD ---------------------

OLD = "contoso.azurecr.io/ade/bicep:1.0.0"


def _big_catalog(root: pathlib.Path, files: int = 8, documents: int = 12) -> list[pathlib.Path]:
    """`files` manifests whose diffs together are several times a pipe's buffer (64 KiB), so
    that a reader that stops after three lines closes the pipe while the diff is being written."""
    paths = []
    description = "a long description " * 150
    for index in range(files):
        path = root / f"Environments/E{index}/environment.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(
            "---\n".join(
                f"name: Env{index}-{doc}\ndescription: {description}\nrunner: {OLD}\n"
                "templatePath: main.bicep\n"
                for doc in range(documents)
            )
        )
        paths.append(path)
    return paths


@pytest.mark.parametrize("write", [True, False])
def test_write_does_not_depend_on_standard_output(tmp_path: pathlib.Path, write: bool) -> None:
    """`plan --write | head -3` wrote 1 of 8 files and blamed the 7 others with "Broken pipe"."""
    paths = _big_catalog(tmp_path)
    before = {path: path.read_bytes() for path in paths}
    args = plan(tmp_path, *(["--write"] if write else []))
    with subprocess.Popen(
        [sys.executable, "-m", "controller", "catalog", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as writer:
        assert writer.stdout is not None
        assert writer.stderr is not None
        head = subprocess.run(
            ["head", "-3"], stdin=writer.stdout, capture_output=True, timeout=120, check=True
        )
        writer.stdout.close()  # only head reads the diff, as in a shell pipeline
        err = writer.stderr.read().decode()
        code = writer.wait(timeout=120)
    first, second, hunk = head.stdout.decode().splitlines()
    assert (first, second) == (
        "--- a/Environments/E0/environment.yaml",
        "+++ b/Environments/E0/environment.yaml",
    )
    assert hunk.startswith("@@ -1,")
    assert code == cli.EXIT_CHANGED, err
    assert "error" not in err
    assert "Broken pipe" not in err
    if write:
        assert "8 of 8 file(s) written" in err
        for path in paths:
            assert path.read_text() == before[path].decode().replace(OLD, IMAGE)
    else:
        assert "8 of 8 file(s) would change" in err
        assert {path: path.read_bytes() for path in paths} == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--field", "name"), "--field 'name' is an environment definition's own key"),
        (("--field", "templatePath"), "--field 'templatePath' is an environment definition's own"),
        (("--field", "parameters"), "--field 'parameters' is an environment definition's own key"),
        (("--field", "image.tag"), "--field 'image.tag' must be a top-level key"),
        (("--field", ""), "--field '' must be a top-level key"),
        (("--field", "9lives"), "--field '9lives' must be a top-level key"),
        (
            ("--format", "yaml", "--field", "image..tag"),
            "--field 'image..tag': '' is not a key with optional [N] or [key=value]",
        ),
        (
            ("--format", "yaml", "--field", "tag", "--repository-field", "a[x]"),
            "--repository-field 'a[x]': [x] is neither [N] nor [key=value]",
        ),
        (("--digest", D256), "a digest is given but --pin is Tag, which writes the tag only"),
        (("--keep-tag",), "--keep-tag needs --pin Digest"),
    ],
)
def test_options_are_checked_as_the_crd_checks_them(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    repo = checkout(tmp_path, "plain")
    before = test_golden.tree(repo)
    assert cli.main(plan(repo, *extra, "--write")) == cli.EXIT_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ade-runner-operator catalog plan: error: ")
    assert message in lines[0]
    assert test_golden.tree(repo) == before


def test_a_digest_in_the_image_without_pin_digest_is_refused_not_dropped(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, `--image repo:tag@digest` with the default --pin Tag wrote `repo:tag`."""
    repo = checkout(tmp_path, "plain")
    args = ["plan", "--repo", str(repo), "--manifests", "**/environment.yaml"]
    assert cli.main([*args, "--image", f"{IMAGE}@{D256}"]) == cli.EXIT_ERROR
    assert "add --pin Digest to write the digest" in capsys.readouterr().err
    assert cli.main([*args, "--image", f"{IMAGE}@{D256}", "--pin", "Digest"]) == cli.EXIT_CHANGED
    assert f"+runner: contoso.azurecr.io/ade/bicep@{D256}\n" in capsys.readouterr().out
