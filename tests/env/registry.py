"""A real OCI registry on loopback (Debian's `docker-registry`, distribution 2.8).

`Registry(folder, token_server)` runs `/usr/bin/docker-registry` over plain HTTP on 127.0.0.1
with filesystem storage under `folder`, deletes enabled, and token auth against a
`tokenserver.TokenServer` (or no auth at all when it is None), whose realm may be given apart
(`realm=`, e.g. a fault proxy in front of the token server). `FaultProxy` is
`tests.env.faultproxy.FaultProxy`, put in front of a registry to inject faults.

Install the registry with `apt-get install -y docker-registry` (`hack/` does it for CI).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from tests.env import faultproxy, process
from tests.env.tokenserver import TokenServer

BINARY = pathlib.Path(os.environ.get("ADE_REGISTRY_BIN", "/usr/bin/docker-registry"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def docker_config_json(host: str, *, user: str, password: str) -> str:
    """A `.dockerconfigjson` with Basic credentials for `host` (what `kubectl create secret
    docker-registry` writes)."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}})


def available() -> bool:
    """Whether the registry binary is installed (tests skip with a hint when it is not)."""
    return BINARY.exists()


class Registry:
    """`docker-registry serve` in `folder`; `host` is "127.0.0.1:PORT" once started."""

    def __init__(
        self,
        folder: pathlib.Path,
        token_server: TokenServer | None,
        *,
        port: int = 0,
        realm: str | None = None,
    ) -> None:
        """`port` 0 picks a free port; `realm` (default: the token server's) is where the
        registry sends clients for tokens."""
        self.realm = realm
        self.folder = folder
        self.token_server = token_server
        self.storage = folder / "storage"
        self.log = folder / "registry.log"
        self.config = folder / "config.yml"
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": secrets.token_hex(16)},
        }
        if self.token_server is not None:
            config["auth"] = {
                "token": {
                    "realm": self.realm or self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.token_server.ca_bundle),
                }
            }
        return config

    def start(self, *, timeout: float = 30.0) -> None:
        if not available():
            raise RuntimeError(f"{BINARY} is missing: apt-get install -y docker-registry")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        # JSON is YAML: no YAML writer needed.
        self.config.write_text(json.dumps(self._config(), indent=2))
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(BINARY), "serve", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {self._proc.returncode}:\n{self.logs()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:
                    del response
                    return
            except urllib.error.HTTPError as error:
                if error.code == 401:  # token auth on: answering is what we wait for
                    return
                last = str(error)
            except OSError as error:
                last = str(error)
            time.sleep(0.05)
        raise TimeoutError(f"docker-registry not ready after {timeout}s: {last}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        process.terminate(self._proc)
        self._proc = None

    def cleanup(self) -> None:
        """Stop and remove the stored blobs."""
        self.stop()
        shutil.rmtree(self.storage, ignore_errors=True)

    def blob_path(self, digest: str) -> pathlib.Path:
        """Where filesystem storage keeps a blob's bytes (to corrupt it in a test)."""
        algorithm, _, hexdigest = digest.partition(":")
        return (
            self.storage
            / "docker/registry/v2/blobs"
            / algorithm
            / hexdigest[:2]
            / hexdigest
            / "data"
        )

    def tags(self, repository: str) -> list[str]:
        """The tags filesystem storage holds for `repository` (none: the repository is absent)."""
        folder = self.storage / "docker/registry/v2/repositories" / repository / "_manifests/tags"
        return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@contextlib.contextmanager
def running(folder: pathlib.Path, token_server: TokenServer | None) -> Iterator[Registry]:
    registry = Registry(folder, token_server)
    try:
        registry.start()
        yield registry
    finally:
        registry.cleanup()


# -- fault injection: the shared proxy (tests.env.faultproxy), kept under its former names ----

FaultProxy = faultproxy.FaultProxy
ProxiedRequest = faultproxy.Exchange
