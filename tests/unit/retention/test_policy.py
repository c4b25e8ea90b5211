"""The retention policy: owned images only, each reason in its order, the newest N by date,
undated and young images, and the oldest deleted first."""

from __future__ import annotations

import datetime

import pytest

from controller.retention import policy

OWNER = "team/bicep"
NOW = datetime.datetime(2025, 6, 1, 12, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def _image(
    n: int,
    days_old: float | None,
    *,
    tags: tuple[str, ...] = (),
    owner: str | None = OWNER,
) -> policy.Image:
    created = None if days_old is None else NOW - days_old * DAY
    return policy.Image(_digest(n), tags, created, owner)


def _decide(
    images: list[policy.Image],
    *,
    latest: str | None = None,
    digests: frozenset[str] = frozenset(),
    tags: frozenset[str] = frozenset(),
    keep_last: int = 0,
    keep_for: datetime.timedelta = datetime.timedelta(0),
) -> policy.Decision:
    return policy.decide(
        images,
        owner=OWNER,
        latest=latest,
        referenced_digests=digests,
        referenced_tags=tags,
        keep_last=keep_last,
        keep_for=keep_for,
        now=NOW,
    )


def _reasons(decision: policy.Decision) -> dict[str, str]:
    return {kept.image.digest: kept.reason for kept in decision.kept}


def test_empty_input_decides_nothing() -> None:
    assert _decide([], keep_last=3) == policy.Decision((), (), 0)
    assert _decide([], keep_last=0) == policy.Decision((), (), 0)


def test_foreign_images_are_counted_and_never_touched() -> None:
    images = [
        _image(1, 400, owner=None),
        _image(2, 400, owner="team/other"),
        _image(3, 400, owner="other-team/bicep"),
        _image(4, 400),
    ]
    decision = _decide(images)
    assert decision.foreign == 3
    assert decision.kept == ()
    assert decision.delete == (images[3],)


def test_the_latest_is_kept_even_when_old_and_beyond_the_newest() -> None:
    images = [_image(n, 100 - n) for n in range(5)]  # image 0 is the oldest
    decision = _decide(images, latest=_digest(0), keep_last=2)
    assert _reasons(decision) == {
        _digest(0): policy.LATEST,
        _digest(4): policy.NEWEST,
        _digest(3): policy.NEWEST,
    }
    assert decision.delete == (images[1], images[2])


def test_the_latest_counts_among_the_newest() -> None:
    images = [_image(n, 10 - n) for n in range(4)]  # image 3 is the newest
    decision = _decide(images, latest=_digest(3), keep_last=2)
    assert _reasons(decision) == {_digest(3): policy.LATEST, _digest(2): policy.NEWEST}
    assert decision.delete == (images[0], images[1])


def test_referenced_by_digest_or_by_any_of_its_tags() -> None:
    images = [
        _image(1, 50, tags=("old",)),
        _image(2, 40, tags=("a", "b")),
        _image(3, 30, tags=("c",)),
    ]
    decision = _decide(images, digests=frozenset({_digest(1)}), tags=frozenset({"b", "gone"}))
    assert _reasons(decision) == {_digest(1): policy.REFERENCED, _digest(2): policy.REFERENCED}
    assert decision.delete == (images[2],)


def test_protected_images_beyond_the_newest_are_kept_on_top_of_them() -> None:
    images = [_image(n, 100 - n) for n in range(6)]
    decision = _decide(images, digests=frozenset({_digest(0), _digest(5)}), keep_last=2)
    assert _reasons(decision) == {
        _digest(5): policy.REFERENCED,
        _digest(4): policy.NEWEST,
        _digest(0): policy.REFERENCED,
    }
    assert [image.digest for image in decision.delete] == [_digest(1), _digest(2), _digest(3)]


def test_young_images_are_kept() -> None:
    images = [_image(1, 29.9), _image(2, 30), _image(3, 31), _image(4, -1)]
    decision = _decide(images, keep_for=30 * DAY)
    assert _reasons(decision) == {_digest(1): policy.YOUNG, _digest(4): policy.YOUNG}
    assert decision.delete == (images[2], images[1])


def test_undated_images_are_kept_and_not_counted_among_the_newest() -> None:
    images = [_image(1, None), _image(2, 5), _image(3, 6), _image(4, 7)]
    decision = _decide(images, keep_last=2)
    assert _reasons(decision) == {
        _digest(1): policy.UNDATED,
        _digest(2): policy.NEWEST,
        _digest(3): policy.NEWEST,
    }
    assert decision.delete == (images[3],)


def test_keep_last_zero_keeps_only_the_otherwise_protected() -> None:
    images = [_image(1, 1), _image(2, 2), _image(3, None)]
    decision = _decide(images, latest=_digest(1), keep_last=0)
    assert _reasons(decision) == {_digest(1): policy.LATEST, _digest(3): policy.UNDATED}
    assert decision.delete == (images[1],)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"latest": True, "referenced": True, "newest": True, "young": True},
            policy.LATEST,
        ),
        ({"referenced": True, "newest": True, "young": True}, policy.REFERENCED),
        ({"newest": True, "young": True}, policy.NEWEST),
        ({"young": True}, policy.YOUNG),
        ({"latest": True, "undated": True}, policy.LATEST),
        ({"referenced": True, "undated": True}, policy.REFERENCED),
        ({"undated": True}, policy.UNDATED),
    ],
)
def test_the_first_reason_in_order_is_given(fields: dict[str, bool], reason: str) -> None:
    image = _image(1, None if fields.get("undated") else 3, tags=("t",))
    decision = _decide(
        [image, _image(2, 400)],
        latest=_digest(1) if fields.get("latest") else None,
        tags=frozenset({"t"}) if fields.get("referenced") else frozenset(),
        keep_last=1 if fields.get("newest") else 0,
        keep_for=(10 if fields.get("young") else 0) * DAY,
    )
    assert decision.kept == (policy.Kept(image, reason),)


def test_equal_times_are_ordered_by_digest() -> None:
    images = [_image(3, 5), _image(1, 5), _image(2, 5)]
    decision = _decide(images, keep_last=1)
    assert _reasons(decision) == {_digest(3): policy.NEWEST}
    assert [image.digest for image in decision.delete] == [_digest(1), _digest(2)]
    assert _decide(list(reversed(images)), keep_last=1) == decision


def test_delete_is_oldest_first_and_kept_newest_first() -> None:
    images = [_image(1, 3), _image(2, 9), _image(3, None), _image(4, 1), _image(5, 7)]
    decision = _decide(images, keep_last=2)
    assert [image.digest for image in decision.delete] == [_digest(2), _digest(5)]
    assert [kept.image.digest for kept in decision.kept] == [_digest(4), _digest(1), _digest(3)]


def test_the_caller_s_mistakes_are_refused() -> None:
    with pytest.raises(ValueError, match="keep_last"):
        _decide([], keep_last=-1)
    with pytest.raises(ValueError, match="twice"):
        _decide([_image(1, 5), _image(1, 5, owner=None)])


def test_a_year_of_daily_builds() -> None:
    keep_last, keep_for = 10, 30 * DAY
    # One build a day, at noon: image n was made n days ago (image 0 is the newest).
    images = [_image(n, n, tags=(f"build-{n}",)) for n in range(365)]
    images += [_image(1000 + n, 10, owner="team/other") for n in range(4)]
    by_tag, by_digest = {200}, {300, 364}
    decision = _decide(
        images,
        latest=_digest(0),
        tags=frozenset(f"build-{n}" for n in by_tag),
        digests=frozenset(_digest(n) for n in by_digest),
        keep_last=keep_last,
        keep_for=keep_for,
    )
    newest = set(range(keep_last))
    young = {n for n in range(365) if n * DAY < keep_for}  # 0..29: exactly 30 days old is not
    referenced = by_tag | by_digest
    expected = newest | young | referenced
    assert len(expected) == len(young) + len(referenced)  # the newest 10 are all young
    reasons = _reasons(decision)
    assert set(reasons) == {_digest(n) for n in expected}
    assert len(decision.delete) == 365 - len(expected)
    assert decision.foreign == 4
    assert reasons[_digest(0)] == policy.LATEST
    assert [reasons[_digest(n)] for n in range(1, keep_last)] == [policy.NEWEST] * (keep_last - 1)
    assert {reasons[_digest(n)] for n in young - newest} == {policy.YOUNG}
    assert {reasons[_digest(n)] for n in referenced} == {policy.REFERENCED}
    assert decision.delete[0].digest == _digest(363)
    assert decision.delete[-1].digest == _digest(30)
