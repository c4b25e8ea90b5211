"""Shared fixtures: the real control plane (once a session), a namespace a test, the operator."""

from __future__ import annotations

import base64
import pathlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from tests.env import arm as arm_
from tests.env import controlplane, kube, kwok, oci, registry, tokenserver
from tests.env import operator as operator_


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    folder = tmp_path_factory.mktemp("control-plane")
    with controlplane.running(folder) as plane:
        plane.kubectl("apply", "-f", str(controlplane.REPO / "crds"))
        plane.kubectl(
            "wait",
            "--for=condition=Established",
            "crd/runnerimages.runners.ade.dev",
            "crd/webhookreceivers.runners.ade.dev",
            "--timeout=60s",
        )
        # Established is not served yet: until the API server's cache of a new resource is
        # filled, a list is answered 429 "storage is (re)initializing" with Retry-After 1 s, and
        # the first operator to start (kopf lists, then watches) lost a second to it. kubectl
        # waits the Retry-After out.
        plane.kubectl("get", "runnerimages,webhookreceivers", "--all-namespaces")
        yield plane


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: controlplane.ControlPlane) -> pathlib.Path:
    """The operator's own identity, so the audit log can tell its requests apart."""
    return control_plane.user_kubeconfig(kube.OPERATOR_USER, "system:masters")


@pytest.fixture
def cluster(control_plane: controlplane.ControlPlane) -> kube.Cluster:
    return kube.Cluster(control_plane)


@pytest.fixture(scope="session")
def admin_objects(control_plane: controlplane.ControlPlane) -> client.CustomObjectsApi:
    """A client of custom objects as the cluster's admin, for the fixtures' own housekeeping."""
    return kube.custom_objects(control_plane)


@pytest.fixture
def namespace(cluster: kube.Cluster, admin_objects: client.CustomObjectsApi) -> Iterator[str]:
    """A namespace of its own per test; deleted after the test (and after its operator stopped,
    which depends on this fixture). The operator's objects in it are deleted first, their
    finalizers taken off (`kube.clear_namespace`), so that the namespace goes at once instead of
    staying Terminating with them, and the next test does not share the machine with their
    deletion."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.plane.kubectl("create", "namespace", name)
    yield name
    kube.clear_namespace(admin_objects, name)
    cluster.plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


PUSH_USER = "pusher"
PUSH_PASSWORD = "pUsh-s3cret-Pa55word"  # the test registry's; grepped for in every output
GIT_USER, GIT_PASSWORD = "catalog-bot", "c4talog-Pa55"  # the catalog repositories'


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tokenserver.TokenServer]:
    """The ACR-like token service in front of the test registry (anonymous pull off)."""
    server = tokenserver.TokenServer(
        tmp_path_factory.mktemp("token-server"),
        users={PUSH_USER: tokenserver.User(password=PUSH_PASSWORD)},
    )
    server.start()
    yield server
    server.stop()


ARM_TENANT_ID = "6d1f3c2e-8a4b-4f7e-9c0d-a11e5e7e57ed"
ARM_CLIENT_ID = "0b7c4f62-3e1a-4d9b-8f25-0a1de0a7e001"
ARM_OBJECT_ID = "5e0c1a9d-7b2f-4c61-a3d8-0a1de0a7e0b1"
ARM_CLIENT_SECRET = "aRm-s3cret-Cl1ent-Value"  # the operator's app; grepped for in outputs
ARM_READER_CLIENT_ID = "9a3e5d71-2c4b-4e8f-b1a6-0a1de0a7e002"
ARM_READER_SECRET = "aRm-r3ader-Cl1ent-Value"  # may read, never write, assign or sync


@pytest.fixture
def arm(
    tmp_path_factory: pytest.TempPathFactory, token_server: tokenserver.TokenServer
) -> Iterator[arm_.ArmEmulator]:
    """Azure Resource Manager and Entra ID on loopback HTTPS (`tests.env.arm`), empty.

    Two apps sign in: `ARM_CLIENT_ID` may do everything, `ARM_READER_CLIENT_ID` only read.
    A registry's anonymous pull, once changed, flips the token server's switch (restored after).
    Operations poll fast (Retry-After 0.1 s as `retry-after-ms`).
    """
    before = token_server.anonymous_pull
    emulator = arm_.ArmEmulator(
        tmp_path_factory.mktemp("arm"),
        tenant_id=ARM_TENANT_ID,
        principals={
            ARM_CLIENT_ID: arm_.Principal(secret=ARM_CLIENT_SECRET, object_id=ARM_OBJECT_ID),
            ARM_READER_CLIENT_ID: arm_.Principal(
                secret=ARM_READER_SECRET,
                can_write_registry=False,
                can_assign_roles=False,
                can_sync_catalogs=False,
            ),
        },
        on_anonymous_pull=lambda _registry, enabled: token_server.set_anonymous_pull(enabled),
        lro_retry_after=0.1,
    )
    with emulator:
        yield emulator
    token_server.set_anonymous_pull(before)


@pytest.fixture(scope="session")
def oci_registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: tokenserver.TokenServer
) -> Iterator[registry.Registry]:
    """A real distribution registry (Debian's docker-registry) behind token auth."""
    with registry.running(tmp_path_factory.mktemp("registry"), token_server) as running:
        yield running


def docker_config_json(host: str) -> str:
    return registry.docker_config_json(host, user=PUSH_USER, password=PUSH_PASSWORD)


@pytest.fixture(scope="session")
def kwok_node(control_plane: controlplane.ControlPlane) -> Iterator[kwok.Kwok]:
    """A fake node (kwok) that runs Job build pods as the tests direct."""
    node = kwok.Kwok(control_plane, control_plane.folder / "kwok")
    node.start()
    yield node
    node.stop()


@pytest.fixture
def pusher(oci_registry: registry.Registry) -> Iterator[oci.Pusher]:
    with oci.Pusher(oci_registry.host, username=PUSH_USER, password=PUSH_PASSWORD) as client:
        yield client


@pytest.fixture
def base_image(pusher: oci.Pusher, namespace: str, oci_registry: registry.Registry) -> str:
    """A stand-in core image in the registry (a synthetic image with an entrypoint)."""
    image = oci.Image(
        layers=[[oci.file("usr/local/bin/entrypoint.sh", '#!/bin/sh\nexec "$@"\n', 0o755)]],
        entrypoint=["/usr/local/bin/entrypoint.sh"],
    )
    pusher.push_image(f"{namespace}/core", image, tag="4.0")
    return f"{oci_registry.host}/{namespace}/core:4.0"


StartOperator = Callable[..., operator_.OperatorProcess]

_OPERATOR_LOGS: list[pathlib.Path] = []


def _credentials() -> set[str]:
    """Every credential the tests hand the operator, and the encodings it could leak them in."""
    plain = {
        PUSH_PASSWORD,
        GIT_PASSWORD,
        ARM_CLIENT_SECRET,
        ARM_READER_SECRET,
        "wrong-s3cret-value",  # a wrong client secret some tests use
        "s3cr3t-t0ken",  # embedded in a URL by a test of refusing it
    }
    encoded = {base64.b64encode(value.encode()).decode() for value in plain}
    encoded.add(base64.b64encode(f"{PUSH_USER}:{PUSH_PASSWORD}".encode()).decode())
    encoded.add(base64.b64encode(f"{GIT_USER}:{GIT_PASSWORD}".encode()).decode())
    return plain | encoded


@pytest.fixture(scope="session", autouse=True)
def no_credential_in_any_operator_log() -> Iterator[None]:
    """After the whole run: no operator log of any test holds a credential the tests used."""
    yield
    leaks = {
        str(log): sorted(c for c in _credentials() if c in log.read_text(errors="replace"))
        for log in _OPERATOR_LOGS
        if log.exists()
    }
    leaked = {log: found for log, found in leaks.items() if found}
    assert not leaked, f"credentials in operator logs: {sorted(leaked)} ({len(leaks)} logs read)"


@pytest.fixture
def start_operator(
    operator_kubeconfig: pathlib.Path,
    namespace: str,
    tmp_path: pathlib.Path,
    request: pytest.FixtureRequest,
) -> Iterator[StartOperator]:
    """Start the operator (as a process) watching this test's namespace; stopped at teardown."""
    started: list[operator_.OperatorProcess] = []

    def start(
        module: str = "controller", timeout: float = 60.0, **env: str
    ) -> operator_.OperatorProcess:
        process = operator_.OperatorProcess(
            module=module,
            kubeconfig=operator_kubeconfig,
            namespaces=(namespace,),
            log=tmp_path / f"operator-{len(started)}.log",
            # A work folder of this test's own (kept across restarts within the test): with the
            # default one, shared by every test, a catalog clone of an earlier test's git server
            # that had the same port would be found in the clone cache.
            env={"ADE_WORK_DIR": str(tmp_path / "work"), **env},
        )
        _OPERATOR_LOGS.append(process.log)
        process.start(timeout=timeout)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        if request.node.stash.get(_FAILED, False):
            print(f"--- operator log {process.log} ---\n{process.logs()[-8000:]}")


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if getattr(report, "failed", False):
        item.stash[_FAILED] = True
    return report
