"""Pure status diffing: turn the old and the new status into the smallest merge patch.

An unchanged status yields an empty patch, and an empty patch is never sent: this is what keeps
an idle operator from writing to the API server. `apply_merge_patch` is the other direction (the
status as a patch leaves it). `built_at` reads the time of the latest build
from a status and its patch (for the metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.api import status as api_status


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) that turns `old` into `new` for the keys `new` names.

    Keys of `new` whose value is None are removed from `old`; keys absent from `new` are left
    alone. Nested mappings are diffed recursively; lists are replaced whole (merge-patch rules).
    """
    patch: dict[str, Any] = {}
    for key, value in new.items():
        current = old.get(key)
        if value is None:
            if key in old:
                patch[key] = None
        elif isinstance(value, Mapping) and isinstance(current, Mapping):
            nested = merge_patch(current, value)
            if nested:
                patch[key] = nested
        elif value != current:
            patch[key] = value
    return patch


def apply_merge_patch(old: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`old` with the merge patch (RFC 7386) applied: None removes a key, mappings merge,
    anything else replaces."""
    merged = dict(old)
    for key, value in patch.items():
        current = merged.get(key)
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = apply_merge_patch(current, value)
        elif isinstance(value, Mapping):
            merged[key] = apply_merge_patch({}, value)
        else:
            merged[key] = value
    return merged


def built_at(old: Mapping[str, Any], patch: Mapping[str, Any]) -> float | None:
    """When the latest image was built (`latestImage.builtAt`, seconds since the epoch) once
    `patch` is applied to the status `old`; None when there is no image (or no valid time)."""
    latest: Any = old.get("latestImage")
    if "latestImage" in patch:
        changed = patch["latestImage"]
        latest = (
            None
            if changed is None
            else {**(latest if isinstance(latest, Mapping) else {}), **changed}
        )
    moment = api_status.parse_timestamp(
        latest.get("builtAt") if isinstance(latest, Mapping) else None
    )
    return None if moment is None else moment.timestamp()
