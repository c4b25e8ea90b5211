"""Merging of status conditions with kstatus semantics (controller.observe.conditions)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import conditions as types
from controller.observe import conditions
from controller.observe.conditions import Condition

T0 = "2024-01-01T00:00:00Z"
T1 = "2024-01-02T00:00:00Z"


def stored(
    type_: str,
    status: str = types.TRUE,
    reason: str = "Succeeded",
    message: str = "ok",
    *,
    time: str = T0,
    generation: int = 1,
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "observedGeneration": generation,
        "lastTransitionTime": time,
        "reason": reason,
        "message": message,
    }


def test_factories_set_status() -> None:
    assert Condition.true("Ready", "R", "m") == Condition("Ready", "True", "R", "m")
    assert Condition.false("Ready", "R", "m").status == "False"
    assert Condition.unknown("Ready", "R", "m").status == "Unknown"


def test_new_condition_gets_now_and_generation() -> None:
    merged = conditions.merge(
        [],
        {types.READY: Condition.true(types.READY, "Succeeded", "all good")},
        generation=3,
        now=T1,
    )
    assert merged == [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 3,
            "lastTransitionTime": T1,
            "reason": "Succeeded",
            "message": "all good",
        }
    ]


def test_same_status_keeps_transition_time_but_refreshes_the_rest() -> None:
    previous = [stored(types.READY, types.FALSE, "Progressing", "building", generation=1)]
    merged = conditions.merge(
        previous,
        {types.READY: Condition.false(types.READY, "BuildFailed", "exit 1")},
        generation=2,
        now=T1,
    )
    assert merged == [
        stored(types.READY, types.FALSE, "BuildFailed", "exit 1", time=T0, generation=2)
    ]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (types.FALSE, types.TRUE),
        (types.TRUE, types.FALSE),
        (types.UNKNOWN, types.TRUE),
        (types.TRUE, types.UNKNOWN),
    ],
)
def test_status_change_moves_transition_time(before: str, after: str) -> None:
    merged = conditions.merge(
        [stored(types.BUILT, before, "X", "x")],
        {types.BUILT: Condition(types.BUILT, after, "X", "x")},
        generation=1,
        now=T1,
    )
    assert merged[0]["status"] == after
    assert merged[0]["lastTransitionTime"] == T1


def test_none_removes_condition() -> None:
    previous = [stored(types.READY, types.FALSE), stored(types.RECONCILING), stored(types.STALLED)]
    merged = conditions.merge(
        previous, {types.RECONCILING: None, types.STALLED: None}, generation=1, now=T1
    )
    assert [c["type"] for c in merged] == [types.READY]
    assert merged[0] == previous[0]


def test_none_for_absent_condition_is_harmless() -> None:
    assert conditions.merge([], {types.STALLED: None}, generation=1, now=T1) == []


def test_untouched_types_are_kept_verbatim() -> None:
    foreign = {"type": "example.com/Custom", "status": "True", "reason": "Theirs", "extra": 1}
    built = stored(types.BUILT, generation=7)
    merged = conditions.merge(
        [foreign, built],
        {types.READY: Condition.true(types.READY, "Succeeded", "ok")},
        generation=9,
        now=T1,
    )
    assert foreign in merged
    assert built in merged
    assert len(merged) == 3


def test_merge_does_not_mutate_previous() -> None:
    previous = [stored(types.READY, types.FALSE, "A", "a")]
    snapshot = [dict(c) for c in previous]
    conditions.merge(
        previous, {types.READY: Condition.true(types.READY, "B", "b")}, generation=2, now=T1
    )
    assert previous == snapshot


def test_ordering_summary_then_steps_then_others() -> None:
    previous = [
        stored("Zeta"),
        stored(types.CATALOG_SYNCED),
        stored("Alpha"),
        stored(types.BUILT),
        stored(types.STALLED),
    ]
    desired: dict[str, Condition | None] = {
        types.INPUTS_RESOLVED: Condition.true(types.INPUTS_RESOLVED, "R", "m"),
        types.READY: Condition.false(types.READY, "R", "m"),
        types.VERIFIED: Condition.true(types.VERIFIED, "R", "m"),
        types.RECONCILING: Condition.true(types.RECONCILING, "R", "m"),
        types.REGISTRY_ACCESS: Condition.true(types.REGISTRY_ACCESS, "R", "m"),
    }
    merged = conditions.merge(previous, desired, generation=1, now=T1)
    assert [c["type"] for c in merged] == [
        types.READY,
        types.RECONCILING,
        types.STALLED,
        types.INPUTS_RESOLVED,
        types.REGISTRY_ACCESS,
        types.BUILT,
        types.VERIFIED,
        types.CATALOG_SYNCED,
        "Alpha",
        "Zeta",
    ]


def test_long_message_is_cut() -> None:
    long = "x" * (conditions.MAX_MESSAGE + 100)
    merged = conditions.merge(
        [], {types.READY: Condition.false(types.READY, "R", long)}, generation=1, now=T1
    )
    message = merged[0]["message"]
    assert len(message) == conditions.MAX_MESSAGE
    assert message.endswith("…")
    assert message[:-1] == long[: conditions.MAX_MESSAGE - 1]


def test_message_at_limit_is_not_cut() -> None:
    exact = "y" * conditions.MAX_MESSAGE
    merged = conditions.merge(
        [], {types.READY: Condition.false(types.READY, "R", exact)}, generation=1, now=T1
    )
    assert merged[0]["message"] == exact


def test_merging_twice_is_stable() -> None:
    desired: dict[str, Condition | None] = {
        types.READY: Condition.true(types.READY, "Succeeded", "ok"),
        types.STALLED: None,
        types.BUILT: Condition.true(types.BUILT, "Built", "pushed"),
    }
    first = conditions.merge([], desired, generation=1, now=T0)
    second = conditions.merge(first, desired, generation=1, now=T1)
    assert second == first


def test_find_and_is_true() -> None:
    items = [stored(types.READY, types.FALSE), stored(types.BUILT, types.TRUE)]
    assert conditions.find(items, types.BUILT) == items[1]
    assert conditions.find(items, types.STALLED) is None
    assert conditions.is_true(items, types.BUILT)
    assert not conditions.is_true(items, types.READY)
    assert not conditions.is_true(items, types.STALLED)
    assert not conditions.is_true([], types.READY)
