"""Typed errors that tell the reconciler what to do next, in the manner of Flux's reconcilers.

- `StalledError`: the user must change something; no retry until the object changes.
- `TransientError`: the world is not ready yet (network, registry, API); retry with backoff.
- `SpecError`: a `StalledError` about one field of the spec, named by its full path.

Messages must never carry a credential: build them with `redact` when they quote a URL.
"""

from __future__ import annotations

import re


class ReconcileError(Exception):
    """Base: carries a condition reason and a human message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class StalledError(ReconcileError):
    """A user-fixable problem: reported with Stalled=True and not retried in a loop."""


class TransientError(ReconcileError):
    """A passing problem: reported with Ready=False and retried with backoff, or after
    `retry_after` seconds. `paced`: `retry_after` is what the failing service asked for (its
    Retry-After), so no reconcile of the object may call it sooner, whatever wakes it."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retry_after: float | None = None,
        paced: bool = False,
    ) -> None:
        super().__init__(reason, message)
        self.retry_after = retry_after
        self.paced = paced and retry_after is not None


class SpecError(StalledError):
    """A spec field the API server accepted but the operator cannot act on."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__("InvalidSpec", f"{field}: {problem}")
        self.field = field
        self.problem = problem


_USERINFO = re.compile(r"(?<![a-zA-Z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s]*@")
"""User information runs to the last "@" before the path, so a password holding "@" is covered.
A scheme is looked for only where a run of scheme characters begins (the look-behind): tried at
every letter of a long run, the search took quadratic time (a 1 MiB spec value quoted in a
message blocked the operator for hours)."""


def redact(text: str) -> str:
    """Strip user information (user:password@) from every URL in `text`."""
    return _USERINFO.sub(r"\g<scheme>***@", text)
