"""The operator's own image, built from the repository's Dockerfile, installed by the chart and
running as a pod on the real node: a user's first `helm install`, for real.

The pod runs as the chart says (non-root, read-only root file system, no capabilities, seccomp
RuntimeDefault), passes its probes, and takes a RunnerImage through a real rootless BuildKit Job
(on the same node), verification and catalog write-back to Ready; the catalog's branch takes only
signed commits, so the commit is signed in the pod (OpenPGP with a passphrase: GnuPG and its
agent under the read-only root). The only settings that differ
from a cluster are the network ones the test node needs (`tests.env.node`): host networking for
the operator and its build pods, and the API server's address on loopback.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import pathlib
import time
from typing import Any

import pytest

from tests.e2e import buildjobs, catalogs
from tests.e2e.releases import chart_values, install, ready_pod
from tests.env import gitserver, helm, kube, node, node_images, registry, signing_keys
from tests.observability import prom

pytestmark = pytest.mark.e2e

NAME = buildjobs.NAME
MANIFEST = "Environments/webapp/environment.yaml"
PASSPHRASE = "Pod-Signing-Passphrase"


def test_the_chart_runs_the_operator_image_on_the_real_node_to_ready(
    cluster: kube.Cluster,
    namespace: str,
    release_namespace: str,
    chart: helm.Helm,
    real_node: node.Node,
    node_image_store: node_images.Served,
    oci_registry: registry.Registry,
    base_image: str,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plane = cluster.plane
    store, images = node_image_store
    with contextlib.ExitStack() as stack:
        users = {catalogs.GIT_USER: catalogs.GIT_PASSWORD}
        server = stack.enter_context(gitserver.running(tmp_path / "git", users))
        server.create_repo("catalog", {MANIFEST: catalogs.MANIFEST.format(name="webapp")})
        # a protected branch: the commit must be signed (OpenPGP: GnuPG and its agent in the pod)
        key = signing_keys.openpgp_key(tmp_path / "keys", passphrase=PASSPHRASE)
        server.require_signed("catalog", openpgp_key=key.public)
        buildjobs.push_secret(cluster, namespace, oci_registry.host)
        catalogs.git_secret(cluster, namespace)
        (tmp_path / "keys" / "git.asc").write_bytes(key.private)
        plane.kubectl(
            "create", "secret", "generic", "catalog-signing", "-n", namespace,
            f"--from-file=git.asc={tmp_path / 'keys' / 'git.asc'}",
            f"--from-literal=passphrase={PASSPHRASE}",
        )  # fmt: skip
        body = buildjobs.on_real_node(
            buildjobs.runner_image(namespace, oci_registry.host, base_image), real_node
        )
        catalogs.with_catalog(
            body,
            server.url("catalog"),
            [MANIFEST],
            signing={"secretRef": {"name": "catalog-signing"}},
        )
        cluster.apply(namespace, json.dumps(body))

        values = chart_values(plane, images, real_node, namespace=namespace)
        monitoring = chart.template(
            prom.MONITORING_VALUES, release=prom.RELEASE, namespace=prom.NAMESPACE
        )
        rules = prom.write_yaml(tmp_path / "rules.yaml", prom.rules_of(monitoring))
        (tmp_path / "prometheus").mkdir()
        scraper = prom.Prometheus(
            tmp_path / "prometheus",
            job=prom.JOB,
            targets=[f"127.0.0.1:{values['ports']['metrics']}"],
            target_labels={"namespace": release_namespace},
            rule_files=[rules],
        )
        stack.enter_context(scraper)
        start = time.monotonic()
        installed_at = datetime.datetime.now(datetime.UTC)
        install(chart, plane, release_namespace, values, tmp_path / "values")
        kube.wait_for(
            lambda: (cluster.get(namespace, NAME) or {}).get("status", {}).get("conditions"),
            timeout=120,
            what="the first status the operator pod writes",
            interval=0.1,
        )
        first_reconcile = time.monotonic() - start
        ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=240)
        to_ready = time.monotonic() - start
        pod = ready_pod(plane, release_namespace)
        signed = server.signatures("catalog", "-1", "main")[0]
        queried = dashboard_on_the_pod(scraper, prom.dashboard_of(monitoring), namespace)

    # The pod wrote it, as the chart's ServiceAccount (no other operator runs in this test).
    account = pod["spec"]["serviceAccountName"]
    writes = cluster.writes_by(
        f"system:serviceaccount:{release_namespace}:{account}", since=installed_at
    )
    assert any((w.get("objectRef") or {}).get("subresource") == "status" for w in writes), writes
    assert pod["spec"]["nodeName"] == real_node.name
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 0
    assert status["ready"] is True
    assert ready["status"]["latestImage"]["digest"].startswith("sha256:")
    assert signed[:2] == ("G", "Catalog Bot <bot@example.test>"), signed
    with capsys.disabled():
        print(f"\n[figure] a real Prometheus scraped the operator pod: {queried}")
    started = _seconds(status["state"]["running"]["startedAt"]) - _seconds(
        pod["metadata"]["creationTimestamp"]
    )
    size = store.compressed_size(images.operator) / 2**20
    with capsys.disabled():
        print(
            f"\n[figure] operator image {size:.1f} MiB compressed; helm install -> first reconcile "
            f"{first_reconcile:.1f} s (pod created -> container started {started:.0f} s) -> "
            f"RunnerImage Ready {to_ready:.1f} s (a real Job build included)"
        )


def dashboard_on_the_pod(scraper: prom.Prometheus, board: dict[str, Any], namespace: str) -> str:
    """Every query of the shipped dashboard evaluates without error on what a real Prometheus
    scraped from the operator pod, and the panels about this RunnerImage show it."""

    def scraped() -> bool:
        ready = scraper.query(f'ade_runner_ready{{namespace="{namespace}"}}')
        return any(sample["value"][1] == "1" for sample in ready)

    kube.wait_for(scraped, timeout=60, what="the pod's ade_runner_ready scraped as 1")
    filled = prom.variables(scraper, board)
    assert filled, "the dashboard's variables found no values in what was scraped"
    targets = prom.targets_of(board)
    with_data = {t.panel for t in targets if scraper.query(prom.substitute(t.expr, filled))}
    for panel in (
        "RunnerImages",
        "Builds by result and backend",
        "Time since the last successful build",
    ):
        assert panel in with_data, (panel, sorted(with_data))
    empty = sorted({t.panel for t in targets} - with_data)
    return (
        f"{len(targets)} dashboard queries evaluated, {len(with_data)} panels with data; "
        f"nothing yet for: {', '.join(empty) or 'none'}"
    )


def _seconds(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
