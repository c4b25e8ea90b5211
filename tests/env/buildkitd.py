"""A real BuildKit daemon for tests and the local stack: buildkitd with the OCI (runc) worker.

`BuildkitDaemon(folder)` runs the pinned `buildkitd` (compiled by `hack/tools.sh`) as root with
everything under `folder`: state (`--root`), the unix socket (`address`), the config and the log.
It listens on a unix socket and, when asked, on `tcp://127.0.0.1:PORT` too (plain gRPC, loopback
only). `start()` returns once `buildctl debug workers` answers; `stop()` deletes the runc
containers of steps still running, ends the daemon's process group, kills whatever is left in
the daemon's own cgroup tree (then removes it) and unmounts whatever is still mounted under
`folder`.

Registries: buildkitd talks plain HTTP to `localhost`, `127.0.0.1` and `::1` (any port) on its
own, so the local registries need no configuration; other `host:port` names given in
`insecure_registries` are written to `buildkitd.toml` as `[registry."host:port"] http = true`.

The helpers at the bottom (process groups, cgroups, leftover mounts, waiting) are shared with
`tests.env.dockerd`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tests.env.controlplane import free_port, tools_bin

RUNC = "/usr/bin/runc"
SNAPSHOTTER_LABEL = "org.mobyproject.buildkit.worker.snapshotter"
UNIX_PATH_MAX = 107  # sun_path is 108 bytes, one of them the terminating NUL


@contextlib.contextmanager
def push_credentials(folder: pathlib.Path, config_json: str) -> Iterator[pathlib.Path]:
    """`buildctl` of this process pushes with `config_json` (a `.dockerconfigjson`): it is written
    to `folder/config.json` and `DOCKER_CONFIG` points there until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config_json)
    previous = os.environ.get("DOCKER_CONFIG")
    os.environ["DOCKER_CONFIG"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("DOCKER_CONFIG", None)
        else:
            os.environ["DOCKER_CONFIG"] = previous


class BuildkitDaemon:
    """Starts and stops a buildkitd in `folder`; `address` is its unix socket for `buildctl`."""

    def __init__(
        self,
        folder: pathlib.Path,
        *,
        bin_dir: pathlib.Path | None = None,
        tcp: bool = False,
        insecure_registries: Iterable[str] = (),
        snapshotter: str = "auto",
    ) -> None:
        self.folder = folder.resolve()
        self.bin = bin_dir or tools_bin()
        self.root = self.folder / "root"
        self.socket = self.folder / "buildkitd.sock"
        self.address = f"unix://{self.socket}"
        self.tcp_address = f"tcp://127.0.0.1:{free_port()}" if tcp else None
        self.config = self.folder / "buildkitd.toml"
        self.log = self.folder / "buildkitd.log"
        self.insecure_registries = tuple(insecure_registries)
        self.requested_snapshotter = snapshotter
        self.cgroup_parent = f"ade-test-buildkitd-{uuid.uuid4().hex[:10]}"
        self._proc: subprocess.Popen[bytes] | None = None
        if len(str(self.socket)) > UNIX_PATH_MAX:
            raise ValueError(f"unix socket path too long ({len(str(self.socket))}): {self.socket}")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("buildkitd with the OCI worker runs as root here (no rootless)")
        if not pathlib.Path(RUNC).exists():
            raise RuntimeError(f"{RUNC} is missing: run hack/test.sh (installs Debian's runc)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self._config_toml())
        argv = [
            str(self.bin / "buildkitd"),
            f"--config={self.config}",
            f"--root={self.root}",
            f"--addr={self.address}",
            f"--otel-socket-path={self.folder / 'otel.sock'}",
            "--oci-worker=true",
            f"--oci-worker-snapshotter={self.requested_snapshotter}",
            f"--oci-worker-binary={RUNC}",
            # No CNI plugins here: RUN steps share the host network (nothing leaves loopback).
            "--oci-worker-net=host",
            "--containerd-worker=false",
            "--cdi-disabled",  # no devices; spares watching /etc/cdi and /var/run/cdi
        ]
        if self.tcp_address:
            argv.append(f"--addr={self.tcp_address}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env=env,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        try:
            wait_until(
                self._workers_ready,
                timeout=timeout,
                what=f"buildkitd answering on {self.address}",
                alive=self._check_alive,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self, *, timeout: float = 20.0) -> None:
        """Stop the daemon and everything it started. Steps still running are killed first
        (buildkitd's graceful stop would wait for them), then buildkitd gets SIGTERM, and its
        process group SIGKILL after `timeout`."""
        if self._proc is not None:
            self._delete_runc_containers()
            stop_process_group(self._proc, timeout=timeout)
            self._proc = None
        self._delete_runc_containers()
        remove_cgroup(self.cgroup_parent)
        unmount_under(self.folder)

    def __enter__(self) -> BuildkitDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------------------------

    def buildctl(
        self,
        *args: str,
        address: str | None = None,
        check: bool = True,
        timeout: float = 600.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run `buildctl --addr ADDRESS ARGS` (the unix socket unless `address` is given)."""
        argv = [str(self.bin / "buildctl"), f"--addr={address or self.address}", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(
                f"buildctl {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-6000:]}"
            )
        return done

    def workers(self, address: str | None = None) -> list[dict[str, Any]]:
        out = self.buildctl(
            "debug", "workers", "--format={{json .}}", address=address, timeout=30
        ).stdout
        workers: list[dict[str, Any]] = json.loads(out)
        return workers

    @property
    def snapshotter(self) -> str:
        """The snapshotter the OCI worker really uses (`auto` resolved by buildkitd)."""
        labels: dict[str, str] = self.workers()[0].get("labels", {})
        return labels.get(SNAPSHOTTER_LABEL, "?")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- internals ---------------------------------------------------------------------------

    def _config_toml(self) -> str:
        lines = [
            "# Written by tests/env/buildkitd.py; flags on the command line set the rest.",
            "[worker.oci]",
            # RUN containers go to /<cgroup_parent>/buildkit/<id>: one tree per daemon, removed
            # by stop() (the default /buildkit is shared by every buildkitd on the machine).
            f'  defaultCgroupParent = "{self.cgroup_parent}"',
        ]
        for host in self.insecure_registries:
            lines += ["", f'[registry."{host}"]', "  http = true"]
        return "\n".join(lines) + "\n"

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(
                f"buildkitd exited with {self._proc.returncode}:\n{self.logs()[-4000:]}"
            )

    def _workers_ready(self) -> bool:
        if not self.socket.exists():
            return False
        addresses = [self.address] + ([self.tcp_address] if self.tcp_address else [])
        for address in addresses:
            try:
                done = self.buildctl("debug", "workers", address=address, check=False, timeout=10)
            except subprocess.TimeoutExpired:
                return False
            if done.returncode != 0 or len(done.stdout.strip().splitlines()) < 2:
                return False  # a header line and at least one worker
        return True

    def _delete_runc_containers(self) -> None:
        """A killed buildkitd leaves the runc containers of running steps (runc runs them in
        their own process group and session); delete this daemon's ones."""
        for container in runc_containers(self.root):
            subprocess.run(
                [RUNC, "delete", "--force", container],
                capture_output=True,
                check=False,
                timeout=30,
            )


def runc_containers(under: pathlib.Path) -> list[str]:
    """Ids of the runc containers whose bundle is under `under`. buildkitd runs runc with its
    default state root (/run/runc for root), shared with every other runc user: the bundle
    (`<--root>/runc-<snapshotter>/executor/<id>`) tells which containers are a daemon's."""
    done = subprocess.run(
        [RUNC, "list", "--format=json"], capture_output=True, text=True, check=True, timeout=30
    )
    prefix = str(under.resolve()) + "/"
    states: list[dict[str, Any]] = json.loads(done.stdout or "null") or []
    return [state["id"] for state in states if str(state.get("bundle", "")).startswith(prefix)]


@contextlib.contextmanager
def running(folder: pathlib.Path, **options: Any) -> Iterator[BuildkitDaemon]:
    daemon = BuildkitDaemon(folder, **options)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


# -- shared helpers (also used by tests.env.dockerd) -------------------------------------------


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], None] | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `condition` until it is true; `alive` raises when the thing waited on died."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout:.0f}s: {what}")
        time.sleep(interval)


def stop_process_group(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM the daemon `proc` (it stops its own children), wait up to `timeout`, then SIGKILL
    whatever is left of its process group (the daemon itself after a time-out, or stragglers)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + timeout
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mounts_under(folder: pathlib.Path) -> list[str]:
    """Mount points at or below `folder` (deepest first), from /proc/self/mountinfo."""
    prefix = str(folder.resolve())
    points: list[str] = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape_mount_path(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def unmount_under(folder: pathlib.Path) -> None:
    """Lazily unmount everything still mounted under `folder` (left by a killed daemon)."""
    for point in mounts_under(folder):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False, timeout=30)


def _unescape_mount_path(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def remove_cgroup(name: str, *, timeout: float = 10.0) -> None:
    """Kill every process left in the cgroup tree `/name` (containers a killed daemon left
    running), then remove the tree in every hierarchy (cgroup v1 and v2)."""
    root = pathlib.Path("/sys/fs/cgroup")
    tops = [top for top in [root / name, *(h / name for h in root.glob("*/"))] if top.is_dir()]
    deadline = time.monotonic() + timeout
    while pids := _cgroup_pids(tops):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            break  # a frozen cgroup, say: leave it rather than hang a teardown
        time.sleep(0.05)
    for top in tops:
        for folder, _, _ in sorted(os.walk(top), key=lambda entry: -entry[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _cgroup_pids(tops: list[pathlib.Path]) -> set[int]:
    pids: set[int] = set()
    for top in tops:
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def kill_processes_mentioning(folder: pathlib.Path) -> None:
    """SIGKILL processes whose command line names `folder` (e.g. containerd shims, which run in
    their own session, left by a daemon that had to be killed)."""
    needle = str(folder.resolve()).encode()
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def remove_tree(folder: pathlib.Path) -> None:
    """Remove `folder` after unmounting what is under it (never crosses into a mount)."""
    unmount_under(folder)
    if not mounts_under(folder):
        shutil.rmtree(folder, ignore_errors=True)
