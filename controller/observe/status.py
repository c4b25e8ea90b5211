"""Pure status diffing: turn the old and the new status into the smallest merge patch.

An unchanged status yields an empty patch, and an empty patch is never sent: this is what keeps
an idle operator from writing to the API server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
