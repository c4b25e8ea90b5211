"""The pure parts of `controller.catalog.replay`: reading `git diff-tree` output and a commit's
message, and deciding whether a commit can be replayed on a head other writers moved."""

from __future__ import annotations

import pytest

from controller.catalog import replay
from controller.catalog.replay import Entry

ZERO = "0" * 40
A, B = "a" * 40, "b" * 40


def test_changed_paths_reads_modifications_additions_and_deletions() -> None:
    raw = (
        f":100644 100644 {A} {B} M\0envs/web/environment.yaml\0"
        f":000000 100644 {ZERO} {B} A\0docs/new file.md\0"
        f":100644 000000 {A} {ZERO} D\0old.txt\0"
    )
    assert replay.changed_paths(raw) == {
        "envs/web/environment.yaml": Entry("100644", "100644", B),
        "docs/new file.md": Entry("000000", "100644", B),
        "old.txt": Entry("100644", "000000", ZERO),
    }


def test_changed_paths_of_nothing_is_empty() -> None:
    assert replay.changed_paths("") == {}


def test_changed_paths_refuses_what_it_does_not_understand() -> None:
    with pytest.raises(ValueError, match="unexpected diff-tree line"):
        replay.changed_paths("commit 0123\0path\0")


def test_message_of_is_everything_after_the_headers() -> None:
    headers = f"tree {A}\nparent {B}\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n"
    raw = headers + "\nSubject\n\nBody\n"
    assert replay.message_of(raw) == "Subject\n\nBody\n"


OURS = {"envs/web/environment.yaml": Entry("100644", "100644", B)}


def _theirs(path: str, old: str = "100644", new: str = "100644") -> dict[str, Entry]:
    return {path: Entry(old, new, A)}


def test_unrelated_changes_replay() -> None:
    assert replay.replays_safely(_theirs("docs/a.md"), OURS, lambda path: False)
    assert replay.replays_safely({}, OURS, lambda path: True)


@pytest.mark.parametrize(
    "theirs",
    [
        pytest.param(_theirs("envs/web/environment.yaml"), id="the-same-file"),
        pytest.param(_theirs("docs/link", new="120000"), id="a-new-symlink"),
        pytest.param(_theirs("docs/link", old="120000", new="000000"), id="a-symlink-removed"),
        pytest.param(_theirs("vendor/lib", new="160000"), id="a-submodule"),
        pytest.param(_theirs("envs/db/environment.yaml"), id="a-dependency"),
    ],
)
def test_what_could_change_the_edits_does_not_replay(theirs: dict[str, Entry]) -> None:
    assert not replay.replays_safely(theirs, OURS, lambda path: path.startswith("envs/"))
