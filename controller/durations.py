"""Parsing of Go-style durations ("90s", "1h30m", "500ms") as written in specs and settings.

Exactly what the CRD's pattern `^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$` accepts: ASCII digits only
(`\\d` would also take fullwidth or Arabic-Indic digits), and a finite number of seconds (a
number too large for a float is refused, not turned into infinity).
"""

from __future__ import annotations

import math
import re

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse(text: str) -> float:
    """Seconds in `text`; ValueError when it is not a duration."""
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 5m, 1h30m)")
    if not math.isfinite(total):
        raise ValueError(f"not a duration: {text[:20]!r}... is too large")
    return total
