"""One git process: started without a shell, in its own process group, killed with its group
when the caller is cancelled or times out; its command and failures logged at DEBUG, scrubbed.

Every git command of the operator runs through `run_git`. Timing a whole operation against a
server (several processes) and reporting it (`metrics.report_git_operation`) is the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pathlib
import shlex
import signal
from collections.abc import Mapping
from typing import IO

from controller.git import credentials as credentials_
from controller.git.credentials import Credentials

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Completed:
    """A finished git process: exit status and output (`stderr` is raw: scrub before showing)."""

    returncode: int
    stdout: str
    stderr: str


async def run_git(
    *args: str,
    cwd: pathlib.Path,
    env: Mapping[str, str],
    credentials: Credentials,
    stdout: IO[bytes] | None = None,
) -> Completed:
    """Run `git *args` (never through a shell) with exactly `env`, in its own process group that
    is killed if the caller is cancelled or times out. Logged at DEBUG, scrubbed of `credentials`.
    """
    shown = credentials_.scrub(shlex.join(["git", *args]), credentials)
    logger.debug("running %s", shown)
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout if stdout is not None else asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # one process group: git, git-remote-http, ssh
    )
    try:
        out, err = await process.communicate()
    finally:
        if process.returncode is None:  # timed out or cancelled: leave nothing behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    stderr = err.decode(errors="replace")
    if process.returncode != 0:
        logger.debug(
            "%s exited with %s: %s",
            shown,
            process.returncode,
            credentials_.scrub(stderr, credentials),
        )
    return Completed(process.returncode or 0, (out or b"").decode(errors="replace"), stderr)
