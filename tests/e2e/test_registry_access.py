"""Registry access end to end: the operator (a process) manages the Azure registry through the
real Azure SDKs against the ARM emulator, proves ADE can pull, and only then moves the catalog.

The chain, on the real API server, registry (behind the ACR-like token server) and git server:
anonymous pull refused -> the operator turns it on through ARM (a long-running PATCH; the
emulator flips the token server's switch) -> the operator pulls the pushed digest anonymously
-> the catalog commit lands -> ADE's catalog sync is asked for. Then drift: someone turns
anonymous pull off and the operator turns it on again, saying so. PrivatePull grants AcrPull
instead and never touches anonymous pull. Throttling is waited out as Retry-After says; missing
permissions and a missing registry stall before any build, naming what is missing. No
credential or token reaches status, Events or the operator's log.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from controller.api import spec
from controller.azure import names
from controller.registry import client as registry_client
from tests.conftest import (
    ARM_CLIENT_ID,
    ARM_CLIENT_SECRET,
    ARM_READER_CLIENT_ID,
    ARM_READER_SECRET,
    PUSH_PASSWORD,
    StartOperator,
)
from tests.e2e import buildjobs
from tests.e2e.azure import azure_env, azure_secret
from tests.e2e.catalogs import GIT_PASSWORD, GIT_USER, MANIFEST, git_secret, with_catalog
from tests.env import arm as arm_
from tests.env import gitserver, kube, kwok, oci, registry, tokenserver

pytestmark = pytest.mark.e2e

SUB = "4c0ffee0-0000-4000-8000-0000000000b2"
GROUP = "rg-ade-runners"
ACR = "contosoade"
DEV_CENTER, CATALOG = "contoso-dc", "runners"
PRINCIPALS = ("3c3c3c3c-0000-4000-8000-000000000003", "4d4d4d4d-0000-4000-8000-000000000004")
ACR_REF = spec.AcrRef(subscription_id=SUB, resource_group=GROUP, name=ACR)
MANIFEST_PATH = "Environments/webapp/environment.yaml"


@pytest.fixture
def git_server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        server.create_repo("catalog", {MANIFEST_PATH: MANIFEST.format(name="webapp")})
        yield server


def runner(
    namespace: str, host: str, base: str, *, mode: str = "AnonymousPull", **access: Any
) -> dict[str, Any]:
    body = buildjobs.runner_image(namespace, host, base)
    body["spec"]["registryAccess"] = {
        "mode": mode,
        "acr": {
            "subscriptionId": SUB,
            "resourceGroup": GROUP,
            "name": ACR,
            "credentialsSecretRef": {"name": "azure"},
        },
        **access,
    }
    return body


def anonymous_digest(host: str, reference: str) -> str:
    """Pull `reference`'s manifest as ADE does, with no credentials at all."""

    async def pull() -> str:
        client = registry_client.RegistryClient(insecure_hosts=[host])
        try:
            return (await client.resolve(ref=reference)).digest
        finally:
            await client.aclose()

    return asyncio.run(pull())


def finish_build(cluster: kube.Cluster, namespace: str, pusher: oci.Pusher) -> str:
    (job,) = kube.wait_for(
        lambda: buildjobs.jobs(cluster, namespace) or None, timeout=60, what="the build Job"
    )
    return buildjobs.finish(cluster, namespace, job, pusher)


def assert_no_secrets(
    cluster: kube.Cluster, namespace: str, arm: arm_.ArmEmulator, logs: str, *extra: str
) -> None:
    """No credential the test used and no token ARM issued in status, Events or the log."""
    forbidden = {ARM_CLIENT_SECRET, ARM_READER_SECRET, PUSH_PASSWORD, GIT_PASSWORD, *extra}
    forbidden |= set(arm.issued_tokens())
    objects = cluster.plane.kubectl("get", "ri,events", "-n", namespace, "-o", "json").stdout
    for text, where in ((objects, "status and Events"), (logs, "the operator's log")):
        leaked = sorted(secret for secret in forbidden if secret in text)
        assert not leaked, f"{len(leaked)} secret(s) in {where}"


def test_anonymous_pull_chain_drift_and_catalog_sync(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    token_server: tokenserver.TokenServer,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    arm: arm_.ArmEmulator,
) -> None:
    arm.add_registry(SUB, GROUP, ACR, login_server=oci_registry.host, anonymous_pull=False)
    arm.add_catalog(SUB, GROUP, CATALOG, dev_center=DEV_CENTER)
    token_server.set_anonymous_pull(False)
    with pytest.raises(registry_client.RegistryAuthError):  # ADE could not pull: the start
        anonymous_digest(oci_registry.host, base_image)
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    git_secret(cluster, namespace)
    azure_secret(cluster, namespace, client_id=ARM_CLIENT_ID, secret=ARM_CLIENT_SECRET)
    operator = start_operator(
        **azure_env(arm, ADE_AZURE_CHECK_INTERVAL="1s", ADE_RESYNC_INTERVAL="1s")
    )
    body = with_catalog(
        runner(namespace, oci_registry.host, base_image),
        git_server.url("catalog"),
        [MANIFEST_PATH],
        sync={
            "subscriptionId": SUB,
            "resourceGroup": GROUP,
            "devCenter": DEV_CENTER,
            "catalog": CATALOG,
            "credentialsSecretRef": {"name": "azure"},
        },
    )
    before = git_server.head("catalog", "main")
    cluster.apply(namespace, json.dumps(body))

    # Access is ensured before the build: the PATCH has landed once the build Job exists.
    digest = finish_build(cluster, namespace, pusher)
    assert arm.registry(ACR).anonymous_pull
    assert arm.registry(ACR).public_network_access == "Enabled"
    patches = [r for r in arm.requests if r.method == "PATCH" and ACR in r.path]
    assert len(patches) == 1, patches
    assert patches[0].body["properties"]["anonymousPullEnabled"] is True

    ready = cluster.wait_condition(namespace, buildjobs.NAME, "Ready", status="True", timeout=90)
    status = ready["status"]
    reference = status["latestImage"]["reference"]
    assert anonymous_digest(oci_registry.host, reference) == digest
    verified = kube.condition(ready, "Verified")
    assert verified is not None
    assert "pulls anonymously" in verified["message"]
    assert "ADE runner conformant" in verified["message"]
    access = kube.condition(ready, "RegistryAccessReady")
    assert access is not None
    assert access["status"] == "True"
    assert status["registry"]["resourceId"].lower() == names.registry_id(ACR_REF).lower()
    assert status["registry"]["anonymousPull"] is True
    assert status["registry"]["publicNetworkAccess"] == "Enabled"
    assert "repairedAt" not in status["registry"]  # turning it on the first time is set-up
    enabled = [
        e
        for e in cluster.events(namespace, buildjobs.NAME)
        if e["reason"] == "RegistryAccessEnabled"
    ]
    assert [e["type"] for e in enabled] == ["Normal"]

    head = git_server.head("catalog", "main")
    assert head != before
    assert status["catalog"]["revision"] == head
    assert status["catalog"]["syncedRevision"] == head
    syncs = [s for s in arm.syncs if s.catalog == CATALOG]
    assert [s.status for s in syncs] == ["Succeeded"]
    assert syncs[0].time > patches[0].time

    # Drift: someone turns anonymous pull off; the operator turns it back on and reports it.
    arm.set_registry(ACR, anonymous_pull=False)
    kube.wait_for(lambda: arm.registry(ACR).anonymous_pull or None, timeout=30, what="the repair")
    events = kube.wait_for(
        lambda: (
            [
                e
                for e in cluster.events(namespace, buildjobs.NAME)
                if e["reason"] == "RegistryAccessDrifted"
            ]
            or None
        ),
        timeout=30,
        what="a RegistryAccessDrifted Event",
    )
    assert events[-1]["type"] == "Warning"
    assert "anonymous pull was off" in events[-1]["message"]
    kube.wait_for(
        lambda: (
            (cluster.get(namespace, buildjobs.NAME) or {})["status"]["registry"].get("repairedAt")
            or None
        ),
        timeout=30,
        what="status.registry.repairedAt to move",
    )
    assert anonymous_digest(oci_registry.host, reference) == digest
    assert len(arm.syncs) == 1  # the catalog did not move: no second sync
    assert arm.retry_after_violations == []
    assert_no_secrets(cluster, namespace, arm, operator.logs())


def test_private_pull_grants_acr_pull_and_leaves_anonymous_pull_off(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    token_server: tokenserver.TokenServer,
    pusher: oci.Pusher,
    base_image: str,
    arm: arm_.ArmEmulator,
) -> None:
    state = arm.add_registry(SUB, GROUP, ACR, login_server=oci_registry.host)
    registry_id = names.registry_id(ACR_REF)
    acr_pull = names.role_definition_id(SUB)
    theirs = arm.add_role_assignment(registry_id, acr_pull, PRINCIPALS[0])  # made by someone else
    token_server.set_anonymous_pull(False)
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    azure_secret(cluster, namespace, client_id=ARM_CLIENT_ID, secret=ARM_CLIENT_SECRET)
    operator = start_operator(**azure_env(arm))
    body = runner(
        namespace, oci_registry.host, base_image, mode="PrivatePull", principalIds=list(PRINCIPALS)
    )
    cluster.apply(namespace, json.dumps(body))
    finish_build(cluster, namespace, pusher)
    ready = cluster.wait_condition(namespace, buildjobs.NAME, "Ready", status="True", timeout=90)

    assignments = [a for a in arm.role_assignments() if a.scope.lower() == registry_id.lower()]
    holders = sorted(a.principal_id for a in assignments if a.role in acr_pull.lower())
    assert holders == sorted(PRINCIPALS)  # one each: the existing one kept, none duplicated
    assert theirs.name in {a.name for a in assignments}
    assert ready["status"]["registry"]["principals"] == sorted(PRINCIPALS)
    assert ready["status"]["registry"]["mode"] == "PrivatePull"
    assert "repairedAt" not in ready["status"]["registry"]
    assert not arm.registry(ACR).anonymous_pull
    assert not state.anonymous_pull
    assert not token_server.anonymous_pull
    verified = kube.condition(ready, "Verified")
    assert verified is not None
    assert "anonymously" not in verified["message"]
    assert not [r for r in arm.requests if r.method == "PATCH"]
    assert_no_secrets(cluster, namespace, arm, operator.logs())


def test_throttled_registry_reads_wait_as_retry_after_says(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    token_server: tokenserver.TokenServer,
    pusher: oci.Pusher,
    base_image: str,
    arm: arm_.ArmEmulator,
) -> None:
    arm.add_registry(SUB, GROUP, ACR, login_server=oci_registry.host, anonymous_pull=False)
    arm.inject(method="GET", path_contains=f"/registries/{ACR}", status=429, times=2, retry_after=1)
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    azure_secret(cluster, namespace, client_id=ARM_CLIENT_ID, secret=ARM_CLIENT_SECRET)
    start_operator(**azure_env(arm))
    cluster.apply(namespace, json.dumps(runner(namespace, oci_registry.host, base_image)))
    finish_build(cluster, namespace, pusher)
    cluster.wait_condition(namespace, buildjobs.NAME, "Ready", status="True", timeout=90)
    throttled = [r for r in arm.requests if r.status == 429]
    assert len(throttled) == 2
    assert arm.retries
    assert arm.retry_after_violations == []


@pytest.mark.parametrize(
    ("client_id", "secret", "acr", "reason", "named"),
    [
        pytest.param(
            ARM_READER_CLIENT_ID,
            ARM_READER_SECRET,
            ACR,
            "RegistryAccessDenied",
            "Microsoft.ContainerRegistry/registries/write",
            id="reader-may-not-write",
        ),
        pytest.param(
            ARM_CLIENT_ID,
            ARM_CLIENT_SECRET,
            "nosuchacr",
            "RegistryNotFound",
            "nosuchacr",
            id="missing-registry",
        ),
        pytest.param(
            ARM_CLIENT_ID,
            ARM_CLIENT_SECRET,
            "elsewhere",
            "RegistryMismatch",
            "elsewhere.azurecr.io",
            id="registry-the-image-is-not-pushed-to",
        ),
        pytest.param(
            ARM_CLIENT_ID,
            "wrong-s3cret-value",
            ACR,
            "AzureCredentialsInvalid",
            ARM_CLIENT_ID,
            id="wrong-client-secret",
        ),
    ],
)
def test_access_problems_stall_before_any_build_naming_what_is_missing(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    oci_registry: registry.Registry,
    base_image: str,
    arm: arm_.ArmEmulator,
    client_id: str,
    secret: str,
    acr: str,
    reason: str,
    named: str,
) -> None:
    arm.add_registry(SUB, GROUP, ACR, login_server=oci_registry.host, anonymous_pull=False)
    arm.add_registry(SUB, GROUP, "elsewhere", login_server="elsewhere.azurecr.io")
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    azure_secret(cluster, namespace, client_id=client_id, secret=secret)
    operator = start_operator(**azure_env(arm))
    body = runner(namespace, oci_registry.host, base_image)
    body["spec"]["registryAccess"]["acr"]["name"] = acr
    cluster.apply(namespace, json.dumps(body))
    stalled = cluster.wait_condition(
        namespace, buildjobs.NAME, "Stalled", status="True", reason=reason, timeout=60
    )
    access = kube.condition(stalled, "RegistryAccessReady")
    assert access is not None
    assert (access["status"], access["reason"]) == ("False", reason)
    assert named in access["message"]
    assert buildjobs.jobs(cluster, namespace) == []  # nothing built for a registry ADE can't use
    assert not arm.registry(ACR).anonymous_pull
    assert not arm.registry("elsewhere").anonymous_pull  # nothing changed on a wrong registry
    assert_no_secrets(cluster, namespace, arm, operator.logs(), secret)
