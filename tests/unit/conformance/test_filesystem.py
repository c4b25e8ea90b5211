"""Deciding the scripts from layers top-down (controller.conformance.filesystem)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest

from controller.conformance import filesystem as fs
from controller.conformance.filesystem import Kind, Member, State

DEPLOY, DELETE = fs.SCRIPTS


def script(name: str, data: bytes = b"#!/bin/sh\n", mode: int = 0o755) -> Member:
    return Member(name, Kind.FILE, mode, len(data), content=data)


def directory(name: str) -> Member:
    return Member(name, Kind.DIRECTORY, 0o755)


def whiteout(parent: str, name: str) -> Member:
    return Member(f"{parent}/.wh.{name}", Kind.FILE, 0o644)


def opaque(parent: str) -> Member:
    return Member(f"{parent}/.wh..wh..opq", Kind.FILE, 0o644)


BOTH = [directory("scripts"), script("scripts/deploy.sh"), script("scripts/delete.sh")]


def states(decided: dict[str, fs.Decision]) -> dict[str, tuple[State, int | None]]:
    return {path: (d.state, d.layer) for path, d in decided.items()}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("scripts/deploy.sh", "/scripts/deploy.sh"),
        ("./scripts/deploy.sh", "/scripts/deploy.sh"),
        ("/scripts//deploy.sh", "/scripts/deploy.sh"),
        ("//scripts/", "/scripts"),
        ("./", "/"),
        ("scripts/../scripts/x", "/scripts/x"),
    ],
)
def test_names_are_normalized(name: str, expected: str) -> None:
    assert fs.normalize(name) == expected


def test_ancestors_outermost_first() -> None:
    assert fs.ancestors("/a/b/c") == ("/a", "/a/b")
    assert fs.ancestors("/x") == ()


def test_scripts_in_one_layer_are_files_with_mode_and_contents() -> None:
    decided = fs.resolve([BOTH])
    assert states(decided) == {DEPLOY: (State.FILE, 1), DELETE: (State.FILE, 1)}
    assert decided[DEPLOY].mode == 0o755
    assert decided[DEPLOY].content == b"#!/bin/sh\n"


def test_dot_slash_names_count() -> None:
    layer = [script("./scripts/deploy.sh"), script("/scripts/delete.sh")]
    assert {d.state for d in fs.resolve([layer]).values()} == {State.FILE}


def test_the_upper_layer_wins() -> None:
    upper = [script("scripts/deploy.sh", b"new\n", 0o700)]
    decided = fs.resolve([upper, BOTH])
    assert decided[DEPLOY].content == b"new\n"
    assert (decided[DEPLOY].layer, decided[DELETE].layer) == (2, 1)


class Untouchable:
    """A layer that fails the test if it is read."""

    def __iter__(self) -> Iterator[Member]:
        raise AssertionError("a layer below the deciding one was read")


def test_lower_layers_are_not_read_once_decided() -> None:
    layers: list[Iterable[Member]] = [BOTH, Untouchable(), Untouchable()]
    decided = fs.resolve(layers)
    assert states(decided) == {DEPLOY: (State.FILE, 3), DELETE: (State.FILE, 3)}


def test_a_whiteout_deletes_a_script_from_lower_layers() -> None:
    decided = fs.resolve([[whiteout("scripts", "delete.sh")], BOTH])
    assert states(decided) == {DEPLOY: (State.FILE, 1), DELETE: (State.ABSENT, 2)}
    assert decided[DELETE].detail == "deleted by a whiteout in layer 2"


def test_a_whiteout_of_the_directory_deletes_both() -> None:
    decided = fs.resolve([[Member(".wh.scripts", Kind.FILE)], BOTH])
    assert states(decided) == {DEPLOY: (State.ABSENT, 2), DELETE: (State.ABSENT, 2)}
    assert decided[DEPLOY].detail == "deleted by a whiteout of /scripts in layer 2"


def test_a_whiteout_and_a_new_file_in_the_same_layer_keep_the_new_file() -> None:
    upper = [whiteout("scripts", "deploy.sh"), script("scripts/deploy.sh", b"again\n")]
    decided = fs.resolve([upper, BOTH])
    assert decided[DEPLOY].content == b"again\n"


def test_an_opaque_directory_hides_lower_contents() -> None:
    upper = [directory("scripts"), opaque("scripts"), script("scripts/deploy.sh", b"only\n")]
    decided = fs.resolve([upper, BOTH])
    assert states(decided) == {DEPLOY: (State.FILE, 2), DELETE: (State.ABSENT, 2)}
    assert decided[DELETE].detail == ("/scripts is made opaque in layer 2, hiding the layers below")


def test_an_opaque_marker_elsewhere_changes_nothing() -> None:
    decided = fs.resolve([[opaque("opt"), opaque("scripts/sub")], BOTH])
    assert states(decided) == {DEPLOY: (State.FILE, 1), DELETE: (State.FILE, 1)}


def test_aufs_metadata_is_not_a_whiteout() -> None:
    decided = fs.resolve([[Member("scripts/.wh..wh.plnk", Kind.DIRECTORY)], BOTH])
    assert decided[DEPLOY].state == State.FILE


def test_a_symlinked_scripts_directory_is_not_a_regular_file() -> None:
    upper = [Member("scripts", Kind.SYMLINK, 0o777, link="/opt/scripts")]
    decided = fs.resolve([upper, BOTH])
    assert states(decided) == {DEPLOY: (State.NOT_REGULAR, 2), DELETE: (State.NOT_REGULAR, 2)}
    assert decided[DEPLOY].detail == "/scripts is a symlink to /opt/scripts in layer 2"


def test_a_file_at_the_parent_path_replaces_the_directory() -> None:
    decided = fs.resolve([[Member("scripts", Kind.FILE)], BOTH])
    assert states(decided) == {DEPLOY: (State.ABSENT, 2), DELETE: (State.ABSENT, 2)}
    assert decided[DEPLOY].detail == "/scripts is a regular file in layer 2"


def test_a_directory_above_a_lower_symlink_replaces_it_and_what_was_below() -> None:
    top = [directory("scripts"), script("scripts/deploy.sh")]
    middle = [Member("scripts", Kind.SYMLINK, link="/opt/s")]
    decided = fs.resolve([top, middle, BOTH])
    assert states(decided) == {DEPLOY: (State.FILE, 3), DELETE: (State.ABSENT, 2)}
    assert decided[DELETE].detail == (
        "not in the layers above layer 2, where /scripts is a symlink to /opt/s"
    )


@pytest.mark.parametrize(
    ("member", "detail"),
    [
        (directory("scripts/deploy.sh"), "a directory in layer 1"),
        (Member("scripts/deploy.sh", Kind.SYMLINK, link="v2.sh"), "a symlink to v2.sh in layer 1"),
        (Member("scripts/deploy.sh", Kind.CHARACTER_DEVICE), "a character device in layer 1"),
        (Member("scripts/deploy.sh", Kind.FIFO), "a FIFO in layer 1"),
    ],
)
def test_special_entries_are_not_regular_files(member: Member, detail: str) -> None:
    decided = fs.resolve([[member, script("scripts/delete.sh")]])
    assert decided[DEPLOY].state == State.NOT_REGULAR
    assert decided[DEPLOY].detail == detail


def test_a_hard_link_resolves_to_its_target_in_the_same_layer() -> None:
    layer = [
        script("scripts/deploy.sh", b"shared\n", 0o750),
        Member("scripts/delete.sh", Kind.HARDLINK, 0o644, link="scripts/deploy.sh"),
    ]
    decided = fs.resolve([layer])
    assert decided[DELETE].state == State.FILE
    assert (decided[DELETE].mode, decided[DELETE].content) == (0o750, b"shared\n")
    assert decided[DELETE].detail == "a hard link to /scripts/deploy.sh"


def test_a_hard_link_to_another_file_asks_for_it_then_resolves() -> None:
    target = script("opt/runner.sh", b"body\n")
    link = Member("scripts/deploy.sh", Kind.HARDLINK, link="./opt/runner.sh")
    uncaptured = Member("opt/runner.sh", Kind.FILE, 0o755, 5)
    resolver = fs.Resolver()
    first = fs.scan([uncaptured, link], paths=resolver.pending)
    assert resolver.link_targets(first) == {"/opt/runner.sh"}
    again = fs.scan([target, link], paths=resolver.pending, targets={"/opt/runner.sh"})
    assert resolver.link_targets(again) == frozenset()
    resolver.apply(again, layer=1)
    assert resolver.decided[DEPLOY].content == b"body\n"


def test_a_hard_link_outside_its_layer_is_unresolved() -> None:
    link = Member("scripts/deploy.sh", Kind.HARDLINK, link="opt/elsewhere.sh")
    decided = fs.resolve([[link, script("scripts/delete.sh")], [script("opt/elsewhere.sh")]])
    assert decided[DEPLOY].state == State.UNRESOLVED
    assert decided[DEPLOY].detail == "a hard link to /opt/elsewhere.sh, which layer 2 does not hold"


def test_a_path_no_layer_mentions_is_absent() -> None:
    decided = fs.resolve([[script("scripts/deploy.sh")], [Member("etc/x", Kind.FILE)]])
    assert decided[DELETE].state == State.ABSENT
    assert decided[DELETE].layer is None
    assert decided[DELETE].detail == "in no layer"


def test_decided_leaves_open_paths_out_until_finish() -> None:
    resolver = fs.Resolver()
    resolver.apply(fs.scan([script("scripts/deploy.sh")], paths=resolver.pending), layer=3)
    assert list(resolver.decided) == [DEPLOY]
    assert resolver.pending == (DELETE,)
    assert resolver.finish()[DELETE].state == State.ABSENT


def test_the_last_member_of_a_name_counts() -> None:
    layer = [script("scripts/deploy.sh", mode=0o644), script("scripts/deploy.sh", mode=0o755)]
    assert fs.resolve([layer])[DEPLOY].mode == 0o755


def test_scan_drops_unrelated_members() -> None:
    view = fs.scan((Member(f"usr/lib/{i}", Kind.FILE) for i in range(1000)), paths=fs.SCRIPTS)
    assert view.entries == {}
