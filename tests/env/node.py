"""A real node beside the test control plane: Debian's containerd and runc, the pinned kubelet.

The kubelet is compiled from `k8s.io/kubernetes` at `KUBERNETES_VERSION` (`hack/tools.sh`);
containerd 1.6 and runc 1.1 are Debian bookworm's packages (new enough for this kubelet: CRI v1;
containerd lacks only the `RuntimeConfig` call, hence `cgroupDriver: cgroupfs` set here). The
node registers as the machine's host name (which must resolve to 127.0.0.1: the API server
reaches the kubelet by it, `--kubelet-preferred-address-types=Hostname`), turns Ready, and runs
pods whose images come from the plain image registry of `tests.env.node_images`.

Which tests use which node: pods that must really run (the operator's own image, rootless
BuildKit build Jobs, pull and scheduling failures) use this node; scale tests and hand-made pod
outcomes use kwok's fake node (`tests.env.kwok`). This node carries the taint
`ade.dev/real-node=true:NoSchedule` and the label `ade.dev/real-node=true`, so nothing lands here
unless it asks to (`PLACEMENT` below), and kwok's tests never do.

Network (the machine's rule: traffic only to 127.0.0.0/8 or namespaces the tests make):
- pods that reach the registry, git server, ARM emulator or API server use `hostNetwork: true`:
  they share the host's loopback and talk to 127.0.0.1 explicitly (the operator pod is given the
  API server as `KUBERNETES_SERVICE_HOST=127.0.0.1` and its port; nothing uses a ClusterIP);
- every other pod gets a network namespace of its own with only `lo` and an address of its own
  in 127.0.0.0/8 (the CNI chain: the standard `loopback` plugin, then `ade-loopback-only` of
  `tests.env.loopback_bridge`). No bridge device, no veth, no route out of the pod. Where such a
  pod needs host services (the operator's replicas, whose ports would collide on the host's
  network), `Node.bridge()` names the host loopback ports carried into it, and the pod ports the
  kubelet's probes reach, all over loopback.
- The node's InternalIP is the VM's own address: nothing here sends traffic to it.

The kubelet changes the host (sysctls `vm.overcommit_memory`, `kernel.panic`,
`kernel.panic_on_oops`; folders outside its root). `stop()` kills what containerd runs, unmounts
and removes what the node made, and restores those sysctls and folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tests.env import buildkitd, controlplane, kube, process
from tests.env.node_images import NodeImages

TAINT_KEY = "ade.dev/real-node"
LABEL = "ade.dev/real-node"
RUNC = "/usr/sbin/runc"
CNI_LOOPBACK = pathlib.Path("/usr/lib/cni/loopback")  # Debian containernetworking-plugins

SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
HOST_FOLDERS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/usr/libexec/kubernetes",
    "/run/containerd",
)

CNI_PLUGIN = """\
#!/bin/sh
# ade-loopback-only: chained after `loopback`; gives the pod an address in 127.0.0.0/8 and the
# loopback bridge of tests/env/loopback_bridge.py (written by tests/env/node.py).
cd {repo} && exec {python} -m tests.env.loopback_bridge cni {state}
"""


def node_name() -> str:
    """The machine's host name, which the API server resolves to reach the kubelet."""
    name = socket.gethostname().lower()
    try:
        address = socket.gethostbyname(name)
    except OSError as error:
        raise RuntimeError(f"host name {name!r} does not resolve: {error}") from None
    if not address.startswith("127."):
        raise RuntimeError(
            f"host name {name!r} resolves to {address}, not loopback: the API server would "
            "reach the kubelet off the machine"
        )
    return name


def placement(name: str) -> dict[str, Any]:
    """What a pod spec needs to run on the real node (merge into the pod spec)."""
    return {
        "nodeSelector": {"kubernetes.io/hostname": name},
        "tolerations": [
            {"key": TAINT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
    }


class Node:
    """containerd and a kubelet, registered with `plane` as node `name`."""

    def __init__(
        self, plane: controlplane.ControlPlane, folder: pathlib.Path, images: NodeImages
    ) -> None:
        self.plane = plane
        self.folder = folder.resolve()
        self.images = images
        self.name = node_name()
        # Unix socket paths are short (108 bytes): containerd's state goes under /run.
        self.state = pathlib.Path(f"/run/ade-node-{uuid.uuid4().hex[:8]}")
        self.socket = self.state / "containerd.sock"
        self.logs = self.folder / "logs"
        self.kubelet_root = self.folder / "kubelet"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._sysctls: dict[str, str] = {}
        self._made_folders: list[str] = []
        self._netns_before: set[str] = set()
        self.started_at = 0.0
        self.ready_after = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> None:
        for binary in (RUNC, "/usr/bin/containerd", str(CNI_LOOPBACK)):
            if not pathlib.Path(binary).exists():
                raise RuntimeError(f"{binary} is missing: run hack/test.sh (Debian packages)")
        self.logs.mkdir(parents=True, exist_ok=True)
        self._sysctls = {key: _read_sysctl(key) for key in SYSCTLS}
        self._made_folders = [f for f in HOST_FOLDERS if not os.path.exists(f)]
        self._netns_before = _netns()
        remove_stale_nodes()
        self.started_at = time.monotonic()
        try:
            self._start_containerd()
            self._start_kubelet()
            kube.wait_for(
                self._ready, timeout=timeout, what=f"node {self.name} Ready", interval=0.2
            )
            self.ready_after = time.monotonic() - self.started_at
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        kubelet = self._procs.pop("kubelet", None)
        process.terminate(kubelet, timeout=10)
        self._remove_containers()
        process.terminate(self._procs.pop("containerd", None), timeout=10)
        buildkitd.kill_processes_mentioning(self.state)  # shims outliving containerd
        for netns in _netns() - self._netns_before:
            subprocess.run(["umount", "--lazy", netns], capture_output=True, check=False)
            with contextlib.suppress(OSError):
                os.unlink(netns)
        for folder in (self.folder, self.state, pathlib.Path("/run/containerd")):
            buildkitd.unmount_under(folder)
        buildkitd.remove_tree(self.state)
        buildkitd.remove_tree(self.kubelet_root)
        buildkitd.remove_tree(self.folder / "containerd")
        for key, value in self._sysctls.items():
            with contextlib.suppress(OSError):
                _write_sysctl(key, value)
        for made in self._made_folders:
            buildkitd.remove_tree(pathlib.Path(made))
        if self.plane.kubectl("get", "node", self.name, check=False).returncode == 0:
            self.plane.kubectl("delete", "node", self.name, "--wait=false", check=False)

    # -- containerd --------------------------------------------------------------------------

    def _start_containerd(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "folder").write_text(str(self.folder))
        cni_bin, cni_conf = self.folder / "cni" / "bin", self.folder / "cni" / "conf"
        cni_bin.mkdir(parents=True, exist_ok=True)
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_bin / "loopback").unlink(missing_ok=True)
        (cni_bin / "loopback").symlink_to(CNI_LOOPBACK)
        plugin = cni_bin / "ade-loopback-only"
        plugin.write_text(
            CNI_PLUGIN.format(repo=controlplane.REPO, python=sys.executable, state=self.state)
        )
        plugin.chmod(0o755)
        (cni_conf / "10-ade.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "ade-loopback",
                    "plugins": [{"type": "loopback"}, {"type": "ade-loopback-only"}],
                }
            )
        )
        hosts = self.folder / "certs.d" / self.images.host
        hosts.mkdir(parents=True, exist_ok=True)
        (hosts / "hosts.toml").write_text(
            f'server = "http://{self.images.host}"\n\n'
            f'[host."http://{self.images.host}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )
        config = self.folder / "containerd.toml"
        config.write_text(
            _containerd_toml(
                root=self.folder / "containerd" / "root",
                state=self.state / "state",
                socket=self.socket,
                sandbox_image=self.images.pause,
                cni_bin=cni_bin,
                cni_conf=cni_conf,
                certs=self.folder / "certs.d",
            )
        )
        self._spawn("containerd", ["/usr/bin/containerd", f"--config={config}"])
        kube.wait_for(
            lambda: self._alive("containerd") and self.socket.exists(),
            timeout=30,
            what="containerd socket",
            interval=0.05,
        )

    def _remove_containers(self) -> None:
        """Kill and delete every container this node's containerd made (pods and sandboxes)."""
        _remove_runc_containers(under=self.state)

    # -- kubelet -----------------------------------------------------------------------------

    def _start_kubelet(self) -> None:
        ca = self.plane.authority
        serving = ca.issue(
            "kubelet-serving", self.name, hosts=(self.name, "localhost", "127.0.0.1")
        )
        kubeconfig = self.plane.user_kubeconfig(f"system:node:{self.name}", "system:nodes")
        port, healthz = controlplane.free_ports(2)
        self.kubelet_root.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(ca.cert)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "failCgroupV1": False,
            "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
            "podLogsDir": str(self.folder / "pod-logs"),
            "resolvConf": "/etc/resolv.conf",
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "makeIPTablesUtilChains": False,
            "maxPods": 50,
        }
        path = self.folder / "kubelet.yaml"
        path.write_text(json.dumps(config, indent=2))
        self._spawn(
            "kubelet",
            [
                str(self.plane.bin / "kubelet"),
                f"--config={path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--hostname-override={self.name}",
                f"--node-labels={LABEL}=true",
                "--v=1",
            ],
        )

    def _ready(self) -> bool:
        for name in self._procs:
            if not self._alive(name):
                raise RuntimeError(f"{name} exited:\n{self.log(name)[-4000:]}")
        out = self.plane.kubectl("get", "node", self.name, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        node = json.loads(out.stdout)
        ready = kube.condition(node, "Ready") or {}
        taints = node["spec"].get("taints") or []
        # Ready, and the node lifecycle controller has lifted the not-ready taint.
        return ready.get("status") == "True" and all(t["key"] == TAINT_KEY for t in taints)

    def bridge(self, *, out: list[int], inbound: list[int]) -> None:
        """What pods of their own network (not `hostNetwork`) started from now on get: `out`,
        host loopback ports they reach at 127.0.0.1; `inbound`, their ports the kubelet's probes
        reach at the pod's address (`tests.env.loopback_bridge`)."""
        (self.state / "bridge.json").write_text(json.dumps({"out": out, "in": inbound}))

    # -- helpers -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            self._procs[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )

    def _alive(self, name: str) -> bool:
        return self._procs[name].poll() is None

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill_kubelet(self) -> None:
        """SIGKILL the kubelet (a node that dies)."""
        proc = self._procs.get("kubelet")
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


def _containerd_toml(
    *,
    root: pathlib.Path,
    state: pathlib.Path,
    socket: pathlib.Path,
    sandbox_image: str,
    cni_bin: pathlib.Path,
    cni_conf: pathlib.Path,
    certs: pathlib.Path,
) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
# Written by tests/env/node.py.
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # This VM lacks CAP_SYS_RESOURCE: runc cannot lower a sandbox's oom_score_adj to -998.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [{cri}.registry]
    config_path = "{certs}"
"""


RUNC_ROOT = "/run/containerd/runc/k8s.io"  # where containerd's CRI has runc keep its state


def _remove_runc_containers(*, under: pathlib.Path) -> None:
    """`runc delete --force` every container whose bundle lies under `under` (a node's state)."""
    listed = subprocess.run(
        [RUNC, "--root", RUNC_ROOT, "list", "--format=json"],
        capture_output=True,
        text=True,
        check=False,
    )
    for state in json.loads(listed.stdout or "null") or []:
        if str(state.get("bundle", "")).startswith(f"{under}/"):
            subprocess.run(
                [RUNC, "--root", RUNC_ROOT, "delete", "--force", state["id"]],
                capture_output=True,
                check=False,
                timeout=30,
            )


def remove_stale_nodes() -> None:
    """What a node of an earlier run left when its test process was killed before teardown:
    its containers, shims, mounts and state under /run/ade-node-* (no containerd serves them)."""
    for state in pathlib.Path("/run").glob("ade-node-*"):
        if (state / "containerd.sock").exists() and _serving(state / "containerd.sock"):
            continue
        _remove_runc_containers(under=state)
        buildkitd.kill_processes_mentioning(state)
        folder = state / "folder"  # the node's folder (kubelet root, containerd root)
        if folder.exists():
            buildkitd.unmount_under(pathlib.Path(folder.read_text()))
        buildkitd.remove_tree(state)


def _serving(path: pathlib.Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _read_sysctl(key: str) -> str:
    return pathlib.Path("/proc/sys", key).read_text().strip()


def _write_sysctl(key: str, value: str) -> None:
    pathlib.Path("/proc/sys", key).write_text(value)


def _netns() -> set[str]:
    folder = pathlib.Path("/var/run/netns")
    return {str(p) for p in folder.iterdir()} if folder.is_dir() else set()


@contextlib.contextmanager
def running(
    plane: controlplane.ControlPlane, folder: pathlib.Path, images: NodeImages
) -> Iterator[Node]:
    node = Node(plane, folder, images)
    node.start()
    try:
        yield node
    finally:
        node.stop()
