"""Which files the manifest globs select (controller.catalog.select), on real folders."""

from __future__ import annotations

import os
import pathlib

import pytest

from controller import errors
from controller.catalog import select


def make(root: pathlib.Path, *paths: str) -> None:
    for path in paths:
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("name: x\n")


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "repo"
    make(
        root,
        "environment.yaml",
        "Environments/A/environment.yaml",
        "Environments/A/main.bicep",
        "Environments/B/deep/er/environment.yaml",
        "Environments/B/manifest.yaml",
        "Environments/.hidden/environment.yaml",
        "Other/environment.yaml",
        ".git/environment.yaml",
        "Environments/.git/environment.yaml",
    )
    return root


@pytest.mark.parametrize(
    ("globs", "files"),
    [
        (
            ["Environments/**/environment.yaml"],
            [
                "Environments/.hidden/environment.yaml",
                "Environments/A/environment.yaml",
                "Environments/B/deep/er/environment.yaml",
            ],
        ),
        (
            ["Environments/*/environment.yaml"],
            ["Environments/.hidden/environment.yaml", "Environments/A/environment.yaml"],
        ),
        (["**/manifest.yaml"], ["Environments/B/manifest.yaml"]),
        (["environment.yaml"], ["environment.yaml"]),
        (["./Environments//A/environment.yaml"], ["Environments/A/environment.yaml"]),
        (["Environments/?/*.bicep"], ["Environments/A/main.bicep"]),
        (["Environments/[A]/environment.yaml"], ["Environments/A/environment.yaml"]),
        (
            ["**/**/environment.yaml", "Other/*", "Other/environment.yaml"],
            [
                "Environments/.hidden/environment.yaml",
                "Environments/A/environment.yaml",
                "Environments/B/deep/er/environment.yaml",
                "Other/environment.yaml",
                "environment.yaml",
            ],
        ),
    ],
)
def test_globs_select_sorted_unique_files(
    repo: pathlib.Path, globs: list[str], files: list[str]
) -> None:
    selection = select.select(repo, globs)
    assert selection.files == tuple(files)
    assert selection.unmatched == ()
    assert selection.refused == ()
    assert selection.root == repo.resolve()


def test_git_folder_is_never_searched(repo: pathlib.Path) -> None:
    selection = select.select(repo, ["**/environment.yaml", ".git/*"])
    assert not any(".git" in path.split("/") for path in selection.files)
    assert selection.unmatched == (".git/*",)


def test_folders_are_not_files(repo: pathlib.Path) -> None:
    selection = select.select(repo, ["Environments/*"])
    assert selection.files == ()
    assert selection.unmatched == ("Environments/*",)


def test_matching_is_case_sensitive(repo: pathlib.Path) -> None:
    assert select.select(repo, ["environments/**/environment.yaml"]).files == ()


def test_unmatched_globs_are_reported_each_once_in_order(repo: pathlib.Path) -> None:
    selection = select.select(repo, ["x/*.yaml", "environment.yaml", "y", "x/*.yaml"])
    assert selection.files == ("environment.yaml",)
    assert selection.unmatched == ("x/*.yaml", "y")


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("/etc/passwd", "must be a relative path with forward slashes"),
        ("Environments\\A\\environment.yaml", "must be a relative path with forward slashes"),
        ("", "must be a relative path with forward slashes"),
        ("../other/environment.yaml", "matches outside the repository"),
        ("**/../x.yaml", "matches outside the repository"),
        ("a/..", "matches outside the repository"),
        ("./", "names no file"),
    ],
)
def test_globs_that_could_leave_the_root_are_refused(
    repo: pathlib.Path, glob: str, problem: str
) -> None:
    with pytest.raises(select.InvalidGlob, match=problem) as caught:
        select.select(repo, ["environment.yaml", glob])
    assert isinstance(caught.value, errors.StalledError)
    assert caught.value.reason == "InvalidSpec"
    assert caught.value.glob == glob


def test_root_must_be_a_folder(tmp_path: pathlib.Path) -> None:
    with pytest.raises(OSError, match="not a folder"):
        select.select(tmp_path / "missing", ["*"])
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="not a folder"):
        select.select(tmp_path / "file", ["*"])


# --- symbolic links and special files ------------------------------------------------------------


def test_link_to_a_file_outside_the_root_is_refused_and_not_read(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    make(root, "Environments/A/environment.yaml")
    secret = tmp_path / "secret.yaml"
    secret.write_text("name: secret\n")
    (root / "Environments/Evil").mkdir()
    (root / "Environments/Evil/environment.yaml").symlink_to(secret)
    selection = select.select(root, ["Environments/**/environment.yaml"])
    assert selection.files == ("Environments/A/environment.yaml",)
    assert selection.refused == (
        select.Refused(
            "Environments/Evil/environment.yaml",
            "symbolic link outside the repository; not followed",
        ),
    )
    assert selection.unmatched == ()


def test_link_to_a_folder_outside_the_root_is_not_followed(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    make(root, "Environments/A/environment.yaml")
    make(tmp_path / "outside", "B/environment.yaml")
    (root / "Environments/Linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    selection = select.select(root, ["Environments/**/environment.yaml", "Environments/Linked/*"])
    assert selection.files == ("Environments/A/environment.yaml",)
    assert [refused.path for refused in selection.refused] == ["Environments/Linked"]
    assert selection.unmatched == ("Environments/Linked/*",)


def test_relative_link_that_climbs_out_is_refused(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    make(root, "a/environment.yaml")
    (tmp_path / "x.yaml").write_text("")
    (root / "a/x.yaml").symlink_to("../../x.yaml")
    selection = select.select(root, ["a/*.yaml"])
    assert selection.files == ("a/environment.yaml",)
    assert selection.refused[0].path == "a/x.yaml"


def test_links_inside_the_root_select_the_real_file_once(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    make(root, "real/environment.yaml", "real/sub/environment.yaml")
    (root / "alias").mkdir()
    (root / "alias/environment.yaml").symlink_to("../real/environment.yaml")
    (root / "linked").symlink_to("real", target_is_directory=True)
    selection = select.select(root, ["alias/*", "linked/**/environment.yaml", "real/*.yaml"])
    assert selection.files == ("real/environment.yaml", "real/sub/environment.yaml")
    assert selection.unmatched == ()
    assert selection.refused == ()


def test_link_loops_end(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    make(root, "a/environment.yaml")
    (root / "a/loop").symlink_to("..", target_is_directory=True)
    (root / "a/self").symlink_to(".", target_is_directory=True)
    selection = select.select(root, ["**/environment.yaml"])
    assert "a/environment.yaml" in selection.files
    assert selection.refused == ()


def test_dangling_link_and_link_into_git_are_refused(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    make(root, ".git/config", "a/environment.yaml")
    (root / "b").mkdir()
    (root / "b/environment.yaml").symlink_to("missing.yaml")
    (root / "c").mkdir()
    (root / "c/environment.yaml").symlink_to("../.git/config")
    selection = select.select(root, ["*/environment.yaml"])
    assert selection.files == ("a/environment.yaml",)
    assert selection.refused == (
        select.Refused("b/environment.yaml", "dangling symbolic link"),
        select.Refused("c/environment.yaml", "symbolic link into .git; not followed"),
    )


def test_root_that_is_a_link_is_resolved(tmp_path: pathlib.Path) -> None:
    make(tmp_path / "repo", "environment.yaml")
    (tmp_path / "link").symlink_to(tmp_path / "repo", target_is_directory=True)
    selection = select.select(tmp_path / "link", ["environment.yaml"])
    assert selection.files == ("environment.yaml",)
    assert selection.root == (tmp_path / "repo").resolve()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_special_files_are_refused(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    os.mkfifo(root / "environment.yaml")
    selection = select.select(root, ["environment.yaml"])
    assert selection.files == ()
    assert selection.refused == (select.Refused("environment.yaml", "not a regular file"),)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_unreadable_folder_is_refused(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "repo"
    make(root, "a/environment.yaml", "b/environment.yaml")
    (root / "b").chmod(0)
    try:
        selection = select.select(root, ["*/environment.yaml"])
    finally:
        (root / "b").chmod(0o755)
    assert selection.files == ("a/environment.yaml",)
    assert selection.refused[0].path == "b"


# --- the matcher ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("**/e.yaml", "e.yaml", True),
        ("**/e.yaml", "a/b/e.yaml", True),
        ("a/**", "a/b/c", True),
        ("a/**", "a", False),
        ("a/**/b/*.yaml", "a/x/b/y/c.yaml", False),
        ("a/**/b/*.yaml", "a/x/b/c.yaml", True),
        ("*.yaml", "a/b.yaml", False),
        ("a*/e.yaml", "ab/e.yaml", True),
    ],
)
def test_matches(glob: str, path: str, expected: bool) -> None:
    assert select.matches(select.compile_glob(glob), path.split("/")) is expected


@pytest.mark.parametrize(
    ("glob", "folder", "expected"),
    [
        ("a/b/*.yaml", "a", True),
        ("a/b/*.yaml", "a/b", True),
        ("a/b/*.yaml", "a/c", False),
        ("a/b/*.yaml", "a/b/c", False),
        ("**/x", "any/thing", True),
        ("a/**/x", "b", False),
    ],
)
def test_may_contain(glob: str, folder: str, expected: bool) -> None:
    assert select.may_contain(select.compile_glob(glob), folder.split("/")) is expected
