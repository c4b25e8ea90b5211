"""The operator's logs: JSON lines naming the RunnerImage and build key, and no credential ever.

Both tests take a RunnerImage to Ready with a git token, a push password and a catalog password
(`tests.e2e.observed`), at DEBUG level: the most the operator ever writes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e import observed
from tests.env import kube

pytestmark = pytest.mark.e2e

RECONCILE_LOGGERS = ("kopf.objects", "controller.reconcile.")


def test_json_logs_name_the_object_and_the_build_key(
    cluster: kube.Cluster,
    namespace: str,
    run_ready: observed.RunReady,
) -> None:
    with run_ready(ADE_LOG_FORMAT="json", ADE_LOG_LEVEL="DEBUG") as run:
        run.operator.stop()
        text = run.operator.logs()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line[:300]!r}")
    assert all({"timestamp", "severity", "logger", "message"} <= r.keys() for r in records)
    ours = [r for r in records if r.get("namespace") == namespace]
    reconcile = [r for r in records if r["logger"].startswith(RECONCILE_LOGGERS)]
    assert reconcile, "no line of a reconcile"
    for record in reconcile:
        if record.get("kind") == "Job":  # kopf's lines about the build Jobs it watches
            assert record.get("namespace") == namespace, record
            assert str(record.get("name")).startswith(f"{observed.NAME}-build-"), record
        else:
            assert record.get("kind") == "RunnerImage", record
            assert (record.get("namespace"), record.get("name")) == (namespace, observed.NAME), (
                record
            )
    key = run.ready["status"]["buildKey"]
    keyed = [r for r in ours if r.get("buildKey") == key]
    assert any(r["message"].startswith("started build") for r in keyed), "no build start line"
    assert any("succeeded" in r["message"] for r in keyed), "no build end line"
    # Lines of other loggers inside the reconcile carry the object too (git, registry, kube).
    assert {r["logger"] for r in ours} - {"kopf.objects"}, "only kopf's lines name the object"


def test_no_credential_is_ever_logged(
    cluster: kube.Cluster,
    namespace: str,
    run_ready: observed.RunReady,
) -> None:
    with run_ready(ADE_LOG_LEVEL="DEBUG") as run:
        # A manual trigger: one more full pass over the source, registry and catalog.
        cluster.plane.kubectl(
            "annotate", "ri", observed.NAME, "-n", namespace, "--overwrite",
            "runners.ade.dev/reconcile-requested-at=logs-test",
        )  # fmt: skip
        kube.wait_for(
            lambda: (
                (cluster.get(namespace, observed.NAME) or {})
                .get("status", {})
                .get("lastHandledReconcileAt")
                == "logs-test"
            ),
            timeout=30,
            what="the manual reconcile",
        )
        run.operator.stop()
        text = run.operator.logs()
    assert f"[{namespace}/{observed.NAME}" in text  # plain lines name the object
    assert len(text.splitlines()) > 50, "DEBUG logs expected"
    for secret in observed.SECRETS:
        assert secret not in text, f"a credential ({secret[:4]}...) is in the operator's log"
