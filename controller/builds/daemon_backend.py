"""The BuildKitDaemon backend: `buildctl --addr ... build` against a long-running buildkitd.

The arguments come from the same renderer as the Job backend's; the request names the context
folder where the operator fetched it (buildctl uploads it) and a metadata file in a private
temporary folder. Push credentials reach buildctl as a private `DOCKER_CONFIG` folder (0700,
removed afterwards); optional mTLS files come from a folder (a mounted Secret with `ca.crt`,
`tls.crt`, `tls.key`). The digest is read from BuildKit's metadata file, parsed as JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import tempfile
from collections.abc import Mapping
from typing import Any

from controller import errors
from controller.builds import backend, buildctl, inprocess

OUTPUT_TAIL = 15


@dataclasses.dataclass(frozen=True)
class DaemonSettings:
    address: str
    tls_dir: pathlib.Path | None = None
    buildctl: str = "buildctl"


class DaemonBackend(inprocess.InProcessBackend):
    def __init__(self, *, settings: DaemonSettings, tasks: inprocess.Tasks) -> None:
        super().__init__(tasks=tasks)
        self._settings = settings

    def _prefix(self) -> list[str]:
        argv = [self._settings.buildctl, "--addr", self._settings.address]
        tls = self._settings.tls_dir
        if tls is not None:
            argv += [
                "--tlscacert", str(tls / "ca.crt"),
                "--tlscert", str(tls / "tls.crt"),
                "--tlskey", str(tls / "tls.key"),
            ]  # fmt: skip
        return argv

    async def _run(
        self, plan: backend.BuildPlan, *, docker_config: Mapping[str, Any] | None
    ) -> backend.BuildState:
        with tempfile.TemporaryDirectory(prefix="ade-build-") as scratch:
            folder = pathlib.Path(scratch)
            config_dir = folder / "docker"
            config_dir.mkdir(mode=0o700)
            (config_dir / "config.json").write_text(json.dumps(docker_config or {}))
            metadata = folder / "metadata.json"
            argv = [*self._prefix(), "build", *buildctl.arguments(request(plan, metadata))]
            env = {**os.environ, "DOCKER_CONFIG": str(config_dir)}
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
            try:
                output, _ = await asyncio.wait_for(
                    process.communicate(), timeout=plan.timeout_seconds
                )
            except TimeoutError:
                process.kill()
                await process.wait()
                return backend.BuildState(
                    backend.Phase.FAILED,
                    name=plan.name,
                    message=f"the build did not finish within {plan.timeout_seconds}s",
                )
            text = errors.redact(output.decode(errors="replace"))
            if process.returncode != 0:
                tail = "\n".join(text.splitlines()[-OUTPUT_TAIL:])
                return backend.BuildState(backend.Phase.FAILED, name=plan.name, message=tail)
            digest = backend.digest_from_metadata(metadata.read_text() if metadata.exists() else "")
            if digest is None:
                return backend.BuildState(
                    backend.Phase.FAILED,
                    name=plan.name,
                    message="buildctl succeeded but wrote no containerimage.digest",
                )
            return backend.BuildState(backend.Phase.SUCCEEDED, digest=digest, name=plan.name)


def request(plan: backend.BuildPlan, metadata: pathlib.Path) -> buildctl.BuildRequest:
    """The daemon's buildctl request: the context folder where the operator fetched it (buildctl
    uploads it to buildkitd), BuildKit's metadata file at `metadata`."""
    return plan.request(context=str(plan.context_dir), metadata_file=str(metadata))
