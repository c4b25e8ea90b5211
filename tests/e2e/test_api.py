"""The CRD on a real API server: the example is accepted, bad input refused, columns shown."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.env import controlplane, kube

pytestmark = pytest.mark.e2e

EXAMPLE = (controlplane.REPO / "examples" / "runnerimage.yaml").read_text()

VALID = {
    "apiVersion": "runners.ade.dev/v1alpha1",
    "kind": "RunnerImage",
    "metadata": {"name": "probe"},
    "spec": {
        "source": {"git": {"url": "https://git.example.com/platform/runners.git"}},
        "image": {"registry": "contoso.azurecr.io", "repository": "ade/bicep"},
    },
}


def _with(path: str, value: object) -> dict[str, object]:
    """VALID with the dotted `path` set to `value` (None deletes it)."""
    obj = json.loads(json.dumps(VALID))
    *parents, last = path.split(".")
    node = obj
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return obj  # type: ignore[no-any-return]


def test_example_is_accepted_with_defaults(cluster: kube.Cluster, namespace: str) -> None:
    cluster.apply(namespace, EXAMPLE)
    obj = cluster.get(namespace, "bicep-runner")
    assert obj is not None
    spec = obj["spec"]
    assert spec["image"]["tag"] == "{shortRevision}-{shortBuildKey}"
    assert spec["platforms"] == ["linux/amd64"]
    assert spec["suspend"] is False
    assert spec["dockerfile"] == "Dockerfile"
    assert cluster.plane.kubectl("get", "ri", "-n", namespace, "-o", "name").stdout.strip() == (
        "runnerimage.runners.ade.dev/bicep-runner"
    )


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "spec.source.inline",
            {"dockerfile": "FROM x", "scripts": {"deploy.sh": "", "delete.sh": ""}},
            "exactly one of spec.source.git or spec.source.inline must be set",
        ),
        (
            "spec.source",
            {},
            "exactly one of spec.source.git or spec.source.inline must be set",
        ),
        ("spec.image.registry", "https://contoso.azurecr.io", "spec.image.registry"),
        ("spec.image.repository", "ADE/Bicep", "spec.image.repository"),
        ("spec.image.tag", "{branch}-1", "spec.image.tag"),
        ("spec.source.git.url", "not a url", "spec.source.git.url"),
        ("spec.build", {"backend": "Kaniko"}, 'Unsupported value: "Kaniko"'),
        (
            "spec.registryAccess",
            {"acr": {"subscriptionId": "x", "resourceGroup": "rg", "name": "contoso"}},
            "spec.registryAccess.acr.subscriptionId",
        ),
        (
            "spec.registryAccess",
            {
                "mode": "PrivatePull",
                "acr": {
                    "subscriptionId": "00000000-0000-0000-0000-000000000000",
                    "resourceGroup": "rg",
                    "name": "contoso",
                },
            },
            "spec.registryAccess.principalIds is required when mode is PrivatePull",
        ),
        ("spec.buildArgs", {"BAD-NAME": "x"}, "build argument names must match"),
        ("spec.platforms", ["linux"], "spec.platforms[0]"),
        ("spec.historyLimit", {"succeeded": -1}, "spec.historyLimit.succeeded"),
        (
            "spec.catalog",
            {"git": {"url": "https://g/x.git"}, "manifests": [], "pin": "Sha"},
            'Unsupported value: "Sha"',
        ),
        ("spec.image", None, "spec.image: Required value"),
        (
            "spec.build",
            {"tolerations": [{"key": "a", "operator": "In"}]},
            'Unsupported value: "In"',
        ),
        ("spec.build", {"tolerations": [{"key": "a", "effect": "Never"}]}, "Unsupported value"),
        (
            "spec.build",
            {"tolerations": [{"value": "x"}]},
            "operator must be Exists when key is empty",
        ),
        (
            "spec.build",
            {"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]},
            "value must be empty when operator is Exists",
        ),
        (
            "spec.build",
            {"tolerations": [{"key": "a", "tolerationSeconds": 5}]},
            "tolerationSeconds needs effect NoExecute",
        ),
        ("spec.build", {"resources": {"limits": {"memory": "4GB"}}}, "should match"),
        ("spec.build", {"resources": {"limits": {"cpu": 0.5}}}, "spec.build.resources.limits"),
        ("spec.build", {"nodeSelector": {"pool": "a b"}}, "should match"),
        ("spec.build", {"serviceAccountName": "Runner"}, "spec.build.serviceAccountName"),
        (
            "spec.build",
            {"backend": "Docker", "attestations": {"sbom": True}},
            "the Docker backend cannot attach attestations",
        ),
        (
            "spec.build",
            {"backend": "Docker", "attestations": {"provenance": "Max"}},
            "the Docker backend cannot attach attestations",
        ),
        ("spec.build", {"attestations": {"provenance": "Full"}}, 'Unsupported value: "Full"'),
    ],
)
def test_invalid_resources_are_refused(
    cluster: kube.Cluster, namespace: str, path: str, value: object, message: str
) -> None:
    result = cluster.plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(_with(path, value)), check=False
    )
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr
    assert cluster.get(namespace, "probe") is None


def test_build_pod_settings_are_accepted_and_kept(cluster: kube.Cluster, namespace: str) -> None:
    build: dict[str, Any] = {
        "resources": {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"memory": "4Gi"}},
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [
            {"key": "dedicated", "value": "builds", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
        ],
        "serviceAccountName": "runner-builds",
    }
    cluster.apply(namespace, json.dumps(_with("spec.build", build)))
    obj = cluster.get(namespace, "probe")
    assert obj is not None
    kept = obj["spec"]["build"]
    assert kept["resources"] == build["resources"]
    assert kept["nodeSelector"] == build["nodeSelector"]
    assert kept["serviceAccountName"] == "runner-builds"
    assert kept["tolerations"][0]["operator"] == "Equal"  # the default, as a pod's
    assert kept["tolerations"][1:] == build["tolerations"][1:]


def test_inline_source_needs_both_ade_scripts(cluster: kube.Cluster, namespace: str) -> None:
    obj = _with("spec.source", {"inline": {"dockerfile": "FROM x", "scripts": {"deploy.sh": ""}}})
    result = cluster.plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False
    )
    assert result.returncode != 0
    assert "must contain deploy.sh and delete.sh" in result.stderr


def test_printer_columns_show_status(cluster: kube.Cluster, namespace: str) -> None:
    cluster.apply(namespace, json.dumps(VALID))
    status = {
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": "image is in the catalog",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "latestImage": {"reference": "contoso.azurecr.io/ade/bicep:abc123-def456"},
            "catalog": {"revision": "0123456789abcdef0123456789abcdef01234567"},
        }
    }
    cluster.plane.kubectl(
        "patch", "ri", "probe", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    table = cluster.plane.kubectl("get", "runnerimages", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "IMAGE", "CATALOG", "AGE"]
    assert table[1].split()[:4] == [
        "probe",
        "True",
        "contoso.azurecr.io/ade/bicep:abc123-def456",
        "0123456789abcdef0123456789abcdef01234567",
    ]
    wide = cluster.plane.kubectl("get", "ri", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "IMAGE", "CATALOG", "AGE", "REASON", "MESSAGE"]
    assert wide[1].split()[5:] == ["Succeeded", "image", "is", "in", "the", "catalog"]
    waited = cluster.plane.kubectl(
        "wait", "ri/probe", "-n", namespace, "--for=condition=Ready", "--timeout=10s"
    )
    assert "condition met" in waited.stdout
