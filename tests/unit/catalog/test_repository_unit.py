"""The pure parts of the catalog writer (`controller.catalog.repository` and the `clones` and
`gitcli` modules it is made of): the batch commit message, the LRU's choice of clones to evict,
clone names, change validation, git output parsing, and the per-repository lock (no git, no
network). The errors and the reading of git's output are `controller.git.failures`'s
(tests/unit/git)."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from controller import errors
from controller.catalog import clones, gitcli, repository
from controller.catalog.repository import CachedClone, Change

# -- batch_message ---------------------------------------------------------------------------


def test_one_message_is_kept_as_is() -> None:
    message = "Use runner image contoso.azurecr.io/ade/bicep:a1b2\n\nBuilt from 0123abcd."
    assert repository.batch_message([message]) == message + "\n"


def test_duplicates_count_once() -> None:
    assert repository.batch_message(["Bump bicep", "  Bump bicep \n", "Bump bicep"]) == (
        "Bump bicep\n"
    )


def test_several_messages_get_a_summary_line_and_bullets() -> None:
    text = repository.batch_message(
        ["Use bicep:v2\n\nBuilt from abc.\nVerified.", "Use terraform:v7", "", "Use bicep:v2"]
    )
    assert text == (
        "Apply 3 catalog changes\n"
        "\n"
        "- Use bicep:v2\n"
        "  Built from abc.\n"
        "  Verified.\n"
        "- Use terraform:v7\n"
        "- Use bicep:v2\n"
    )


def test_several_distinct_messages_are_all_listed() -> None:
    text = repository.batch_message(["A\n\nbody a", "B"])
    assert text == "Apply 2 catalog changes\n\n- A\n  body a\n- B\n"


def test_co_authors_become_trailers_once_each() -> None:
    text = repository.batch_message(
        ["A", "B"],
        co_authors=[("Bot B", "b@example.test"), ("Bot B", "b@example.test"), ("C", "c@x.test")],
    )
    assert text.endswith(
        "\n\nCo-authored-by: Bot B <b@example.test>\nCo-authored-by: C <c@x.test>\n"
    )


def test_no_message_at_all_gets_a_default() -> None:
    assert repository.batch_message(["", "  \n"]) == "Update catalog\n"


# -- to_evict (the LRU's decision) --------------------------------------------------------------


def _clones(*spec: tuple[str, int, float]) -> list[CachedClone]:
    return [CachedClone(name, size, used) for name, size, used in spec]


def test_within_budget_nothing_is_evicted() -> None:
    clones = _clones(("a", 10, 1), ("b", 10, 2))
    assert repository.to_evict(clones, max_clones=2, max_bytes=20) == []
    assert repository.to_evict(clones, max_clones=5, max_bytes=None) == []


def test_over_the_count_the_least_recently_used_go_first() -> None:
    clones = _clones(("new", 1, 30), ("old", 1, 10), ("mid", 1, 20), ("newest", 1, 40))
    assert repository.to_evict(clones, max_clones=2, max_bytes=None) == ["old", "mid"]


def test_over_the_bytes_evicts_until_under() -> None:
    clones = _clones(("a", 50, 1), ("b", 30, 2), ("c", 30, 3), ("d", 30, 4))
    assert repository.to_evict(clones, max_clones=10, max_bytes=70) == ["a", "b"]
    assert repository.to_evict(clones, max_clones=10, max_bytes=90) == ["a"]


def test_clones_in_use_are_never_chosen() -> None:
    clones = _clones(("a", 1, 1), ("b", 1, 2), ("c", 1, 3))
    assert repository.to_evict(clones, max_clones=1, max_bytes=None, keep={"a"}) == ["b", "c"]


def test_a_single_clone_larger_than_the_budget_stays_when_kept() -> None:
    clones = _clones(("old", 10, 1), ("big", 1000, 2))
    assert repository.to_evict(clones, max_clones=5, max_bytes=100, keep={"big"}) == ["old"]


def test_ties_are_broken_by_name_so_the_choice_is_stable() -> None:
    clones = _clones(("b", 1, 5), ("a", 1, 5), ("c", 1, 5))
    assert repository.to_evict(clones, max_clones=1, max_bytes=None) == ["a", "b"]


# -- clone names, validation ----------------------------------------------------------------


def test_clone_names_are_readable_stable_and_distinct() -> None:
    url = "https://dev.azure.com/contoso/platform/_git/catalog"
    name = repository.clone_name(url=url, branch="main")
    assert name.startswith("catalog-main-")
    assert name == repository.clone_name(url=url, branch="main")
    assert name != repository.clone_name(url=url, branch="release/1")
    assert name != repository.clone_name(url=url + "2", branch="main")
    odd = repository.clone_name(url="git@github.com:org/my repo.git", branch="feat/x y")
    assert all(c.isalnum() or c in "._-" for c in odd)
    assert clones._NAME.fullmatch(odd)


def _change(**fields: str) -> Change:
    values = {
        "url": "https://git.example.test/catalog.git",
        "branch": "main",
        "push_branch": "",
        "message": "m",
        "author_name": "ADE Operator",
        "author_email": "ade@example.test",
        **fields,
    }
    return Change(
        url=values["url"],
        branch=values["branch"],
        push_branch=values["push_branch"],
        message=values["message"],
        author_name=values["author_name"],
        author_email=values["author_email"],
        apply=lambda _tree: [],
    )


def test_a_good_change_passes() -> None:
    repository.check_change(_change())
    repository.check_change(_change(push_branch="ade/runner-updates"))
    repository.check_change(_change(url="ssh://git@git.example.test/catalog.git"))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"branch": ""}, "branch"),
        ({"branch": "-main"}, "branch"),
        ({"branch": "a..b"}, "branch"),
        ({"branch": "main.lock"}, "branch"),
        ({"branch": "has space"}, "branch"),
        ({"branch": "x:y"}, "branch"),
        ({"push_branch": "ade/"}, "push_branch"),
        ({"push_branch": "main"}, "push_branch"),
        ({"author_name": "Eve <eve@x>"}, "author_name"),
        ({"author_email": "a@b\nInjected: 1"}, "author_email"),
        ({"author_name": " "}, "author_name"),
        ({"url": "https://alice:secret@git.example.test/c.git"}, "credentials in an HTTP URL"),
        ({"url": "file:///etc"}, "unsupported git URL"),
        ({"url": "--upload-pack=evil"}, "must not start with"),
    ],
)
def test_a_malformed_change_is_refused_naming_the_field(fields: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named) as raised:
        repository.check_change(_change(**fields))
    assert "secret" not in str(raised.value).replace("secret@", "")


# -- parsing git's output -----------------------------------------------------------------------


def test_reported_paths_are_made_relative_and_kept_inside(tmp_path: pathlib.Path) -> None:
    assert gitcli._relative("./Environments/a/../b/environment.yaml", tmp_path) == (
        "Environments/b/environment.yaml"
    )
    assert gitcli._relative(str(tmp_path / "x" / "y.yaml"), tmp_path) == "x/y.yaml"
    assert gitcli._relative("../outside.yaml", tmp_path) is None
    assert gitcli._relative("/etc/passwd", tmp_path) is None
    assert gitcli._relative(".", tmp_path) is None


def test_edits_run_in_order_and_stop_at_the_first_failure(tmp_path: pathlib.Path) -> None:
    ran: list[str] = []

    def edit(name: str, fail: bool = False) -> repository.Edit:
        def apply(worktree: pathlib.Path) -> list[str]:
            ran.append(name)
            if fail:
                raise errors.StalledError("InvalidManifest", name)
            return [f"./{name}.yaml"]

        return apply

    edits = [edit("a"), edit("b", fail=True), edit("c")]
    failed: dict[int, Exception] = {}
    assert gitcli._run_edits(edits, tmp_path, failed) == {0: {"a.yaml"}}
    assert list(failed) == [1]
    assert gitcli._run_edits(edits, tmp_path, failed) == {0: {"a.yaml"}, 2: {"c.yaml"}}
    assert ran == ["a", "b", "a", "c"]


def test_push_porcelain_is_read_for_the_ref() -> None:
    rejected = (
        "To http://127.0.0.1:1/c.git\n!\tHEAD:refs/heads/main\t[rejected] (fetch first)\nDone\n"
    )
    assert gitcli._parse_push(rejected, "refs/heads/main") == ("!", "[rejected] (fetch first)")
    ok = "To http://127.0.0.1:1/c.git\n \tHEAD:refs/heads/main\tabc..def\nDone\n"
    assert gitcli._parse_push(ok, "refs/heads/main") == (" ", "abc..def")
    assert gitcli._parse_push(ok, "refs/heads/other") == ("", "")


def test_backoff_grows_is_capped_and_jittered() -> None:
    delays = [repository._backoff(n, base=0.1, cap=1.0) for n in range(1, 8)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[4:])
    assert len({repository._backoff(3, base=0.1, cap=1.0) for _ in range(20)}) > 1


# -- the lock registry -------------------------------------------------------------------------


async def test_one_repository_branch_is_written_by_one_at_a_time() -> None:
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    async def hold(url: str, branch: str, label: str) -> None:
        async with repository.repository_lock(url=url, branch=branch):
            inside.append(label)
            overlaps.append(tuple(inside))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside.remove(label)

    await asyncio.gather(
        hold("u", "main", "a"),
        hold("u", "main", "b"),
        hold("u", "other", "c"),
        hold("v", "main", "d"),
    )
    assert all(not ({"a", "b"} <= set(seen)) for seen in overlaps)
    assert any(len(seen) > 1 for seen in overlaps)  # other repositories did run alongside
    assert clones._LOCKS.get(asyncio.get_running_loop()) == {}


def test_a_cache_needs_room_for_one_clone(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="max_clones"):
        repository.CloneCache(tmp_path, max_clones=0)
