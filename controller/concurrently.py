"""Work run beside other work in one task, never left behind: `beside`.

A step that needs two independent answers (a tag's digest and an image's conformance; an image's
layers and its base image's config) asks for both at once, so its time is the longer of the two,
not their sum. What runs beside is awaited by the body that needs it; when the body leaves early
(it raised, or was cancelled), what runs beside is cancelled and waited for, so it never outlives
the step, and its own failure, which nobody needs any more, is not reported as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


@contextlib.asynccontextmanager
async def beside(work: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Task[T]]:
    """Run `work` as a task for the duration of the block; the block awaits the task for its
    result. Leaving the block cancels the task if it is still running and waits for it."""
    task = asyncio.ensure_future(work)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: an answer nobody awaited is not an error to log
