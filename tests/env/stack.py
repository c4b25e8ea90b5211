"""The local stack for a new user: control plane, CRD, the operator and examples/, end to end.

`python -m tests.env.stack` (run by `hack/demo.sh`) starts everything under `.stack/`, applies
every example, waits until the operator has reported each one in status, prints what
`kubectl get runnerimages -o wide` shows, and keeps running until Ctrl-C (or exits at once with
`--once`). Meanwhile `export KUBECONFIG=.stack/admin.kubeconfig` lets you use kubectl on it.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import shutil
import signal
import sys
import threading
import time

from ruamel.yaml import YAML

from tests.env import controlplane, kube
from tests.env import operator as operator_

NAMESPACE = "ade-demo"


def _say(message: str) -> None:
    print(f"[stack {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/demo.sh")
    parser.add_argument("--dir", type=pathlib.Path, default=controlplane.REPO / ".stack")
    parser.add_argument("--once", action="store_true", help="stop after showing the status")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    folder: pathlib.Path = args.dir.resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)

    _say("starting etcd, kube-apiserver and kube-controller-manager on loopback")
    plane = controlplane.ControlPlane(folder)
    plane.start()
    operator: operator_.OperatorProcess | None = None
    try:
        _say(f"API server at {plane.server}; kubeconfig {plane.kubeconfig}")
        plane.kubectl("apply", "-f", str(controlplane.REPO / "crds" / "runnerimages.yaml"))
        plane.kubectl(
            "wait", "--for=condition=Established", "crd/runnerimages.runners.ade.dev",
            "--timeout=60s",
        )  # fmt: skip
        plane.kubectl("create", "namespace", NAMESPACE)
        operator = operator_.OperatorProcess(
            kubeconfig=plane.user_kubeconfig(kube.OPERATOR_USER, "system:masters"),
            namespaces=(),
            log=folder / "logs" / "operator.log",
        )
        _say(f"starting the operator (log: {operator.log}, metrics on :{operator.metrics_port})")
        operator.start()
        cluster = kube.Cluster(plane)
        names = _apply_examples(plane)
        for name in names:
            cluster.wait_condition(NAMESPACE, name, "Ready", timeout=args.timeout)
        _say(f"kubectl get runnerimages -n {NAMESPACE} -o wide")
        print(plane.kubectl("get", "runnerimages", "-n", NAMESPACE, "-o", "wide").stdout)
        print(plane.kubectl("describe", "runnerimages", "-n", NAMESPACE).stdout)
        if args.once:
            return 0
        _say(f"the stack is up: export KUBECONFIG={plane.kubeconfig}; Ctrl-C stops it")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        return 0
    finally:
        _say("stopping")
        if operator is not None:
            operator.stop()
        plane.stop()


def _apply_examples(plane: controlplane.ControlPlane) -> list[str]:
    names = []
    for path in sorted((controlplane.REPO / "examples").glob("*.yaml")):
        _say(f"kubectl apply -f {path.relative_to(controlplane.REPO)}")
        plane.kubectl("apply", "-n", NAMESPACE, "-f", str(path))
        for document in YAML(typ="safe").load_all(path.read_text()):
            if document and document.get("kind") == "RunnerImage":
                names.append(document["metadata"]["name"])
    return names


if __name__ == "__main__":
    sys.exit(main())
