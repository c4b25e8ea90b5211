"""What a reconcile step is waiting on right now, for the message of a deadline that passed (pure).

The I/O packages wrap each call to a dependency in `waiting_on("the registry 127.0.0.1:5000
(token)")`; the runner runs each step under `tracking()`, and when the reconcile's deadline
cancels the step, `Tracker.pending()` names what was still in flight, so the message says which
service did not answer. The tracker travels in a context variable: calls awaited by the step,
and tasks it starts (which copy the context), note into the same tracker; anything outside a
step notes nothing.

An activity ended normally or by an error is forgotten; one ended by cancellation (the deadline)
is kept: it is the one that was waited on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator

_CURRENT: contextvars.ContextVar[Tracker | None] = contextvars.ContextVar(
    "ade_activity", default=None
)


class Tracker:
    """The activities of one step still in flight (or cancelled), oldest first."""

    def __init__(self) -> None:
        self._open: list[str] = []

    def pending(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self._open))


@contextlib.contextmanager
def tracking() -> Iterator[Tracker]:
    """A new tracker for the calls made inside the block."""
    tracker = Tracker()
    token = _CURRENT.set(tracker)
    try:
        yield tracker
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def waiting_on(what: str) -> Iterator[None]:
    """Note `what` (a dependency and the call, never a credential) while the block runs."""
    tracker = _CURRENT.get()
    if tracker is None:
        yield
        return
    tracker._open.append(what)
    try:
        yield
    except asyncio.CancelledError:
        raise  # kept: the deadline cancelled the step while this was waited on
    except BaseException:
        tracker._open.remove(what)
        raise
    tracker._open.remove(what)
