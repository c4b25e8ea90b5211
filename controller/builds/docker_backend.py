"""The Docker backend: the Docker Engine API (`docker` package, `DOCKER_HOST`): build, then push.

For a laptop with a Docker engine. The classic builder makes one platform per build; the digest
comes from the push result (`aux.Digest`), never from parsing progress text.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from controller import errors
from controller.builds import backend, inprocess

OUTPUT_TAIL = 15


@dataclasses.dataclass(frozen=True)
class DockerSettings:
    base_url: str | None = None
    """None: DOCKER_HOST or the default socket."""


class DockerBackend(inprocess.InProcessBackend):
    def __init__(self, *, settings: DockerSettings, tasks: inprocess.Tasks) -> None:
        super().__init__(tasks=tasks)
        self._settings = settings
        self._version: str | None = None
        """The Engine API version the first client negotiated (`GET /version`): the later ones
        use it, one round trip less per build."""

    async def _run(
        self, plan: backend.BuildPlan, *, docker_config: Mapping[str, Any] | None
    ) -> backend.BuildState:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._build_and_push, plan, docker_config),
                timeout=plan.timeout_seconds,
            )
        except TimeoutError:
            return backend.BuildState(
                backend.Phase.FAILED,
                name=plan.name,
                message=f"the build did not finish within {plan.timeout_seconds}s",
            )

    def _client(self) -> Any:
        import docker  # noqa: PLC0415 - the Docker SDK only for the Docker backend, when it builds

        version = self._version or "auto"
        if self._settings.base_url:
            api = docker.APIClient(base_url=self._settings.base_url, version=version)
        else:
            api = docker.APIClient(**docker.utils.kwargs_from_env(), version=version)
        self._version = api.api_version
        return api

    def _build_and_push(
        self, plan: backend.BuildPlan, docker_config: Mapping[str, Any] | None
    ) -> backend.BuildState:
        import docker  # noqa: PLC0415 - loaded by _client: its errors

        api = self._client()
        try:
            repository, _, tag = plan.image.rpartition(":")
            log: list[str] = []
            for chunk in api.build(**build_arguments(plan)):
                if "error" in chunk:
                    log.append(str(chunk["error"]))
                    return self._failed(plan, log)
                log.extend(str(chunk.get("stream", "")).splitlines())
            digest = None
            for chunk in api.push(
                repository,
                tag=tag,
                auth_config=_auth_for(docker_config, repository),
                stream=True,
                decode=True,
            ):
                if "error" in chunk:
                    log.append(str(chunk["error"]))
                    return self._failed(plan, log)
                aux = chunk.get("aux") or {}
                digest = aux.get("Digest") or digest
            if not digest:
                return backend.BuildState(
                    backend.Phase.FAILED, name=plan.name, message="the push reported no digest"
                )
            return backend.BuildState(backend.Phase.SUCCEEDED, digest=str(digest), name=plan.name)
        except docker.errors.APIError as error:
            return backend.BuildState(
                backend.Phase.FAILED, name=plan.name, message=errors.redact(str(error.explanation))
            )
        finally:
            api.close()

    @staticmethod
    def _failed(plan: backend.BuildPlan, log: list[str]) -> backend.BuildState:
        tail = "\n".join(line for line in log[-OUTPUT_TAIL:] if line.strip())
        return backend.BuildState(backend.Phase.FAILED, name=plan.name, message=errors.redact(tail))


def build_arguments(plan: backend.BuildPlan) -> dict[str, Any]:
    """The Engine API's build request: the context folder where the operator fetched it (the
    client sends it as a tarball), one platform (the classic builder makes one per build)."""
    return {
        "path": str(plan.context_dir),
        "dockerfile": plan.dockerfile,
        "tag": plan.image,
        "buildargs": dict(plan.build_args),
        "target": plan.target,
        "platform": plan.platforms[0] if plan.platforms else None,
        "labels": dict(plan.labels),
        "rm": True,
        "forcerm": True,
        "decode": True,
    }


def _auth_for(config: Mapping[str, Any] | None, repository: str) -> dict[str, str] | None:
    """The Engine API's auth_config for the registry of `repository`, from a dockerconfigjson."""
    host = repository.split("/", 1)[0]
    for server, entry in _entries(config):
        if server.removeprefix("https://").removeprefix("http://").split("/", 1)[0] != host:
            continue
        if "auth" in entry:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        else:
            username, password = entry.get("username", ""), entry.get("password", "")
        return {"username": username, "password": password, "serveraddress": host}
    return None


def _entries(config: Mapping[str, Any] | None) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield from ((config or {}).get("auths") or {}).items()
