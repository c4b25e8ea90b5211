"""A real Kubernetes control plane on loopback: etcd, API server, controller manager, scheduler.

The API server serves TLS, authenticates client certificates, authorizes with RBAC, signs
service-account tokens and writes a JSON audit log (used to count the operator's writes). The
controller manager runs the garbage collector, namespace, service-account and job controllers,
and the node lifecycle controller (it lifts the not-ready taint of the real node, `tests.env.node`).
Nodes authenticate as `system:node:<name>` and are authorized by the Node authorizer.
Binaries come from `hack/tools.sh` (compiled from the Go module proxy and cached).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from tests.env import certs, process

REPO = pathlib.Path(__file__).resolve().parents[2]

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    userGroups: ["system:nodes"]
  - level: Metadata
"""

CONTROLLERS = ",".join(
    [
        "garbage-collector-controller",
        "namespace-controller",
        "job-controller",
        "ttl-after-finished-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "replicaset-controller",
        "deployment-controller",
        "endpointslice-controller",
        "root-ca-certificate-publisher-controller",
        "node-lifecycle-controller",
    ]
)


def tools_bin() -> pathlib.Path:
    """The directory of pinned binaries; builds them on first use (prints progress)."""
    env = os.environ.get("ADE_TOOLS_BIN")
    if env:
        return pathlib.Path(env)
    out = subprocess.run(
        [str(REPO / "hack" / "tools.sh"), "--print-bin"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return pathlib.Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket is held until all are bound (the kernel may hand
    a port just released to the next `free_port()`: an operator once got the same port for its
    receivers and its health endpoint, and its health endpoint failed to bind)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


class ControlPlane:
    """Starts and stops the control plane in `folder`; `kubeconfig` is the admin's."""

    def __init__(self, folder: pathlib.Path, bin_dir: pathlib.Path | None = None) -> None:
        self.folder = folder
        self.bin = bin_dir or tools_bin()
        self.pki = folder / "pki"
        self.logs = folder / "logs"
        self.audit_log = self.logs / "audit.log"
        self.kubeconfig = folder / "admin.kubeconfig"
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._argv: dict[str, list[str]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._ca = certs.Authority(self.pki)
        serving = self._ca.issue(
            "apiserver",
            "kube-apiserver",
            hosts=("127.0.0.1", "localhost", "kubernetes", "kubernetes.default.svc", "10.0.0.1"),
        )
        sa = certs.service_account_keys(self.pki)
        # The API server's identity towards kubelets (logs, exec); kubelets trust this CA.
        kubelet_client = self._ca.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", client=True
        )
        self._write_kubeconfig(self.kubeconfig, "admin", "system:masters")
        etcd_port, etcd_peer = free_ports(2)
        self._spawn(
            "etcd",
            [
                str(self.bin / "etcd"),
                "--data-dir", str(self.folder / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level", "warn",
            ],
        )  # fmt: skip
        policy = self.folder / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self._ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                # A node's InternalIP is the VM's own address: reach kubelets by host name only.
                "--kubelet-preferred-address-types=Hostname",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                f"--cert-dir={self.pki}",
                "--v=1",
            ],
        )
        self._wait_ready(timeout)
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={self._ca.cert}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        )

    def stop(self) -> None:
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(self._procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            del name
        self._procs.clear()

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver alone, at once (SIGKILL, as a crashed host would); etcd and the
        rest keep running. `start_apiserver` brings it back on the same port."""
        for name, proc in self._procs:
            if name == "kube-apiserver" and proc.poll() is None:
                proc.kill()
                proc.wait()

    def start_apiserver(self, *, timeout: float = 120.0) -> None:
        """Start kube-apiserver again (same flags, same port, same etcd) and wait until it is
        ready; any other component that gave up meanwhile is started again too. The controller
        manager and the scheduler are started anew once it is ready: their informers back off
        for minutes after an outage (a new namespace then got no `default` ServiceAccount, and
        a later test's Job no pod), and the control plane is shared by the whole session."""
        for index, (name, proc) in enumerate(self._procs):
            if proc.poll() is not None:
                self._procs[index] = (name, self._popen(name))
        self._wait_ready(timeout)
        for index, (name, proc) in enumerate(self._procs):
            if name in ("kube-controller-manager", "kube-scheduler"):
                process.terminate(proc)
                self._procs[index] = (name, self._popen(name))

    def _popen(self, name: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                self._argv[name], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._argv[name] = argv
        self._procs.append((name, self._popen(name)))

    def _wait_ready(self, timeout: float) -> None:
        context = self.ssl_context()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", context=context, timeout=5):
                    return
            except OSError as error:
                last = str(error)
            time.sleep(0.25)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s: {last}")

    @property
    def kubectl_binary(self) -> str:
        """kubectl at the pinned Kubernetes version (`hack/tools.sh`), else the machine's."""
        pinned = self.bin / "kubectl"
        return str(pinned) if pinned.exists() else "kubectl"

    @property
    def authority(self) -> certs.Authority:
        """The cluster CA (signs node certificates; kubelets trust its client certificates)."""
        return self._ca

    # -- clients -----------------------------------------------------------------------------

    def ssl_context(self, user: str = "admin") -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self._ca.cert))
        context.load_cert_chain(str(self.pki / f"{user}.crt"), str(self.pki / f"{user}.key"))
        return context

    def user_kubeconfig(self, user: str, group: str | None = None) -> pathlib.Path:
        """A kubeconfig authenticating as `user` (client certificate), optionally in `group`."""
        path = self.folder / f"{user}.kubeconfig"
        self._write_kubeconfig(path, user, group)
        return path

    def _write_kubeconfig(self, path: pathlib.Path, user: str, group: str | None) -> None:
        pair = self._ca.issue(user, user, organization=group, client=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ade-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self._ca.cert)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
                }
            ],
            "contexts": [{"name": user, "context": {"cluster": "ade-test", "user": user}}],
            "current-context": user,
        }
        path.write_text(json.dumps(config, indent=2))

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_binary, f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )

    def audit_events(self) -> list[dict[str, Any]]:
        """Every audit event written so far (ResponseComplete stage)."""
        out: list[dict[str, Any]] = []
        if not self.audit_log.exists():
            return out
        with self.audit_log.open() as handle:
            for line in handle:
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out


@contextlib.contextmanager
def running(folder: pathlib.Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(folder)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        shutil.rmtree(folder / "etcd", ignore_errors=True)
