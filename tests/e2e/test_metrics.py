"""`/metrics` of the running operator: the figures move with a reconcile to Ready, and go away
with the RunnerImage."""

from __future__ import annotations

import datetime

import pytest
from prometheus_client import parser

from tests.e2e import observed
from tests.env import kube, registry

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """(every sample by name and labels, the help text of every family)."""
    samples: Samples = {}
    helps: dict[str, str] = {}
    for family in parser.text_string_to_metric_families(text):
        helps[family.name] = family.documentation
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, helps


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def total(samples: Samples, metric: str, **labels: str) -> float:
    """The sum over every series of `metric` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and wanted <= ls)


def test_metrics_move_with_a_reconcile_to_ready_and_leave_with_the_object(
    cluster: kube.Cluster,
    namespace: str,
    oci_registry: registry.Registry,
    run_ready: observed.RunReady,
) -> None:
    with run_ready() as run:
        text = run.operator.metrics()
    before, _ = parse(run.metrics_before)
    after, helps = parse(text)
    obj = {"namespace": namespace, "name": observed.NAME}

    for name, documentation in helps.items():
        assert name.startswith("ade_runner_"), name
        assert documentation, f"{name} has no help"
    for moved in (
        ("ade_runner_reconciles_total", {"result": "ready"}),
        ("ade_runner_reconcile_duration_seconds_count", {}),
        ("ade_runner_status_patches_total", {}),
        ("ade_runner_builds_total", {"backend": "Job", "result": "started", "reason": "Initial"}),
        ("ade_runner_builds_total", {"backend": "Job", "result": "succeeded", "reason": "Initial"}),
        ("ade_runner_build_duration_seconds_count", {"backend": "Job"}),
        ("ade_runner_registry_requests_total", {"operation": "manifest", "status_class": "2xx"}),
        ("ade_runner_registry_requests_total", {"operation": "token", "status_class": "2xx"}),
        ("ade_runner_git_operations_total", {"purpose": "source", "operation": "ls-remote"}),
        ("ade_runner_git_operations_total", {"purpose": "source", "operation": "fetch"}),
        ("ade_runner_git_operations_total", {"purpose": "catalog", "operation": "clone"}),
        ("ade_runner_git_operations_total", {"purpose": "catalog", "operation": "push"}),
        ("ade_runner_git_operation_duration_seconds_count", {"operation": "push"}),
        ("ade_runner_catalog_commits_total", {}),
    ):
        metric, labels = moved
        assert total(after, metric, **labels) > total(before, metric, **labels), moved
    assert total(after, "ade_runner_git_operations_total", result="failed") == 0
    assert value(after, "ade_runner_ready", **obj) == 1.0
    built_at = datetime.datetime.fromisoformat(
        run.ready["status"]["latestImage"]["builtAt"].replace("Z", "+00:00")
    )
    stamp = value(after, "ade_runner_last_successful_build_timestamp_seconds", **obj)
    assert stamp == built_at.timestamp()
    assert value(after, "ade_runner_builds_in_flight") == 0
    assert value(after, "ade_runner_builds_queued") == 0
    for forbidden in (run.ready["status"]["latestImage"]["digest"], oci_registry.host, "sha256:"):
        assert forbidden not in text, f"{forbidden} in a label"

    # Deleted: no series of the object is left.
    cluster.plane.kubectl("delete", "ri", observed.NAME, "-n", namespace)

    def forgotten() -> bool:
        return f'namespace="{namespace}"' not in run.operator.metrics()

    kube.wait_for(forgotten, timeout=30, what="the object's series to go")
