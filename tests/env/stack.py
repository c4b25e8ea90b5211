"""The local stack for a new user: the whole product end to end on loopback, from `examples/`.

`python -m tests.env.stack` (run by `hack/demo.sh`) starts, under `.stack/`: the control plane,
a token-auth registry on 127.0.0.1:5000 (ACR's token flow, anonymous pull off), buildkitd, the
ARM emulator (Azure Resource Manager and Entra ID over TLS, holding the examples' registry and
dev center catalog; turning anonymous pull on flips the token server's switch), the catalog
repository over git HTTP on 127.0.0.1:5080, and the operator; seeds the stand-in ADE core image
into the registry (as a user with a registry mirror would), creates the Secrets, applies every
example, waits until each is built, pushed, made pullable, verified and written into the
catalog, and prints what `kubectl get runnerimages -o wide` shows, the registry's access and the
catalog commit. It keeps running until Ctrl-C (or stops at once with `--once`). Meanwhile
`export KUBECONFIG=.stack/admin.kubeconfig` lets you use kubectl on it.
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
from typing import Any

from ruamel.yaml import YAML

from tests.env import arm, buildkitd, controlplane, gitserver, images, kube, registry, tokenserver
from tests.env import operator as operator_

NAMESPACE = "ade-demo"
REGISTRY_PORT = 5000
USER = "demo"
SECRET = "registry-push"
GIT_PORT = 5080
GIT_USER = "catalog-bot"
TENANT_ID = "72f988bf-0000-4000-8000-00000000de60"
CLIENT_ID = "0b7c4f62-0000-4000-8000-00000000de61"
CATALOG_MANIFEST = """\
name: webapp
version: 1.0.0
summary: A web app
description: Deploys a web app with Bicep
runner: "mcr.microsoft.com/deployment-environments/runners/core:latest"
templatePath: main.bicep
"""


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
        plane.kubectl("apply", "-f", str(controlplane.REPO / "crds"))
        plane.kubectl(
            "wait", "--for=condition=Established", "crd/runnerimages.runners.ade.dev",
            "crd/webhookreceivers.runners.ade.dev", "--timeout=60s",
        )  # fmt: skip
        plane.kubectl("create", "namespace", NAMESPACE)
        plane.kubectl(
            "create", "secret", "docker-registry", SECRET, "-n", NAMESPACE,
            f"--docker-server={oci.host}", f"--docker-username={USER}",
            f"--docker-password={password}",
        )  # fmt: skip
        example = _example()
        azure, git = _azure_and_catalog(folder, tokens, oci.host, example, stack, password)
        _secrets(plane, password)
        operator = operator_.OperatorProcess(
            kubeconfig=plane.user_kubeconfig(kube.OPERATOR_USER, "system:masters"),
            namespaces=(),
            log=folder / "logs" / "operator.log",
            env={
                "ADE_BUILDKIT_ADDR": builder.address,
                "PATH": f"{builder.bin}:{os.environ['PATH']}",
                "ADE_WORK_DIR": str(folder / "work"),
                "ADE_AZURE_RESOURCE_MANAGER": azure.base_url,
                "ADE_AZURE_AUTHORITY_HOST": azure.authority,
                "ADE_AZURE_CA_BUNDLE": str(azure.ca_file),
                "ADE_AZURE_CREDENTIAL_SCOPE": arm.ARM_SCOPE,
            },
        )
        what = f"the operator (log: {operator.log}, metrics on :{operator.metrics_port})"
        stack.enter_context(_started(what, operator.start, operator.stop))
        cluster = kube.Cluster(plane)
        for name in _apply_examples(plane):
            _say(f"waiting for {name}: built, pushed, pullable by ADE, verified, in the catalog")
            cluster.wait_condition(NAMESPACE, name, "Ready", status="True", timeout=args.timeout)
        _say(f"kubectl get runnerimages -n {NAMESPACE} -o wide")
        print(plane.kubectl("get", "runnerimages", "-n", NAMESPACE, "-o", "wide").stdout)
        columns = (
            "NAME:.metadata.name,DIGEST:.status.latestImage.digest,"
            "REASON:.status.latestImage.reason"
        )
        print(plane.kubectl("get", "ri", "-n", NAMESPACE, "-o", f"custom-columns={columns}").stdout)
        acr = example["spec"]["registryAccess"]["acr"]["name"]
        state = azure.registry(acr)
        _say(
            f"registry {acr} (ARM emulator): anonymousPullEnabled={state.anonymous_pull}, "
            f"publicNetworkAccess={state.public_network_access}; catalog syncs: "
            f"{[sync.status for sync in azure.syncs]}"
        )
        _say("the catalog commit (git log -p -1):")
        print(git.show("catalog"))
        if args.once:
            return 0
        _say(f"the stack is up: export KUBECONFIG={plane.kubeconfig}; Ctrl-C stops it")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        _say("stopping")
    return 0


def _example() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(
        controlplane.REPO / "examples" / "runnerimage.yaml"
    )
    return loaded


def _azure_and_catalog(
    folder: pathlib.Path,
    tokens: tokenserver.TokenServer,
    registry_host: str,
    example: dict[str, Any],
    stack: contextlib.ExitStack,
    password: str,
) -> tuple[arm.ArmEmulator, gitserver.GitServer]:
    """The ARM emulator holding the example's registry and catalog, and the catalog repository
    the example writes to (its URL's port)."""
    spec = example["spec"]
    acr, sync = spec["registryAccess"]["acr"], spec["catalog"]["sync"]
    azure = arm.ArmEmulator(
        folder / "arm",
        tenant_id=TENANT_ID,
        principals={CLIENT_ID: arm.Principal(secret=password)},
        on_anonymous_pull=lambda _registry, enabled: tokens.set_anonymous_pull(enabled),
        lro_retry_after=1,
    )
    stack.enter_context(
        _started("the ARM emulator (Azure Resource Manager)", azure.start, azure.stop)
    )
    azure.add_registry(
        acr["subscriptionId"], acr["resourceGroup"], acr["name"], login_server=registry_host
    )
    azure.add_catalog(
        sync["subscriptionId"], sync["resourceGroup"], sync["catalog"], dev_center=sync["devCenter"]
    )
    git = gitserver.GitServer(folder / "git", {GIT_USER: password}, port=GIT_PORT)
    stack.enter_context(_started(f"the catalog repository on {git.base_url}", git.start, git.stop))
    git.create_repo("catalog", {"Environments/webapp/environment.yaml": CATALOG_MANIFEST})
    return azure, git


def _secrets(plane: controlplane.ControlPlane, password: str) -> None:
    """The Secrets the example names: Azure credentials (tenantId, clientId, clientSecret) and
    the catalog's git credentials."""
    plane.kubectl(
        "create", "secret", "generic", "azure-credentials", "-n", NAMESPACE,
        f"--from-literal=tenantId={TENANT_ID}", f"--from-literal=clientId={CLIENT_ID}",
        f"--from-literal=clientSecret={password}",
    )  # fmt: skip
    plane.kubectl(
        "create", "secret", "generic", "catalog-git", "-n", NAMESPACE,
        f"--from-literal=username={GIT_USER}", f"--from-literal=password={password}",
    )  # fmt: skip


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
