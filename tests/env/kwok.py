"""Simulated nodes for Job builds: kwok runs one fake node, and its stages move build pods.

Pods are scheduled by the real kube-scheduler onto the fake node and become Running. They finish
only when a test says so, by labelling the pod (so timing is in the test's hands, never a race):

- `kwok.ade.dev/complete=true` with annotation `kwok.ade.dev/digest=sha256:...`: the container
  terminates with exit code 0 and a termination message holding BuildKit's metadata JSON with
  that digest (what `cat metadata.json > /dev/termination-log` produces in a real build pod);
- `kwok.ade.dev/complete=fail`: the container exits 1 with a build-log-like message
  (`FAILURE_MESSAGE`, or the pod's annotation `kwok.ade.dev/failure`).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

from tests.env import controlplane, kube, process

NODE = "kwok-node-0"
COMPLETE_LABEL = "kwok.ade.dev/complete"
DIGEST_ANNOTATION = "kwok.ade.dev/digest"
FAILURE_ANNOTATION = "kwok.ade.dev/failure"
FAILURE_MESSAGE = "#7 ERROR: process '/bin/sh -c exit 3' did not complete successfully: exit code 3"

LEASE_SECONDS = 40
"""The fake node's Lease duration, a kubelet's default; kwok renews it well within."""

STAGES = pathlib.Path(__file__).with_name("kwok-stages.yaml")
"""kwok's Stage objects: pod-ready, pod-complete (on the label), pod-fail, pod-delete."""


class Kwok:
    """One fake node managed by kwok against the test control plane."""

    def __init__(self, plane: controlplane.ControlPlane, folder: pathlib.Path) -> None:
        self.plane = plane
        self.folder = folder
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "kwok.yaml"
        config.write_text(STAGES.read_text())
        with (self.folder / "kwok.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(self.plane.bin / "kwok"),
                    f"--kubeconfig={self.plane.kubeconfig}",
                    f"--config={config}",
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    "--server-address=127.0.0.1:0",
                    # A Lease renewed as a kubelet renews its own: the node lifecycle controller
                    # (run for the real node) reads it as the node's heartbeat. Without one it
                    # read kwok's status updates, which a loaded machine spaced past the 50 s
                    # grace period: the node flapped NotReady, tainted, and a build pod's
                    # scheduler reason came out as the taint (CI: test_builds_job, pending pod).
                    f"--node-lease-duration-seconds={LEASE_SECONDS}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.plane.kubectl("apply", "-f", "-", input=json.dumps(_node()))
        kube.wait_for(self._node_ready, timeout=60, what=f"node {NODE} Ready", interval=0.2)
        kube.wait_for(self._lease_held, timeout=60, what=f"node {NODE}'s Lease", interval=0.2)
        # The API server taints new nodes not-ready; lift it at once rather than wait for the
        # node lifecycle controller.
        self.plane.kubectl("patch", "node", NODE, "--type=merge", "-p", '{"spec":{"taints":null}}')

    def _node_ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError((self.folder / "kwok.log").read_text()[-3000:])
        out = self.plane.kubectl(
            "get", "node", NODE, "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False,
        )  # fmt: skip
        return out.stdout.strip() == "True"

    def _lease_held(self) -> bool:
        out = self.plane.kubectl(
            "get", "lease", NODE, "-n", "kube-node-lease", "-o", "jsonpath={.spec.renewTime}",
            check=False,
        )  # fmt: skip
        return bool(out.stdout.strip())

    def stop(self) -> None:
        process.terminate(self._proc)
        self._proc = None


def _node() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        },
    }
