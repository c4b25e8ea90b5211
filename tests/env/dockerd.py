"""A real Docker engine for tests and the local stack: Debian's dockerd, private to one folder.

`DockerDaemon(folder)` runs `/usr/sbin/dockerd` as root with its own data root, exec root, pid
file, config file and unix socket under `folder` (`host` is the `DOCKER_HOST` value), so it never
touches a system Docker. It starts its own containerd (under the exec root) and uses Debian's
runc.

Networking: no bridge, no iptables rules, no masquerading (`--bridge=none --iptables=false`):
nothing on the machine's network changes. The classic builder (what `docker build` and the
Docker SDK's `images.build` use without BuildKit) runs RUN steps without a network, which is
enough for runner images. Docker's built-in BuildKit (`DOCKER_BUILDKIT=1`) wants the default
bridge for RUN steps and fails with "network bridge not found" unless the build passes
`--network=host`.

Registries: dockerd talks plain HTTP to any registry whose name resolves into 127.0.0.0/8
(`127.0.0.1:PORT`, `localhost:PORT`, the host name here) by default; other `host:port` names
given in `insecure_registries` go to the daemon's `insecure-registries`.

Left on the machine by any dockerd, whatever its flags: /etc/docker/key.json and
/run/docker/plugins (both harmless, shared by all).

The client side: `cli` is Debian's docker CLI (the same version as the daemon, whatever else is on
PATH); `docker(...)` runs it against this daemon with a private `DOCKER_CONFIG`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from tests.env.buildkitd import (
    UNIX_PATH_MAX,
    kill_processes_mentioning,
    remove_cgroup,
    stop_process_group,
    unmount_under,
    wait_until,
)

DOCKERD = "/usr/sbin/dockerd"
DOCKER_CLI = "/usr/bin/docker"


class DockerDaemon:
    """Starts and stops a dockerd in `folder`; `host` is its `DOCKER_HOST`."""

    def __init__(self, folder: pathlib.Path, *, insecure_registries: Iterable[str] = ()) -> None:
        self.folder = folder.resolve()
        self.data_root = self.folder / "data"
        self.exec_root = self.folder / "exec"
        self.pidfile = self.folder / "docker.pid"
        self.config = self.folder / "daemon.json"
        self.client_config = self.folder / "client"
        self.log = self.folder / "dockerd.log"
        self.socket = self.folder / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.cli = DOCKER_CLI
        self.insecure_registries = tuple(insecure_registries)
        self.cgroup_parent = f"ade-test-dockerd-{uuid.uuid4().hex[:10]}"
        self._proc: subprocess.Popen[bytes] | None = None
        # containerd's socket lives in the exec root: exec/containerd/containerd.sock (+ .ttrpc)
        longest = self.exec_root / "containerd" / "containerd.sock.ttrpc"
        for path in (self.socket, longest):
            if len(str(path)) > UNIX_PATH_MAX:
                raise ValueError(f"unix socket path too long ({len(str(path))}): {path}")

    @property
    def env(self) -> dict[str, str]:
        """Variables that point a docker client (CLI or SDK) at this daemon."""
        return {"DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.client_config)}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("dockerd runs as root here (no rootless)")
        if not pathlib.Path(DOCKERD).exists():
            raise RuntimeError(f"{DOCKERD} is missing: run hack/test.sh (installs docker.io)")
        for folder in (self.data_root, self.exec_root, self.client_config):
            folder.mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {"insecure-registries": list(self.insecure_registries)}
        self.config.write_text(json.dumps(settings, indent=2))
        argv = [
            DOCKERD,
            f"--config-file={self.config}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--host={self.host}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--userland-proxy=false",
            # Containers (classic builder RUN steps too) go to /<cgroup_parent>/<id>: one tree
            # per daemon, removed by stop().
            f"--cgroup-parent=/{self.cgroup_parent}",
            "--log-level=warn",
        ]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                # Its own process group. containerd runs in a session of its own, dies with
                # dockerd (parent-death signal); stop() still sweeps for stragglers.
                start_new_session=True,
            )
        try:
            wait_until(
                self._api_ready,
                timeout=timeout,
                what=f"dockerd answering on {self.host}",
                alive=self._check_alive,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop the daemon and everything it started. Containers still running are killed first
        (dockerd would give each its 10 s stop timeout), then dockerd gets SIGTERM (it stops its
        containerd), and its process group SIGKILL after `timeout`."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._kill_containers()
            stop_process_group(self._proc, timeout=timeout)
            self._proc = None
        kill_processes_mentioning(self.exec_root)  # shims, if dockerd had to be killed
        remove_cgroup(self.cgroup_parent)  # containers, if their shims were killed
        unmount_under(self.folder)

    def __enter__(self) -> DockerDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------------------------

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 600.0,
        env: dict[str, str] | None = None,
        cwd: pathlib.Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run Debian's `docker ARGS` against this daemon (classic builder unless `env` says)."""
        full = {**os.environ, "DOCKER_BUILDKIT": "0", **self.env, **(env or {})}
        done = subprocess.run(
            [self.cli, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=full,
            cwd=cwd,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- internals ---------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(
                f"dockerd exited with {self._proc.returncode}:\n{self.logs()[-4000:]}"
            )

    def _kill_containers(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            running = self.docker("ps", "--quiet", check=False, timeout=30).stdout.split()
            if running:
                self.docker("kill", *running, check=False, timeout=30)

    def _api_ready(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            done = self.docker(
                "version", "--format", "{{.Server.Version}}", check=False, timeout=10
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0 and bool(done.stdout.strip())


@contextlib.contextmanager
def running(folder: pathlib.Path, **options: Any) -> Iterator[DockerDaemon]:
    daemon = DockerDaemon(folder, **options)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
