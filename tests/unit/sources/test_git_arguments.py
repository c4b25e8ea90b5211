"""What the build-source client refuses before any git runs: URLs and arguments."""

from __future__ import annotations

import pathlib

import pytest

from controller.sources import git


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/repo.git",
        "git://h.example/r.git",
        "ext::sh -c touch% /tmp/pwned",
        "-uhttps://h.example/r.git",
        "/srv/repo.git",
        "https://alice:secret@h.example/r.git",
        "https://token@h.example/r.git",
    ],
)
async def test_refused_urls_never_reach_git(url: str) -> None:
    with pytest.raises(ValueError, match="URL") as caught:
        await git.ls_remote(url=url, ref="main", timeout=5)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("revision", "path"),
    [
        ("main", "."),
        ("0123abc", "."),
        ("a" * 40, "../up"),
        ("a" * 40, "/abs"),
        ("a" * 40, "x/../.."),
    ],
)
async def test_fetch_tree_refuses_bad_arguments_before_any_git(
    revision: str, path: str, tmp_path: pathlib.Path
) -> None:
    with pytest.raises(ValueError, match=r"revision|path"):
        await git.fetch_tree(
            url="https://h.example/r.git", revision=revision, path=path, dest=tmp_path / "d"
        )
