"""When a failed build is tried again by itself: transient failures only, bounded, backing off.

A build that failed in its own steps (a `RUN` that exits non-zero, a Dockerfile error, refused
credentials) fails the same way every time: it waits for a change of its inputs or a manual
trigger. A build that failed on the way to the registry (a reset connection, a 5xx, a cancelled
blob upload) is likely to pass as is, so it is started again after `delay`, then twice that, …
up to `retries` times (`controller.backoff.delay`, no cap, no jitter).
Pure.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from controller import backoff
from controller.api import status as status_

_TRANSIENT = re.compile(
    r"failed to push|failed to copy|failed to do request|error writing (?:layer )?blob"
    r"|context canceled|connection reset by peer|broken pipe|i/o timeout"
    r"|tls handshake timeout|unexpected eof|no active session|unexpected commit digest"
    r"|provided digest did not match|\b(?:429|500|502|503|504)\b|toomanyrequests"
    r"|service unavailable|bad gateway|gateway timeout",
    re.IGNORECASE,
)
_PERMANENT = re.compile(
    r"did not complete successfully|exit code:|\b40[13]\b|unauthorized|denied"
    r"|authentication required|dockerfile parse error|failed to parse|ran past its deadline",
    re.IGNORECASE,
)


def transient(message: str) -> bool:
    """Whether a build's failure message says the registry or the network failed, not the build."""
    return bool(_TRANSIENT.search(message)) and not _PERMANENT.search(message)


@dataclasses.dataclass(frozen=True)
class Policy:
    retries: int = 2
    """Automatic retries of one build key after a transient failure (0: none)."""
    delay: float = 15.0
    """Seconds before the first automatic retry; each next one waits twice as long."""


@dataclasses.dataclass(frozen=True)
class Retry:
    """The next automatic attempt of a failed build."""

    attempt: int
    retries: int
    """How many automatic retries this attempt makes (1 for the first)."""
    wait: float
    """Seconds still to wait before it starts (0: now)."""


def automatic(policy: Policy, record: status_.BuildRecord, now: datetime.datetime) -> Retry | None:
    """The automatic retry a failed build record is due, or None when it waits for a change."""
    if record.result is not status_.BuildResult.FAILED or not transient(record.message):
        return None
    done = record.retries
    if done >= policy.retries:
        return None
    delay = backoff.delay(done + 1, base=policy.delay)
    finished = status_.parse_timestamp(record.finished_at)
    elapsed = (now - finished).total_seconds() if finished is not None else delay
    return Retry(attempt=record.attempt + 1, retries=done + 1, wait=max(0.0, delay - elapsed))


def summary(message: str, limit: int = 240) -> str:
    """The line of a build log saying what failed: BuildKit's last `error:` line, else the last."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error:")]
    chosen = (errors or lines or [""])[-1]
    return chosen if len(chosen) <= limit else chosen[: limit - 1] + "…"
