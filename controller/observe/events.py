"""Pure selection of Kubernetes Events: one per transition of the summary, never per reconcile.

An Event is due when `Ready` changes status or reason, or when `Stalled` appears; a reconcile that
changes nothing in the summary posts nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from controller.api import conditions as types
from controller.observe import conditions


@dataclasses.dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def transitions(
    old: Sequence[Mapping[str, Any]],
    new: Sequence[Mapping[str, Any]],
    *,
    reported: tuple[str, str] | None = None,
) -> list[Event]:
    """The Events that the change from `old` to `new` conditions deserves. `reported` is the
    Ready (status, reason) this process last reported for the object: `old` may be read before
    that report landed (two reconciles close together), and the same news is not told twice."""
    before = conditions.find(old, types.READY)
    after = conditions.find(new, types.READY)
    stalled_before = conditions.find(old, types.STALLED)
    stalled_after = conditions.find(new, types.STALLED)
    if stalled_after is not None and (
        stalled_before is None or stalled_before.get("reason") != stalled_after.get("reason")
    ):
        return [Event("Warning", str(stalled_after["reason"]), str(stalled_after["message"]))]
    if after is None:
        return []
    key_before = None if before is None else (before.get("status"), before.get("reason"))
    key_after = (after.get("status"), after.get("reason"))
    if key_after in (key_before, reported):
        return []
    in_flight = conditions.is_true(new, types.RECONCILING)  # a build runs: news, not trouble
    kind: Literal["Normal", "Warning"] = (
        "Normal" if after.get("status") == types.TRUE or _benign(after) or in_flight else "Warning"
    )
    return [Event(kind, str(after["reason"]), str(after["message"]))]


_BENIGN_REASONS = frozenset({types.Reason.PROGRESSING, types.Reason.SUSPENDED})


def _benign(condition: Mapping[str, Any]) -> bool:
    return condition.get("reason") in _BENIGN_REASONS
