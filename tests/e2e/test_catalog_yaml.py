"""Write-back into any YAML end to end (`spec.catalog.format: YAML`): a Helm chart's values split
into `image.repository` and `image.tag`, and a Deployment's container image by
`spec.template.spec.containers[name=app].image`, through the operator (Job builds on the kwok
node, finished by the test; the catalog behind `git http-backend`). Comments stay, the other
document and the other container are untouched, and each RunnerImage makes one commit.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest

from tests.conftest import StartOperator
from tests.e2e import buildjobs
from tests.e2e.catalogs import GIT_PASSWORD, GIT_USER, git_secret, with_catalog
from tests.env import gitserver, kube, kwok, oci, registry

pytestmark = pytest.mark.e2e

VALUES = """\
# Default values for app.
replicaCount: 2
image:
  repository: old.example/app # where the image comes from
  tag: "1.4.2"
  pullPolicy: IfNotPresent
"""
DEPLOYMENT = """\
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      containers:
        - name: proxy
          image: envoyproxy/envoy:v1.30
        - name: app
          image: "old.example/app:1" # set by the operator
"""


@pytest.fixture
def git_server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        server.create_repo(
            "catalog", {"charts/app/values.yaml": VALUES, "k8s/app.yaml": DEPLOYMENT}
        )
        yield server


def test_a_helm_values_file_and_a_deployment_are_updated(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    git_secret(cluster, namespace)
    start_operator()
    url = git_server.url("catalog")
    bodies = {
        "chart": with_catalog(
            buildjobs.runner_image(namespace, oci_registry.host, base_image),
            url,
            ["charts/*/values.yaml"],
            format="YAML",
            field="image.tag",
            repositoryField="image.repository",
            adopt=["old.example/app:*"],
            commit={"messageTemplate": "Point {files} at {image}"},
        ),
        "deploy": with_catalog(
            buildjobs.runner_image(namespace, oci_registry.host, base_image),
            url,
            ["k8s/*.yaml"],
            format="YAML",
            field="spec.template.spec.containers[name=app].image",
        ),
    }
    images = {}
    for name, body in bodies.items():
        body["metadata"]["name"] = name
        body["spec"]["image"]["repository"] = f"{namespace}/{name}"
        cluster.apply(namespace, json.dumps(body))
        (job,) = kube.wait_for(
            lambda name=name: buildjobs.jobs(cluster, namespace, name) or None,  # type: ignore[misc]
            timeout=30,
            what=f"the build Job of {name}",
        )
        buildjobs.finish(cluster, namespace, job, pusher)
        ready = cluster.wait_condition(namespace, name, "Ready", status="True", timeout=60)
        images[name] = ready["status"]["latestImage"]["reference"]
        assert ready["status"]["catalog"]["changed"] == sorted(
            {"chart": ["charts/app/values.yaml"], "deploy": ["k8s/app.yaml"]}[name]
        )

    repository, tag = images["chart"].rsplit(":", 1)
    assert git_server.show("catalog", "main:charts/app/values.yaml") == VALUES.replace(
        "old.example/app", repository
    ).replace('"1.4.2"', f'"{tag}"').rstrip("\n")
    assert git_server.show("catalog", "main:k8s/app.yaml") == DEPLOYMENT.replace(
        "old.example/app:1", images["deploy"]
    ).rstrip("\n")
    log = git_server.log("catalog")
    assert len(log) == 3  # the initial commit and one per RunnerImage
    assert f"Point charts/app/values.yaml at {images['chart']}" in [c.subject for c in log]
