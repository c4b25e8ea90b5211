"""A bounded byte pipe from the event loop to one worker thread (the async-to-sync adapter).

The loop `put`s the chunks of a streamed HTTP body; a worker thread reads them as a blocking
binary file (what `tarfile` in stream mode needs). At most `limit` chunks wait unread: `put`
suspends until the reader catches up, so a slow parser slows the download instead of buffering
the whole body. `end` is the end of the file; `abort` makes the reader's next read raise
`Aborted` (the download failed); `close_reader` (from the thread) says the reader is done, after
which `put` drops the chunks and returns False, so the producer can still drain the body (to
verify its digest) without buffering it.
"""

from __future__ import annotations

import asyncio
import collections
import io
import threading


class Aborted(Exception):
    """The producer gave up (its download failed or was cancelled): stop reading."""


class Pipe:
    """Create on the event loop; `put`/`end`/`abort` on the loop, `reader()` in one thread."""

    def __init__(self, *, limit: int = 8) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._offset = 0  # bytes of the first chunk already read
        self._cond = threading.Condition()
        self._ended = False
        self._aborted = False
        self._reader_gone = False
        self._room = asyncio.Event()

    # -- the producer, on the event loop ----------------------------------------------------------

    async def put(self, chunk: bytes) -> bool:
        """Hand `chunk` to the reader, waiting while `limit` chunks are unread; False (the chunk
        dropped) once the reader is gone."""
        if not chunk:
            return not self._reader_gone
        while True:
            with self._cond:
                if self._reader_gone:
                    return False
                if len(self._chunks) < self._limit:
                    self._chunks.append(chunk)
                    self._cond.notify()
                    return True
                self._room.clear()
            await self._room.wait()

    def end(self) -> None:
        """No more chunks: the reader sees the end of the file once it has read them."""
        with self._cond:
            self._ended = True
            self._cond.notify()

    def abort(self) -> None:
        """The reader's next read raises `Aborted`."""
        with self._cond:
            self._ended = self._aborted = True
            self._chunks.clear()
            self._cond.notify()

    # -- the reader, in a worker thread -----------------------------------------------------------

    def reader(self, *, buffer_size: int = 64 * 1024) -> io.BufferedReader:
        """A blocking binary file over the pipe (full reads, as `tarfile` expects)."""
        return io.BufferedReader(_Raw(self), buffer_size=buffer_size)

    def close_reader(self) -> None:
        """The reader is done: unread and later chunks are dropped."""
        with self._cond:
            self._reader_gone = True
            self._chunks.clear()
        self._loop.call_soon_threadsafe(self._room.set)

    def _readinto(self, buffer: memoryview) -> int:
        with self._cond:
            while not self._chunks and not self._ended:
                self._cond.wait()
            if self._aborted:
                raise Aborted("the download was abandoned")
            if not self._chunks:
                return 0
            head = self._chunks[0]
            count = min(len(buffer), len(head) - self._offset)
            buffer[:count] = head[self._offset : self._offset + count]
            self._offset += count
            freed = self._offset == len(head)
            if freed:
                self._chunks.popleft()
                self._offset = 0
        if freed:
            self._loop.call_soon_threadsafe(self._room.set)
        return count


class _Raw(io.RawIOBase):
    def __init__(self, pipe: Pipe) -> None:
        super().__init__()
        self._pipe = pipe

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._pipe._readinto(memoryview(buffer).cast("B"))
