"""Pure operations on status conditions with Kubernetes (metav1.Condition) and kstatus semantics.

A condition's `lastTransitionTime` moves only when its `status` changes; reason, message and
observedGeneration are refreshed in place. Abnormal-true conditions (Reconciling, Stalled) are
removed rather than set to False.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controller.api import conditions as types


@dataclasses.dataclass(frozen=True)
class Condition:
    """The desired state of one condition; time and generation are filled in by `merge`."""

    type: str
    status: str
    reason: str
    message: str

    @classmethod
    def true(cls, type_: str, reason: str, message: str) -> Condition:
        return cls(type_, types.TRUE, reason, message)

    @classmethod
    def false(cls, type_: str, reason: str, message: str) -> Condition:
        return cls(type_, types.FALSE, reason, message)

    @classmethod
    def unknown(cls, type_: str, reason: str, message: str) -> Condition:
        return cls(type_, types.UNKNOWN, reason, message)


_ORDER = (types.READY, types.RECONCILING, types.STALLED, *types.STEP_CONDITIONS)

MAX_MESSAGE = 4096
"""Longer messages are cut: a condition is read by people in `kubectl describe`."""


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    for condition in conditions:
        if condition.get("type") == type_:
            return condition
    return None


def is_true(conditions: Iterable[Mapping[str, Any]], type_: str) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.get("status") == types.TRUE


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def merge(
    previous: Sequence[Mapping[str, Any]],
    desired: Mapping[str, Condition | None],
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """Return the new condition list.

    `desired` maps a condition type to its new state, or to None to remove it. Types not named in
    `desired` are kept untouched (another owner may have written them). The result is ordered:
    summary conditions first, then the steps in pipeline order, then any others.
    """
    by_type: dict[str, dict[str, Any]] = {str(c.get("type")): dict(c) for c in previous}
    for type_, condition in desired.items():
        if condition is None:
            by_type.pop(type_, None)
            continue
        old = by_type.get(type_)
        changed = old is None or old.get("status") != condition.status
        by_type[type_] = {
            "type": type_,
            "status": condition.status,
            "observedGeneration": generation,
            "lastTransitionTime": now if changed or old is None else old["lastTransitionTime"],
            "reason": condition.reason,
            "message": _cut(condition.message),
        }
    rank = {type_: index for index, type_ in enumerate(_ORDER)}
    return sorted(by_type.values(), key=lambda c: (rank.get(c["type"], len(rank)), c["type"]))
