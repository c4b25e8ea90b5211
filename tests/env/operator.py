"""The operator under test, as a separate process as in production (`python -m controller`)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
import urllib.request

from tests.env import controlplane, process


class OperatorProcess:
    """`python -m controller` against a kubeconfig, watching the given namespaces (`module`: another
    entry point that runs it, e.g. `tests.env.memtrace`)."""

    def __init__(
        self,
        *,
        kubeconfig: pathlib.Path,
        namespaces: tuple[str, ...],
        log: pathlib.Path,
        env: dict[str, str] | None = None,
        module: str = "controller",
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log = log
        self.extra_env = env or {}
        self.module = module
        self.metrics_port, self.health_port, self.receiver_port = controlplane.free_ports(3)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "ADE_WATCH_NAMESPACES": ",".join(self.namespaces),
            "ADE_METRICS_PORT": str(self.metrics_port),
            "ADE_HEALTH_PORT": str(self.health_port),
            "ADE_RECEIVER_PORT": str(self.receiver_port),
            "ADE_RESYNC_INTERVAL": "10m",
            **self.extra_env,
        }
        with self.log.open("ab") as handle:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=controlplane.REPO,
            )
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()  # not left running when it did not come up in time
            raise

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"operator exited early:\n{self.logs()[-4000:]}")
            try:
                url = f"http://127.0.0.1:{self.health_port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"operator not healthy after {timeout}s:\n{self.logs()[-4000:]}")

    def stop(self, *, timeout: float = 20.0) -> None:
        if self._proc is None:
            return
        process.terminate(self._proc, timeout=timeout)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it (no shutdown handlers run)."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait()
        self._proc = None

    def wait_exit(self, *, timeout: float) -> int:
        """Wait for the process to end by itself (a failpoint's SIGKILL); its return code."""
        assert self._proc is not None, "operator not started"
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"operator still alive after {timeout}s:\n{self.logs()[-4000:]}"
            ) from None
        self._proc = None
        return code

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process used so far (from /proc)."""
        fields = pathlib.Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    @property
    def pid(self) -> int:
        assert self._proc is not None, "operator not started"
        return self._proc.pid

    def alive(self) -> bool:
        """Whether the process is running (started and not exited)."""
        return self._proc is not None and self._proc.poll() is None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
