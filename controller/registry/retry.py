"""When and how long the registry client waits before trying a request again (pure).

Connection errors, time-outs, 408, 429 and 5xx (but 501, 505) are retried, with exponential
backoff and equal jitter (`controller.backoff.delay`), waiting at least `Retry-After` (seconds or
an HTTP date, parsed here).
"""

from __future__ import annotations

import email.utils
import math
import time


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def is_retryable(status: int) -> bool:
    return status in (408, 429) or (500 <= status <= 599 and status not in (501, 505))
