"""The local stack for a new user: the whole product end to end on loopback, from `examples/`.

`python -m tests.env.stack` (run by `hack/demo.sh`) starts, under `.stack/`: the control plane,
a token-auth registry on 127.0.0.1:5000 (ACR's token flow), buildkitd, and the operator; seeds
the stand-in ADE core image into the registry (as a user with a registry mirror would), creates
the push Secret, applies every example, waits until each is built, pushed and verified, and
prints what `kubectl get runnerimages -o wide` shows with the pushed digests. It keeps running
until Ctrl-C (or stops at once with `--once`). Meanwhile `export
KUBECONFIG=.stack/admin.kubeconfig` lets you use kubectl on it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

from ruamel.yaml import YAML

from tests.env import buildkitd, controlplane, images, kube, registry, tokenserver
from tests.env import operator as operator_

NAMESPACE = "ade-demo"
REGISTRY_PORT = 5000
USER = "demo"
SECRET = "registry-push"


def _say(message: str) -> None:
    print(f"[stack {time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def _started(name: str, start: Callable[[], None], stop: Callable[[], None]) -> Iterator[None]:
    _say(f"starting {name}")
    start()
    try:
        yield
    finally:
        stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/demo.sh")
    parser.add_argument("--dir", type=pathlib.Path, default=controlplane.REPO / ".stack")
    parser.add_argument("--once", action="store_true", help="stop after showing the status")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    folder: pathlib.Path = args.dir.resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    password = secrets.token_urlsafe(16)
    plane = controlplane.ControlPlane(folder)
    tokens = tokenserver.TokenServer(
        folder / "token-server", users={USER: tokenserver.User(password=password)}
    )
    oci = registry.Registry(folder / "registry", tokens, port=REGISTRY_PORT)
    short = pathlib.Path(tempfile.mkdtemp(prefix="ade-bk-"))  # a unix socket path is short
    builder = buildkitd.BuildkitDaemon(short, insecure_registries=[oci.host])
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, short, True)
        stack.enter_context(_started("etcd, kube-apiserver, controller manager, scheduler",
                                     plane.start, plane.stop))  # fmt: skip
        _say(f"API server at {plane.server}; kubeconfig {plane.kubeconfig}")
        stack.enter_context(_started("the registry's token service", tokens.start, tokens.stop))
        stack.enter_context(_started(f"the registry on {oci.host}", oci.start, oci.stop))
        stack.enter_context(_started("buildkitd", builder.start, builder.stop))
        docker_config = folder / "docker"
        docker_config.mkdir()
        (docker_config / "config.json").write_text(
            registry.docker_config_json(oci.host, user=USER, password=password)
        )
        os.environ["DOCKER_CONFIG"] = str(docker_config)
        core = f"{oci.host}/{images.CORE_REPOSITORY}:{images.CORE_TAG}"
        _say(f"seeding the stand-in ADE core image as {core}")
        images.push_core(builder, core)
        plane.kubectl("apply", "-f", str(controlplane.REPO / "crds" / "runnerimages.yaml"))
        plane.kubectl(
            "wait", "--for=condition=Established", "crd/runnerimages.runners.ade.dev",
            "--timeout=60s",
        )  # fmt: skip
        plane.kubectl("create", "namespace", NAMESPACE)
        plane.kubectl(
            "create", "secret", "docker-registry", SECRET, "-n", NAMESPACE,
            f"--docker-server={oci.host}", f"--docker-username={USER}",
            f"--docker-password={password}",
        )  # fmt: skip
        operator = operator_.OperatorProcess(
            kubeconfig=plane.user_kubeconfig(kube.OPERATOR_USER, "system:masters"),
            namespaces=(),
            log=folder / "logs" / "operator.log",
            env={
                "ADE_BUILDKIT_ADDR": builder.address,
                "PATH": f"{builder.bin}:{os.environ['PATH']}",
                "ADE_WORK_DIR": str(folder / "work"),
            },
        )
        what = f"the operator (log: {operator.log}, metrics on :{operator.metrics_port})"
        stack.enter_context(_started(what, operator.start, operator.stop))
        cluster = kube.Cluster(plane)
        for name in _apply_examples(plane):
            _say(f"waiting for {name} to be built, pushed and verified")
            cluster.wait_condition(NAMESPACE, name, "Ready", status="True", timeout=args.timeout)
        _say(f"kubectl get runnerimages -n {NAMESPACE} -o wide")
        print(plane.kubectl("get", "runnerimages", "-n", NAMESPACE, "-o", "wide").stdout)
        columns = (
            "NAME:.metadata.name,DIGEST:.status.latestImage.digest,"
            "REASON:.status.latestImage.reason"
        )
        print(plane.kubectl("get", "ri", "-n", NAMESPACE, "-o", f"custom-columns={columns}").stdout)
        if args.once:
            return 0
        _say(f"the stack is up: export KUBECONFIG={plane.kubeconfig}; Ctrl-C stops it")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        _say("stopping")
    return 0


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
