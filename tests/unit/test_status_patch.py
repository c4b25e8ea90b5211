"""The smallest JSON merge patch between two statuses (controller.observe.status.merge_patch)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.observe import status
from controller.reconcile import memory as memory_


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"observedGeneration": 3},
        {"a": {"b": {"c": [1, 2]}}, "conditions": [{"type": "Ready", "status": "True"}]},
    ],
)
def test_identical_gives_empty_patch(value: dict[str, Any]) -> None:
    assert status.merge_patch(value, dict(value)) == {}


def test_changed_scalar() -> None:
    assert status.merge_patch({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": 3}


def test_new_key_added() -> None:
    assert status.merge_patch({"a": 1}, {"a": 1, "b": {"c": 2}}) == {"b": {"c": 2}}


def test_nested_diff_only_changed_leaves() -> None:
    old = {"latestImage": {"reference": "r:1", "digest": "sha256:a", "reason": "new"}, "x": 1}
    new = {"latestImage": {"reference": "r:2", "digest": "sha256:a", "reason": "new"}, "x": 1}
    assert status.merge_patch(old, new) == {"latestImage": {"reference": "r:2"}}


def test_deeply_nested_unchanged_branch_omitted() -> None:
    old = {"a": {"b": {"c": 1}, "d": {"e": 2}}}
    new = {"a": {"b": {"c": 1}, "d": {"e": 3}}}
    assert status.merge_patch(old, new) == {"a": {"d": {"e": 3}}}


def test_none_removes_existing_key() -> None:
    assert status.merge_patch({"a": 1, "b": 2}, {"a": None}) == {"a": None}


def test_none_for_existing_null_value_still_removes() -> None:
    assert status.merge_patch({"a": None}, {"a": None}) == {"a": None}


def test_none_for_missing_key_is_omitted() -> None:
    assert status.merge_patch({"a": 1}, {"b": None}) == {}


def test_nested_none_removes_only_existing() -> None:
    old = {"catalog": {"revision": "abc", "pushedAt": "t"}}
    new = {"catalog": {"revision": None, "manifests": None}}
    assert status.merge_patch(old, new) == {"catalog": {"revision": None}}


def test_keys_absent_from_new_are_left_alone() -> None:
    assert status.merge_patch({"a": 1, "b": 2}, {}) == {}


def test_lists_replaced_whole() -> None:
    old = {"builds": [{"name": "b1"}, {"name": "b2"}], "c": [1, 2, 3]}
    new = {"builds": [{"name": "b1"}, {"name": "b3"}], "c": [1, 2, 3]}
    assert status.merge_patch(old, new) == {"builds": [{"name": "b1"}, {"name": "b3"}]}


def test_list_order_matters() -> None:
    assert status.merge_patch({"l": [1, 2]}, {"l": [2, 1]}) == {"l": [2, 1]}


def test_mapping_replacing_scalar_is_sent_whole() -> None:
    assert status.merge_patch({"a": "text"}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_scalar_replacing_mapping() -> None:
    assert status.merge_patch({"a": {"b": 1}}, {"a": 5}) == {"a": 5}


def test_inputs_not_mutated() -> None:
    old = {"a": {"b": 1}}
    new = {"a": {"b": 2, "c": None}}
    status.merge_patch(old, new)
    assert old == {"a": {"b": 1}}
    assert new == {"a": {"b": 2, "c": None}}


def _apply(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _apply(result[key], value)
        else:
            result[key] = value
    return result


def test_applying_patch_yields_new_for_named_keys() -> None:
    old = {"keep": 1, "gone": 2, "nested": {"x": 1, "y": 2}, "list": [1]}
    new = {"gone": None, "nested": {"x": 5, "y": None, "z": 3}, "list": [2], "added": True}
    patched = _apply(old, status.merge_patch(old, new))
    assert patched == {"keep": 1, "nested": {"x": 5, "z": 3}, "list": [2], "added": True}
    assert status.merge_patch(patched, new) == {}


def test_apply_merge_patch_is_the_inverse_of_merge_patch() -> None:
    old = {"catalog": {"revision": "abc", "pushedAt": "t"}, "buildKey": "k", "gone": 1}
    new = {"catalog": {"revision": "def", "pushedAt": None}, "buildKey": "k", "gone": None}
    patch = status.merge_patch(old, new)
    assert status.apply_merge_patch(old, patch) == {"catalog": {"revision": "def"}, "buildKey": "k"}
    assert status.apply_merge_patch({}, {"registry": {"mode": "AnonymousPull"}}) == {
        "registry": {"mode": "AnonymousPull"}
    }


def test_a_body_read_before_the_last_write_landed_is_read_as_written() -> None:
    memory = memory_.ObjectMemory()
    read = {"catalog": {"revision": "abc"}}
    assert memory.status_for(read, "10") is read  # nothing written yet
    memory.remember({"10", "11", ""}, read, {"catalog": {"syncedRevision": "abc"}})
    written = {"catalog": {"revision": "abc", "syncedRevision": "abc"}}
    assert memory.status_for(read, "10") == written  # the same stale body again
    assert memory.status_for(read, "11") == written  # the early progress write's version
    newer = {"catalog": {"revision": "abc", "syncedRevision": "abc"}, "x": 1}
    assert memory.status_for(newer, "12") is newer  # a later read is trusted
    # a body read at a version in between (an annotation patched before the write landed):
    # its status lacks the last patch, so it is the written one that counts
    assert memory.status_for(read, "11.5") == written
    # a reconcile that wrote nothing keeps the last patch as the mark of a fresh body
    memory.remember({"12"}, newer, {})
    assert memory.status_for(read, "12.5") == newer
    assert memory.status_for(newer, "13") is newer


def test_a_status_write_overwritten_by_an_older_one_is_not_trusted_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf retries its patches while the API server is away: an older reconcile's patch may
    land after the last one. Its body lacks the last patch, like a stale read; past
    `STALE_BODY_SECONDS` it is taken as what it is, so the next reconcile writes again."""
    clock = [1000.0]
    monkeypatch.setattr("controller.reconcile.memory.time.monotonic", lambda: clock[0])
    memory = memory_.ObjectMemory()
    older = {"conditions": [{"type": "Ready", "status": "False"}]}
    memory.remember({"20"}, older, {"conditions": [{"type": "Ready", "status": "True"}]})
    written = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert memory.status_for(older, "21") == written  # soon after: a body read before it landed
    clock[0] += memory_.STALE_BODY_SECONDS
    assert memory.status_for(older, "22") is older  # later: the write was lost, read the truth
