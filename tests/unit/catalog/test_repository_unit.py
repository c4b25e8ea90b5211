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
        submitter=values.get("submitter", ""),
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


# -- when a batch leaves ------------------------------------------------------------------------


def _lane(*submitted: float) -> repository._Lane:
    lane = repository._Lane("https://git.example.test/c.git", "main", "")
    loop = asyncio.new_event_loop()
    try:
        for when in submitted:
            lane.pending.append(repository._Pending(_change(), loop.create_future(), when))
    finally:
        loop.close()
    return lane


def _writer(
    tmp_path: pathlib.Path, *, window: float, max_window: float = 2.0
) -> repository.CatalogWriter:
    cache = repository.CloneCache(tmp_path)
    return repository.CatalogWriter(cache=cache, window=window, max_window=max_window)


def test_a_lone_change_leaves_after_the_window(tmp_path: pathlib.Path) -> None:
    writer = _writer(tmp_path, window=0.2, max_window=2.0)
    assert writer._due(_lane(10.0)) == pytest.approx(10.2)


def test_a_batch_collects_while_changes_keep_coming_up_to_max_window(
    tmp_path: pathlib.Path,
) -> None:
    writer = _writer(tmp_path, window=0.2, max_window=2.0)
    assert writer._due(_lane(10.0, 10.15, 10.3)) == pytest.approx(10.5)  # 0.2 s after the last
    steady = _lane(*(10.0 + 0.1 * i for i in range(30)))  # one every 0.1 s for 3 s
    assert writer._due(steady) == pytest.approx(12.0)  # capped: 2 s after the first


def test_after_a_batch_of_several_the_next_waits_max_window_after_it_left(
    tmp_path: pathlib.Path,
) -> None:
    writer = _writer(tmp_path, window=0.2, max_window=2.0)
    following = _lane(10.5, 10.6)
    following.left = 10.0  # a batch of several left at 10.0: changes keep coming
    assert writer._due(following) == pytest.approx(12.0)
    later = _lane(12.5)
    later.left = 10.0  # came after a quiet max_window: a lone change again
    assert writer._due(later) == pytest.approx(12.7)


def test_max_window_is_never_shorter_than_the_window(tmp_path: pathlib.Path) -> None:
    assert _writer(tmp_path, window=0.2, max_window=0.1).max_window == pytest.approx(0.2)
    assert _writer(tmp_path, window=0.2, max_window=0.1)._due(_lane(10.0, 10.1)) == (
        pytest.approx(10.2)
    )
    assert _writer(tmp_path, window=0.0)._due(_lane(10.0, 10.1)) == pytest.approx(10.1)


async def test_a_stream_of_changes_shares_a_batch_and_a_lone_one_waits_only_the_window(
    tmp_path: pathlib.Path,
) -> None:
    """The writer with its git part replaced by a recorder (a write takes 0.3 s): ten changes
    50 ms apart leave in one batch (the window, 200 ms, never passes without one); changes that
    come while it is written wait until `max_window` after it left; a lone change on a quiet
    lane waits only the window."""
    batches: list[tuple[float, int]] = []

    class Recording(repository.CatalogWriter):
        async def _write(self, lane: repository._Lane, batch: list[repository._Pending]) -> None:
            batches.append((loop.time(), len(batch)))
            await asyncio.sleep(0.3)
            for pending in batch:
                pending.future.set_result(repository.Result("0" * 40, "refs/heads/main", (), False))

    loop = asyncio.get_running_loop()
    writer = Recording(cache=repository.CloneCache(tmp_path), window=0.2, max_window=0.8)
    started = loop.time()
    submitted = []
    for _ in range(10):
        submitted.append(asyncio.create_task(writer.submit(_change())))
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.25)  # the batch of ten is being written (from 0.65 s, for 0.3 s)
    assert [size for _, size in batches] == [10]
    assert batches[0][0] - started >= 0.45 + 0.2

    await asyncio.gather(*submitted, writer.submit(_change()), writer.submit(_change()))
    assert [size for _, size in batches] == [10, 2]
    assert batches[1][0] - batches[0][0] >= 0.8

    await asyncio.sleep(0.9)
    lone = loop.time()
    await writer.submit(_change())
    assert [size for _, size in batches] == [10, 2, 1]
    assert 0.2 <= batches[2][0] - lone < 0.7
    await writer.aclose()


class _Recording(repository.CatalogWriter):
    """The writer with its git part replaced by a recorder: (loop time, submitters) per batch;
    a write takes `seconds`."""

    def __init__(
        self, tmp_path: pathlib.Path, *, window: float, max_window: float, seconds: float = 0.0
    ) -> None:
        super().__init__(
            cache=repository.CloneCache(tmp_path), window=window, max_window=max_window, eager=True
        )
        self.batches: list[tuple[float, list[str]]] = []
        self.seconds = seconds

    async def _write(self, lane: repository._Lane, batch: list[repository._Pending]) -> None:
        loop = asyncio.get_running_loop()
        self.batches.append((loop.time(), [pending.change.submitter for pending in batch]))
        await asyncio.sleep(self.seconds)
        for pending in batch:
            pending.future.set_result(repository.Result("0" * 40, "refs/heads/main", (), False))


URL = "https://git.example.test/catalog.git"


async def test_eager_a_lone_change_nobody_else_is_expected_for_leaves_at_once(
    tmp_path: pathlib.Path,
) -> None:
    writer = _Recording(tmp_path, window=0.5, max_window=2.0)
    writer.expect("ns/other", url="https://git.example.test/elsewhere.git", branch="main")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await writer.submit(_change(submitter="ns/a"))
    assert [who for _, who in writer.batches] == [["ns/a"]]
    assert writer.batches[0][0] - started < 0.2  # not the 0.5 s window
    await writer.aclose()


async def test_eager_a_batch_waits_for_the_expected_and_leaves_when_the_last_is_in(
    tmp_path: pathlib.Path,
) -> None:
    """Three builds in flight on one catalog: the first two verified changes wait (a window of
    0.3 s passes with no new one: still waiting, up to `max_window`), and the batch leaves the
    moment the third comes in, well before `max_window`."""
    writer = _Recording(tmp_path, window=0.3, max_window=5.0)
    for who in ("ns/a", "ns/b", "ns/c"):
        writer.expect(who, url=URL, branch="main")
    loop = asyncio.get_running_loop()
    first = asyncio.create_task(writer.submit(_change(submitter="ns/a")))
    second = asyncio.create_task(writer.submit(_change(submitter="ns/b")))
    await asyncio.sleep(0.8)
    assert writer.batches == []  # waiting for ns/c, past the 0.3 s window
    assert writer.expected(url=URL, branch="main") == frozenset({"ns/c"})
    last = loop.time()
    await asyncio.gather(first, second, writer.submit(_change(submitter="ns/c")))
    assert [sorted(who) for _, who in writer.batches] == [["ns/a", "ns/b", "ns/c"]]
    assert writer.batches[0][0] - last < 0.2
    assert writer.expected(url=URL, branch="main") == frozenset()
    await writer.aclose()


async def test_eager_one_expected_no_longer_coming_lets_the_batch_go(
    tmp_path: pathlib.Path,
) -> None:
    writer = _Recording(tmp_path, window=0.3, max_window=5.0)
    writer.expect("ns/a", url=URL, branch="main")
    writer.expect("ns/failed", url=URL, branch="main")
    loop = asyncio.get_running_loop()
    submitted = asyncio.create_task(writer.submit(_change(submitter="ns/a")))
    await asyncio.sleep(0.5)
    assert writer.batches == []
    gone = loop.time()
    writer.unexpect("ns/failed")  # its build failed
    await submitted
    assert [who for _, who in writer.batches] == [["ns/a"]]
    assert writer.batches[0][0] - gone < 0.2
    await writer.aclose()


async def test_eager_an_expected_change_that_never_comes_delays_at_most_max_window(
    tmp_path: pathlib.Path,
) -> None:
    writer = _Recording(tmp_path, window=0.2, max_window=0.8)
    writer.expect("ns/stuck", url=URL, branch="main")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await writer.submit(_change(submitter="ns/a"))
    waited = writer.batches[0][0] - started
    assert 0.75 <= waited < 1.3  # waited for ns/stuck, but no longer than max_window
    await writer.aclose()


def test_eager_in_a_wave_the_windows_rule(tmp_path: pathlib.Path) -> None:
    """After a batch of several left, the next waits `max_window` after it even when nobody
    known is still coming: in a wave, objects not reconciled yet are not expected either."""
    writer = repository.CatalogWriter(
        cache=repository.CloneCache(tmp_path), window=0.2, max_window=2.0, eager=True
    )
    following = _lane(10.5, 10.6)
    following.left = 10.0
    assert writer._due(following) == pytest.approx(12.0)
    quiet = _lane(12.5)
    quiet.left = 10.0  # the wave is over: a lone change, nobody expected, goes at once
    assert writer._due(quiet) == 0.0


def test_expecting_another_lane_replaces_the_first() -> None:
    writer = repository.CatalogWriter(cache=repository.CloneCache(pathlib.Path("/nonexistent")))
    writer.expect("ns/a", url=URL, branch="main")
    writer.expect("ns/a", url=URL, branch="release")
    assert writer.expected(url=URL, branch="main") == frozenset()
    assert writer.expected(url=URL, branch="release") == frozenset({"ns/a"})
    writer.unexpect("ns/a")
    writer.unexpect("ns/a")  # twice is harmless
    assert writer.expected(url=URL, branch="release") == frozenset()


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


# -- a ticket: what a caller that keeps its change queued sees -----------------------------------


def _ticket() -> tuple[repository.Ticket, repository._Pending]:
    future: asyncio.Future[repository.Result] = asyncio.get_running_loop().create_future()
    pending = repository._Pending(_change(), future, 0.0)
    return repository.Ticket(pending), pending


def _rejected() -> repository.CatalogPushRejected:
    return repository.CatalogPushRejected(
        "push rejected 25 times in a row (the change stays queued and is pushed again)",
        purpose="catalog",
        url="https://git.example.test/c.git",
        ref="main",
    )


async def test_a_lost_round_is_reported_to_the_waiter_and_the_change_stays_queued() -> None:
    ticket, pending = _ticket()
    waiter = asyncio.create_task(ticket.wait())
    await asyncio.sleep(0)
    assert ticket.waited
    pending.round_lost(_rejected())
    with pytest.raises(repository.CatalogPushRejected, match="stays queued") as lost:
        await waiter
    assert lost.value is not pending.lost  # each waiter its own copy
    assert not ticket.done()
    assert not ticket.waited
    # a later wait waits for what comes next, not the round already reported
    again = asyncio.create_task(ticket.wait())
    await asyncio.sleep(0)
    assert not again.done()
    result = repository.Result("a" * 40, "refs/heads/main", ("x.yaml",), True)
    pending.future.set_result(result)
    assert await again == result
    assert ticket.commit() == "a" * 40


async def test_a_settled_ticket_answers_at_once_and_calls_back() -> None:
    ticket, pending = _ticket()
    called: list[str] = []
    ticket.add_done_callback(lambda: called.append(ticket.commit()))
    pending.future.set_exception(_rejected().copy())
    await asyncio.sleep(0)
    assert called == [""]  # failed: no commit
    with pytest.raises(repository.CatalogPushRejected):
        await ticket.wait()


async def test_a_withdrawn_ticket_says_so() -> None:
    ticket, _ = _ticket()
    waiter = asyncio.create_task(ticket.wait())
    await asyncio.sleep(0)
    ticket.withdraw()
    with pytest.raises(repository.Withdrawn) as withdrawn:
        await waiter
    assert isinstance(withdrawn.value, errors.TransientError)
    assert ticket.done()
    assert ticket.commit() == ""


async def test_cancelling_a_waiter_leaves_the_change_queued() -> None:
    ticket, _ = _ticket()
    waiter = asyncio.create_task(ticket.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not ticket.done()
    assert not ticket.waited
