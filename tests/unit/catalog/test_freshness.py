"""`controller.catalog.freshness`: when the catalog writer pushes on a head it saw without a
fetch first, and when a prefetch is worth doing."""

from __future__ import annotations

from controller.catalog import freshness

KEY = ("https://git.test/catalog.git", "main")


def test_a_head_never_seen_is_fetched_first() -> None:
    heads = freshness.Heads()
    assert not heads.optimistic(KEY, 100.0)
    assert heads.prefetch_due(KEY, 100.0)


def test_a_head_seen_lately_is_pushed_on_until_it_is_old() -> None:
    heads = freshness.Heads()
    heads.saw(KEY, 100.0)
    assert heads.optimistic(KEY, 100.0 + freshness.SEEN_SECONDS - 1)
    assert not heads.optimistic(KEY, 100.0 + freshness.SEEN_SECONDS)
    assert not heads.optimistic(("https://git.test/other.git", "main"), 101.0)


def test_a_lost_race_means_fetch_first_for_a_while_even_after_a_new_sighting() -> None:
    heads = freshness.Heads()
    heads.saw(KEY, 100.0)
    heads.lost_race(KEY, 110.0)
    assert not heads.optimistic(KEY, 110.0)
    heads.saw(KEY, 111.0)  # fetched and pushed since
    assert not heads.optimistic(KEY, 112.0)
    heads.saw(KEY, 110.0 + freshness.CONTENDED_SECONDS + 1)
    assert heads.optimistic(KEY, 110.0 + freshness.CONTENDED_SECONDS + 2)


def test_trusting_for_zero_seconds_always_fetches_first() -> None:
    heads = freshness.Heads(seen_for=0)
    heads.saw(KEY, 100.0)
    assert not heads.optimistic(KEY, 100.0)


def test_a_forgotten_clone_is_fetched_first() -> None:
    heads = freshness.Heads()
    heads.saw(KEY, 100.0)
    heads.forget(KEY)
    assert not heads.optimistic(KEY, 100.5)


def test_a_prefetch_is_skipped_right_after_the_head_was_seen() -> None:
    heads = freshness.Heads()
    heads.saw(KEY, 100.0)
    assert not heads.prefetch_due(KEY, 100.0 + freshness.PREFETCH_AFTER_SECONDS / 2)
    assert heads.prefetch_due(KEY, 100.0 + freshness.PREFETCH_AFTER_SECONDS)
