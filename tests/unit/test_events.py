"""Selection of Kubernetes Events from condition transitions (controller.observe.events)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import conditions as types
from controller.observe import events
from controller.observe.events import Event


def cond(type_: str, status: str, reason: str, message: str = "msg") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2024-01-01T00:00:00Z",
    }


READY_TRUE = cond(types.READY, types.TRUE, "Succeeded", "image pushed")


def test_no_event_when_nothing_changes() -> None:
    assert events.transitions([READY_TRUE], [READY_TRUE]) == []


def test_no_event_when_only_message_changes() -> None:
    old = [cond(types.READY, types.FALSE, "NotImplemented", "a")]
    new = [cond(types.READY, types.FALSE, "NotImplemented", "b")]
    assert events.transitions(old, new) == []


def test_no_event_when_only_step_conditions_change() -> None:
    old = [READY_TRUE, cond(types.BUILT, types.FALSE, "X")]
    new = [READY_TRUE, cond(types.BUILT, types.TRUE, "Y")]
    assert events.transitions(old, new) == []


def test_no_event_without_ready() -> None:
    assert events.transitions([], []) == []
    assert events.transitions([READY_TRUE], []) == []


def test_normal_event_when_ready_becomes_true() -> None:
    old = [cond(types.READY, types.FALSE, "Progressing")]
    assert events.transitions(old, [READY_TRUE]) == [Event("Normal", "Succeeded", "image pushed")]


def test_event_for_first_ready() -> None:
    assert events.transitions([], [READY_TRUE]) == [Event("Normal", "Succeeded", "image pushed")]


def test_event_on_status_change_same_reason() -> None:
    old = [cond(types.READY, types.UNKNOWN, "Succeeded")]
    new = [cond(types.READY, types.FALSE, "Succeeded", "now false")]
    assert events.transitions(old, new) == [Event("Warning", "Succeeded", "now false")]


def test_event_on_reason_change_same_status() -> None:
    old = [cond(types.READY, types.FALSE, "RegistryUnreachable")]
    new = [cond(types.READY, types.FALSE, "BuildFailed", "exit 1")]
    assert events.transitions(old, new) == [Event("Warning", "BuildFailed", "exit 1")]


@pytest.mark.parametrize("reason", [types.Reason.PROGRESSING, types.Reason.SUSPENDED])
def test_benign_false_reasons_are_normal(reason: str) -> None:
    new = [cond(types.READY, types.FALSE, reason, "m")]
    assert events.transitions([READY_TRUE], new) == [Event("Normal", reason, "m")]


@pytest.mark.parametrize(
    "reason", [types.Reason.NOT_IMPLEMENTED, types.Reason.RECONCILE_ERROR, "Whatever"]
)
def test_other_false_reasons_are_warnings(reason: str) -> None:
    new = [cond(types.READY, types.FALSE, reason, "m")]
    assert events.transitions([READY_TRUE], new) == [Event("Warning", reason, "m")]


def test_warning_when_stalled_appears() -> None:
    new = [
        cond(types.READY, types.FALSE, "InvalidSpec", "spec.x: bad"),
        cond(types.STALLED, types.TRUE, "InvalidSpec", "spec.x: bad"),
    ]
    assert events.transitions([READY_TRUE], new) == [Event("Warning", "InvalidSpec", "spec.x: bad")]


def test_warning_when_stalled_appears_even_if_ready_unchanged() -> None:
    ready = cond(types.READY, types.FALSE, "InvalidSpec", "m")
    new = [ready, cond(types.STALLED, types.TRUE, "InvalidSpec", "why")]
    assert events.transitions([ready], new) == [Event("Warning", "InvalidSpec", "why")]


def test_warning_when_stalled_reason_changes() -> None:
    old = [
        cond(types.READY, types.FALSE, "InvalidSpec"),
        cond(types.STALLED, types.TRUE, "InvalidSpec"),
    ]
    new = [
        cond(types.READY, types.FALSE, "InvalidSpec"),
        cond(types.STALLED, types.TRUE, "ImageNotFound", "gone"),
    ]
    assert events.transitions(old, new) == [Event("Warning", "ImageNotFound", "gone")]


def test_no_event_while_stalled_persists() -> None:
    state = [
        cond(types.READY, types.FALSE, "InvalidSpec", "a"),
        cond(types.STALLED, types.TRUE, "InvalidSpec", "a"),
    ]
    changed = [
        cond(types.READY, types.FALSE, "InvalidSpec", "b"),
        cond(types.STALLED, types.TRUE, "InvalidSpec", "b"),
    ]
    assert events.transitions(state, changed) == []


def test_leaving_stalled_for_ready_is_normal() -> None:
    old = [
        cond(types.READY, types.FALSE, "InvalidSpec"),
        cond(types.STALLED, types.TRUE, "InvalidSpec"),
    ]
    assert events.transitions(old, [READY_TRUE]) == [Event("Normal", "Succeeded", "image pushed")]


def test_at_most_one_event() -> None:
    new = [
        cond(types.READY, types.FALSE, "A"),
        cond(types.STALLED, types.TRUE, "A"),
    ]
    assert len(events.transitions([], new)) == 1


def test_work_in_flight_is_normal_news_and_not_told_twice_from_a_stale_read() -> None:
    building = [
        cond(types.READY, types.FALSE, "Building", "build started"),
        cond(types.RECONCILING, types.TRUE, "Building", "build started"),
    ]
    first = events.transitions([], building)
    assert first == [Event("Normal", "Building", "build started")]
    # a second reconcile read the object before the first one's status landed
    assert events.transitions([], building, reported=(types.FALSE, "Building")) == []
    failed = [cond(types.READY, types.FALSE, "BuildFailed", "exit 1")]
    assert events.transitions(building, failed, reported=(types.FALSE, "Building")) == [
        Event("Warning", "BuildFailed", "exit 1")
    ]
