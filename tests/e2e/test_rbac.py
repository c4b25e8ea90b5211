"""The chart's RBAC, proven on the real API server: exactly enough, and nothing more.

`helm install` puts the chart into the test control plane (no replicas: the image cannot be
pulled here; what matters is its ServiceAccount and roles). The operator then runs as a process,
authenticated only by a token for that ServiceAccount from the TokenRequest API, with the
environment the chart's Deployment sets, and reconciles a RunnerImage through a real Job build
(kwok node, real registry) to Ready. The audit log shows it was never refused anything but what
kopf is known to fall back from; direct requests with the same token show what it must not do
is refused with 403.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import buildjobs
from tests.env import controlplane, helm, kube, kwok, oci, registry, tokens
from tests.env import operator as operator_

pytestmark = pytest.mark.e2e

NAME = buildjobs.NAME
CRD = "runnerimages.runners.ade.dev"
RECEIVERS = "webhookreceivers.runners.ade.dev"

# What kopf asks for and does without in namespaced mode (a Role cannot grant cluster-scoped
# reads): it retries for about 54 s (its error backoffs), then assumes the listed namespaces exist
# and does not follow CRD changes. `settings.scanning.disabled = True` in the operator's startup
# handler would skip these requests (and the wait) altogether.
KOPF_FALLBACKS = {
    ("list", "namespaces"),
    ("watch", "namespaces"),
    ("list", "customresourcedefinitions"),
    ("watch", "customresourcedefinitions"),
}


@pytest.fixture
def other_namespace(cluster: kube.Cluster) -> Iterator[str]:
    """A namespace the operator does not watch, with a Secret in it."""
    name = f"t-other-{uuid.uuid4().hex[:8]}"
    cluster.plane.kubectl("create", "namespace", name)
    cluster.plane.kubectl(
        "create", "secret", "generic", "not-yours", "-n", name, "--from-literal=token=do-not-read"
    )
    yield name
    cluster.plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def service_account(chart_docs: list[helm.Manifest]) -> str:
    name: str = helm.one(chart_docs, "ServiceAccount")["metadata"]["name"]
    return name


def installed(
    chart: helm.Helm, plane: controlplane.ControlPlane, namespace: str
) -> list[helm.Manifest]:
    result = chart.run(
        "get", "manifest", "ade", "--namespace", namespace, "--kubeconfig", str(plane.kubeconfig)
    )
    return helm.parse_documents(result.stdout)


def requests_by(
    plane: controlplane.ControlPlane, user: str, since: float
) -> list[tuple[str, str, int]]:
    """(verb, resource[/subresource], HTTP code) of every request `user` made since `since`."""
    out = []
    for event in plane.audit_events():
        if event.get("user", {}).get("username") != user:
            continue
        stamp = event.get("requestReceivedTimestamp", "")
        if not stamp or _epoch(stamp) < since:
            continue
        ref: dict[str, Any] = event.get("objectRef") or {}
        resource = ref.get("resource", event.get("requestURI", ""))
        if ref.get("subresource"):
            resource = f"{resource}/{ref['subresource']}"
        out.append((event["verb"], resource, int(event.get("responseStatus", {}).get("code", 0))))
    return out


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_the_chart_service_account_reconciles_to_ready_and_nothing_more(
    cluster: kube.Cluster,
    namespace: str,
    other_namespace: str,
    release_namespace: str,
    chart: helm.Helm,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    tmp_path: pathlib.Path,
) -> None:
    plane = cluster.plane
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    since = time.time() - 1
    started = time.monotonic()
    chart.install(
        plane,
        release="ade",
        namespace=release_namespace,
        values={"watchNamespaces": f"{{{namespace}}}", "replicas": "0"},
    )
    installed_at = time.monotonic()
    docs = installed(chart, plane, release_namespace)
    account = service_account(docs)
    assert [r["metadata"]["namespace"] for r in helm.find(docs, "Role")] == [namespace]
    assert helm.find(docs, "ClusterRole") == []

    token = tokens.request_token(plane, namespace=release_namespace, account=account)
    kubeconfig = tokens.write_kubeconfig(
        plane, tmp_path / "operator-sa.kubeconfig", token=token, user=account
    )
    # The environment the chart gives the operator, but for ports and folders of this machine.
    env = {
        key: value
        for key, value in helm.container_env(helm.one(docs, "Deployment")).items()
        if key.startswith("ADE_")
        and key not in {"ADE_METRICS_PORT", "ADE_HEALTH_PORT", "ADE_WATCH_NAMESPACES"}
    }
    assert env.pop("ADE_WORK_DIR") == "/var/lib/ade-runner-operator"
    env["ADE_WORK_DIR"] = str(tmp_path / "work")
    assert env.pop("ADE_RECEIVER_PORT") == "9292"  # the process's own free one instead
    operator = operator_.OperatorProcess(
        kubeconfig=kubeconfig,
        namespaces=(namespace,),
        log=tmp_path / "operator.log",
        env=env,
    )
    operator.start()
    try:
        cluster.apply(
            namespace, json.dumps(buildjobs.runner_image(namespace, oci_registry.host, base_image))
        )
        cluster.wait_condition(namespace, NAME, "Reconciling", status="True", timeout=120)
        first_reconcile_at = time.monotonic()
        (job,) = buildjobs.one_job(cluster, namespace)
        buildjobs.finish(cluster, namespace, job, pusher)
        ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=90)
        ready_at = time.monotonic()
        assert ready["status"]["latestImage"]["digest"].startswith("sha256:")
        events = kube.wait_for(
            lambda: cluster.events(namespace, NAME), timeout=15, what="events posted by the SA"
        )
        assert events
    except BaseException:
        print(f"--- operator log ---\n{operator.logs()[-8000:]}")
        raise
    finally:
        operator.stop()
    print(
        f"\nchart install-to-Ready: {ready_at - started:.1f}s (helm install "
        f"{installed_at - started:.1f}s; operator start to first reconcile "
        f"{first_reconcile_at - installed_at:.1f}s; build and verify "
        f"{ready_at - first_reconcile_at:.1f}s)"
    )

    # Every request the operator made was allowed, but for kopf's known fallbacks.
    user = f"system:serviceaccount:{release_namespace}:{account}"
    made = requests_by(plane, user, since)
    assert made, "the audit log shows the operator's requests"
    refused = {(verb, resource) for verb, resource, code in made if code == 403}
    assert refused <= KOPF_FALLBACKS, f"the operator was refused {refused - KOPF_FALLBACKS}"
    used = sorted({(verb, resource) for verb, resource, code in made if code != 403})
    print("requests the operator made as its ServiceAccount:", used)

    # What it must not do, with the same token.
    client = tokens.TokenClient(plane, token)
    allowed = client.request("GET", f"/api/v1/namespaces/{namespace}/secrets/push")
    assert allowed[0] == 200, "control: the token works and may read a watched namespace's Secret"
    forbidden = {
        "read a Secret in a namespace it does not watch": (
            "GET",
            f"/api/v1/namespaces/{other_namespace}/secrets/not-yours",
            None,
        ),
        "list Secrets in its own namespace": (
            "GET",
            f"/api/v1/namespaces/{namespace}/secrets",
            None,
        ),
        "list RunnerImages in a namespace it does not watch": (
            "GET",
            f"/apis/runners.ade.dev/v1alpha1/namespaces/{other_namespace}/runnerimages",
            None,
        ),
        "delete the CRD": (
            "DELETE",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}?dryRun=All",
            None,
        ),
        "create a ClusterRole": (
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles?dryRun=All",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "escalate"},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
            },
        ),
        "create a Pod directly": (
            "POST",
            f"/api/v1/namespaces/{namespace}/pods?dryRun=All",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "escape"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        ),
        "bind a Role to itself": (
            "POST",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings?dryRun=All",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "escalate"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": account, "namespace": release_namespace}
                ],
            },
        ),
    }
    for what, (method, path, body) in forbidden.items():
        status, answer = client.request(method, path, body)
        assert status == 403, f"{what}: {status} {answer.get('message')}"
        assert answer.get("reason") == "Forbidden", what
        print(f"refused (403): {what}")

    # The same, as `kubectl auth can-i` sees it.
    def can(*args: str) -> bool:
        result = plane.kubectl(f"--kubeconfig={kubeconfig}", "auth", "can-i", *args, check=False)
        return result.stdout.strip() == "yes"

    assert can("get", "secrets", "-n", namespace)
    assert can("create", "jobs.batch", "-n", namespace)
    assert can("patch", "runnerimages.runners.ade.dev/status", "-n", namespace)
    assert not can("get", "secrets", "-n", other_namespace)
    assert not can("list", "secrets", "-n", namespace)
    assert not can("delete", f"customresourcedefinitions/{CRD}")
    assert not can("create", "clusterroles")
    assert not can("update", "jobs.batch", "-n", namespace)
    assert not can("list", "runnerimages.runners.ade.dev", "--all-namespaces")
    # WebhookReceivers: read in the watched namespace, only their status written.
    for verb in ("get", "list", "watch"):
        assert can(verb, RECEIVERS, "-n", namespace), verb
    assert can("patch", RECEIVERS, "--subresource=status", "-n", namespace)
    for verb in ("create", "update", "patch", "delete"):
        assert not can(verb, RECEIVERS, "-n", namespace), verb
    assert not can("list", RECEIVERS, "-n", other_namespace)
    assert not can("list", RECEIVERS, "--all-namespaces")


def test_cluster_wide_install_grants_the_same_everywhere_and_no_more(
    cluster: kube.Cluster, release_namespace: str, chart: helm.Helm
) -> None:
    plane = cluster.plane
    chart.install(plane, release="ade", namespace=release_namespace, values={"replicas": "2"})
    docs = installed(chart, plane, release_namespace)
    account = service_account(docs)
    assert helm.find(docs, "Role") == []
    (role,) = helm.find(docs, "ClusterRole")
    (peering,) = helm.find(docs, "ClusterKopfPeering")
    token = tokens.request_token(plane, namespace=release_namespace, account=account)
    kubeconfig = tokens.write_kubeconfig(
        plane, plane.folder / f"{release_namespace}.kubeconfig", token=token, user=account
    )

    def can(*args: str) -> bool:
        result = plane.kubectl(f"--kubeconfig={kubeconfig}", "auth", "can-i", *args, check=False)
        return result.stdout.strip() == "yes"

    assert can("list", "runnerimages.runners.ade.dev", "--all-namespaces")
    assert can("watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert can("get", "secrets", "-n", "kube-system")  # by name, anywhere: watchNamespaces narrows
    assert can("patch", f"clusterkopfpeerings.kopf.dev/{peering['metadata']['name']}")
    assert not can("patch", "clusterkopfpeerings.kopf.dev/someone-else")
    assert not can("list", "secrets", "--all-namespaces")
    assert not can("delete", f"customresourcedefinitions/{CRD}")
    assert not can("create", "clusterroles")
    assert not can("create", "pods", "-n", "default")
    assert not can("list", "namespaces")
    # WebhookReceivers everywhere: read, and only their status written.
    for verb in ("get", "list", "watch"):
        assert can(verb, RECEIVERS, "--all-namespaces"), verb
    assert can("patch", RECEIVERS, "--subresource=status", "-n", "default")
    for verb in ("create", "update", "patch", "delete", "deletecollection"):
        assert not can(verb, RECEIVERS, "-n", "default"), verb
    assert not can("update", RECEIVERS, "--subresource=status", "-n", "default")
    # Two replicas: a disruption budget, and peering through the ClusterKopfPeering kopf needs.
    assert helm.find(docs, "PodDisruptionBudget")
    assert role["metadata"]["name"] == helm.one(docs, "ClusterRoleBinding")["roleRef"]["name"]
