"""The Docker backend: the Docker Engine API (`docker` package, `DOCKER_HOST`): build, then push.

For a laptop with a Docker engine. The classic builder makes one platform per build; the digest
comes from the push result (`aux.Digest`), never from parsing progress text.

The image's labels (revision, build key, owner) go in as one `LABEL` instruction appended to a
copy of the Dockerfile (`labelled_dockerfile`), sent beside the context as the Docker CLI sends a
Dockerfile from outside it (hidden from `COPY .` by the context's `.dockerignore`): the classic
builder turns the API's `labels` into one more step per label, each a container created and
committed, which cost 0.17 s of a 0.6 s build for the three. When appending cannot label the
image built (a `spec.target` stage, a last line that continues) the API's labels are used.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import pathlib
import re
import tempfile
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
            with tempfile.TemporaryDirectory(prefix="ade-docker-") as scratch:
                arguments = build_arguments(plan, pathlib.Path(scratch))
                for chunk in api.build(**arguments):
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


def build_arguments(plan: backend.BuildPlan, scratch: pathlib.Path) -> dict[str, Any]:
    """The Engine API's build request: the context folder where the operator fetched it (the
    client sends it as a tarball), one platform (the classic builder makes one per build), the
    labels in a copy of the Dockerfile written to `scratch` (outside the context) when they can
    be (`labelled_dockerfile`), else as the API's."""
    dockerfile, labels = plan.dockerfile, dict(plan.labels)
    labelled = None
    if labels and not plan.target:
        original = pathlib.Path(plan.context_dir) / plan.dockerfile
        text = original.read_text(encoding="utf-8", errors="surrogateescape")
        labelled = labelled_dockerfile(text, labels, target=plan.target)
    if labelled is not None:
        copy = scratch / "Dockerfile"
        copy.write_text(labelled, encoding="utf-8", errors="surrogateescape")
        dockerfile, labels = str(copy), {}
    return {
        "path": str(plan.context_dir),
        "dockerfile": dockerfile,
        "tag": plan.image,
        "buildargs": dict(plan.build_args),
        "target": plan.target,
        "platform": plan.platforms[0] if plan.platforms else None,
        "labels": labels,
        "rm": True,
        "forcerm": True,
        "decode": True,
    }


_DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(\S*)\s*")
_PLAIN = re.compile(r"[A-Za-z0-9._/:@+=, -]*")
"""Label text written as is in a double-quoted LABEL word: nothing a Dockerfile would expand
(`$`), escape or end (quotes, escape characters, line breaks)."""


def labelled_dockerfile(text: str, labels: Mapping[str, str], *, target: str | None) -> str | None:
    """`text` with `labels` in one `LABEL` instruction after its last line (the last stage's
    last instruction); None when that would not label the image built the same way: a
    `target` names the stage to build, the last instruction continues onto the next line, or a
    label holds text that would need quoting."""
    if not labels or target:
        return None
    if not all(_PLAIN.fullmatch(key) and _PLAIN.fullmatch(value) for key, value in labels.items()):
        return None
    lines = text.splitlines()
    escape = "\\"
    for line in lines:  # parser directives: only at the very top
        directive = _DIRECTIVE.fullmatch(line.strip())
        if directive is None:
            break
        if directive.group(1).lower() == "escape" and directive.group(2):
            escape = directive.group(2)
    code = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not code or code[-1].endswith(escape):
        return None
    words = " ".join(f'"{key}"="{value}"' for key, value in sorted(labels.items()))
    body = text.rstrip("\r\n")
    return f"{body}\nLABEL {words}\n"


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
