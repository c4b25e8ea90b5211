"""The operator with tracemalloc on, for the scale benchmark's breakdown of memory per object.

`python -m tests.env.memtrace` runs the operator (`controller.__main__.main`) with tracemalloc
tracing `ADE_MEMTRACE_FRAMES` frames (default 1). On SIGUSR2 it writes, into the folder
`ADE_MEMTRACE_DIR`, `snapshot-<n>.pickle` (a tracemalloc snapshot) and `objects-<n>.json` (the
live objects gc tracks, counted by type, and the asyncio tasks by the coroutine they run), then
`done-<n>` once both are complete. Test-only: tracing roughly doubles the operator's memory and
slows it, so the production entry point never turns it on. `compare` reads two dumps and
returns what grew, by source line and by object type.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import os
import pathlib
import signal
import sys
import tracemalloc
from types import FrameType
from typing import Any

DIR_ENV = "ADE_MEMTRACE_DIR"
FRAMES_ENV = "ADE_MEMTRACE_FRAMES"


def _task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", type(coro).__name__)


def dump(folder: pathlib.Path, index: int) -> None:
    """Write snapshot `index` (tracemalloc, gc counts, tasks) into `folder`."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    snapshot.dump(str(folder / f"snapshot-{index}.pickle"))
    types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    try:
        tasks = collections.Counter(_task_name(t) for t in asyncio.all_tasks())
    except RuntimeError:  # no running loop (before kopf started)
        tasks = collections.Counter()
    traced, peak = tracemalloc.get_traced_memory()
    (folder / f"objects-{index}.json").write_text(
        json.dumps(
            {
                "types": dict(types.most_common(200)),
                "tasks": dict(tasks),
                "traced": traced,
                "peak": peak,
            }
        )
    )
    (folder / f"done-{index}").touch()


def compare(
    folder: pathlib.Path, before: int, after: int, *, top: int = 25
) -> dict[str, list[tuple[str, int, int]]]:
    """What grew from dump `before` to dump `after`: (where, bytes, count) by source line and by
    file, and (type, count, 0) for gc-tracked objects and asyncio tasks."""
    old = tracemalloc.Snapshot.load(str(folder / f"snapshot-{before}.pickle"))
    new = tracemalloc.Snapshot.load(str(folder / f"snapshot-{after}.pickle"))
    result: dict[str, list[tuple[str, int, int]]] = {}
    for key in ("lineno", "filename"):
        stats = new.compare_to(old, key)
        stats.sort(key=lambda s: s.size_diff, reverse=True)
        result[key] = [(str(s.traceback), s.size_diff, s.count_diff) for s in stats[:top]]
    counts = [
        json.loads((folder / f"objects-{index}.json").read_text()) for index in (before, after)
    ]
    for key in ("types", "tasks"):
        grown = {k: v - counts[0][key].get(k, 0) for k, v in counts[1][key].items()}
        ranked = sorted(grown.items(), key=lambda kv: kv[1], reverse=True)[:top]
        result[key] = [(name, diff, 0) for name, diff in ranked]
    result["traced"] = [("traced", counts[1]["traced"] - counts[0]["traced"], 0)]
    return result


def main() -> int:
    folder = pathlib.Path(os.environ[DIR_ENV])
    folder.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get(FRAMES_ENV, "1")))
    dumps = iter(range(1_000_000))

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        dump(folder, next(dumps))

    signal.signal(signal.SIGUSR2, on_signal)
    from controller import __main__ as entry  # noqa: PLC0415 - traced from its first import

    return entry.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
