"""The report_* functions of controller.observe.metrics, the naming rules, and `forget`.

Read through the operator's own registry, without a cluster. Label values are unique to each
test so counters that other tests move do not matter.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import prometheus_client
import pytest
from prometheus_client import parser

from controller.observe import metrics
from controller.registry import client


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


# -- naming ----------------------------------------------------------------------------------

UNBOUNDED = {"digest", "tag", "url", "image", "reference", "commit", "revision", "registry", "sha"}
BASE_UNITS = re.compile(r"_(milliseconds|ms|minutes|hours|kilobytes|megabytes|percent)(_|$)")


def test_every_metric_has_the_prefix_help_and_a_conventional_name() -> None:
    families = list(metrics.REGISTRY.collect())
    assert len(families) >= 19
    for family in families:
        assert family.name.startswith(f"{metrics.PREFIX}_"), family.name
        assert family.documentation.strip(), f"{family.name} has no help text"
        assert not BASE_UNITS.search(family.name), family.name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", family.name), family.name
        if family.type == "counter":
            # prometheus_client exposes counters as <name>_total (and _created).
            assert not family.name.endswith("_total")
            exposed = f"{family.name}_total"
            assert exposed.endswith("_total")
        elif family.type == "histogram":
            assert family.name.endswith("_seconds"), f"{family.name}: durations in seconds"
        elif family.type == "gauge":
            assert not family.name.endswith("_total"), family.name
            if "timestamp" in family.name:
                assert family.name.endswith("_timestamp_seconds"), family.name
        else:
            pytest.fail(f"{family.name}: unexpected type {family.type}")


def test_no_label_is_unbounded() -> None:
    for collector in metrics.REGISTRY._collector_to_names:
        names = set(getattr(collector, "_labelnames", ()))
        assert not names & UNBOUNDED, (collector, names)
        assert names <= {
            "namespace", "name", "result", "backend", "reason", "operation", "status",
            "status_class", "purpose", "rule", "type", "outcome",
        }, names  # fmt: skip


def test_the_exposition_parses() -> None:
    text = prometheus_client.generate_latest(metrics.REGISTRY).decode()
    names = {family.name for family in parser.text_string_to_metric_families(text)}
    assert "ade_runner_builds" in names
    assert "# HELP ade_runner_builds_total" in text


# -- reports ---------------------------------------------------------------------------------


def test_report_build_counts_results_and_observes_finished_durations() -> None:
    labels = {"backend": "UnitBackend", "reason": "Initial"}
    count = sample("ade_runner_build_duration_seconds_count", backend="UnitBackend")
    backend, reason = labels["backend"], labels["reason"]
    metrics.report_build(backend=backend, reason=reason, result="started")
    metrics.report_build(backend=backend, reason=reason, result="succeeded", seconds=42.0)
    metrics.report_build(backend=backend, reason=reason, result="failed", seconds=3.0)
    metrics.report_build(backend=backend, reason=reason, result="failed")  # no start time known
    metrics.report_build(backend=backend, reason=reason, result="reused")
    assert sample("ade_runner_builds_total", **labels, result="started") == 1
    assert sample("ade_runner_builds_total", **labels, result="succeeded") == 1
    assert sample("ade_runner_builds_total", **labels, result="failed") == 2
    assert sample("ade_runner_builds_total", **labels, result="reused") == 1
    assert sample("ade_runner_build_duration_seconds_count", backend="UnitBackend") == count + 2
    assert sample("ade_runner_build_duration_seconds_sum", backend="UnitBackend") == 45.0


def test_report_build_queued_is_a_set_of_objects() -> None:
    before = sample("ade_runner_builds_queued")
    metrics.report_build_queued(namespace="unit-q", name="a", queued=True)
    metrics.report_build_queued(namespace="unit-q", name="a", queued=True)
    metrics.report_build_queued(namespace="unit-q", name="b", queued=True)
    assert sample("ade_runner_builds_queued") == before + 2
    metrics.report_build_queued(namespace="unit-q", name="a", queued=False)
    assert sample("ade_runner_builds_queued") == before + 1
    metrics.forget(namespace="unit-q", name="b")
    assert sample("ade_runner_builds_queued") == before


def test_builds_in_flight_are_read_at_scrape_time() -> None:
    held = {("ns", "a", "k1"), ("ns", "b", "k2")}
    metrics.watch_builds_in_flight(lambda: len(held))
    assert sample("ade_runner_builds_in_flight") == 2
    held.clear()
    assert sample("ade_runner_builds_in_flight") == 0


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (307, "3xx"), (404, "4xx"), (503, "5xx"), (None, "error"), (42, "error")],
)
def test_status_class(status: int | None, expected: str) -> None:
    assert metrics.status_class(status) == expected


def test_report_registry_request_counts_requests_and_errors() -> None:
    metrics.report_registry_request(operation="unit-manifest", status=200, failed=False)
    metrics.report_registry_request(operation="unit-manifest", status=404, failed=False)
    metrics.report_registry_request(operation="unit-manifest", status=503, failed=True)
    metrics.report_registry_request(operation="unit-manifest", status=None, failed=True)
    total = "ade_runner_registry_requests_total"
    errors = "ade_runner_registry_request_errors_total"
    for status_class in ("2xx", "4xx", "5xx", "error"):
        assert sample(total, operation="unit-manifest", status_class=status_class) == 1
    assert sample(errors, operation="unit-manifest", status_class="2xx") == 0
    assert sample(errors, operation="unit-manifest", status_class="4xx") == 0
    assert sample(errors, operation="unit-manifest", status_class="5xx") == 1
    assert sample(errors, operation="unit-manifest", status_class="error") == 1


def test_the_registry_client_reports_every_attempt() -> None:
    answers = iter([httpx.Response(503), httpx.Response(404)])

    async def scenario() -> None:
        async def no_sleep(_: float) -> None:
            return None

        registry = client.RegistryClient(
            transport=httpx.MockTransport(lambda _: next(answers)), sleep=no_sleep
        )
        async with registry:
            with pytest.raises(client.ManifestNotFound):
                await registry.resolve(ref="127.0.0.1:5999/unit/metrics:1")

    total = "ade_runner_registry_requests_total"
    before = {c: sample(total, operation="manifest", status_class=c) for c in ("4xx", "5xx")}
    failed = sample(
        "ade_runner_registry_request_errors_total", operation="manifest", status_class="5xx"
    )
    asyncio.run(scenario())
    assert sample(total, operation="manifest", status_class="5xx") == before["5xx"] + 1
    assert sample(total, operation="manifest", status_class="4xx") == before["4xx"] + 1
    assert (
        sample("ade_runner_registry_request_errors_total", operation="manifest", status_class="5xx")
        == failed + 1
    )


def test_report_azure_request_counts_operations_and_errors() -> None:
    metrics.report_azure_request("unit.registries.get", 200)
    metrics.report_azure_request("unit.registries.get", 404)
    metrics.report_azure_request("unit.registries.get", "timeout")
    metrics.report_azure_request("unit.registries.get", "no such thing: https://x/y?secret")
    total, errors = "ade_runner_azure_requests_total", "ade_runner_azure_request_errors_total"
    op = "unit.registries.get"
    assert sample(total, operation=op, status="200") == 1
    assert sample(total, operation=op, status="404") == 1
    assert sample(total, operation=op, status="timeout") == 1
    assert sample(total, operation=op, status="error") == 1  # free text is folded
    assert sample(errors, operation=op, status="200") == 0
    assert sample(errors, operation=op, status="404") == 1
    assert sample(errors, operation=op, status="timeout") == 1


def test_report_git_operation_counts_retries_and_rejections() -> None:
    labels = {"purpose": "unit-catalog", "operation": "push"}
    retries, rejected = (
        sample("ade_runner_git_push_retries_total"),
        sample("ade_runner_git_pushes_rejected_total"),
    )
    metrics.report_git_operation(**labels, result="rejected", seconds=0.5, attempt=1)
    metrics.report_git_operation(**labels, result="ok", seconds=0.25, attempt=2)
    metrics.report_git_operation(
        purpose="unit-catalog", operation="fetch", result="ok", seconds=1.0
    )
    assert sample("ade_runner_git_operations_total", **labels, result="rejected") == 1
    assert sample("ade_runner_git_operations_total", **labels, result="ok") == 1
    assert sample("ade_runner_git_operation_duration_seconds_sum", **labels, result="ok") == 0.25
    assert sample("ade_runner_git_push_retries_total") == retries + 1
    assert sample("ade_runner_git_pushes_rejected_total") == rejected + 1


def test_report_catalog_commit() -> None:
    before = sample("ade_runner_catalog_commits_total")
    metrics.report_catalog_commit()
    assert sample("ade_runner_catalog_commits_total") == before + 1


def test_report_conformance_findings_counts_each_finding_by_rule() -> None:
    before = sample("ade_runner_conformance_failures_total", rule="UnitScriptMissing")
    metrics.report_conformance_findings(
        ["UnitScriptMissing", "UnitScriptCRLF", "UnitScriptMissing"]
    )
    metrics.report_conformance_findings([])
    assert sample("ade_runner_conformance_failures_total", rule="UnitScriptMissing") == before + 2
    assert sample("ade_runner_conformance_failures_total", rule="UnitScriptCRLF") == 1


def test_report_last_successful_build_sets_and_drops() -> None:
    labels = {"namespace": "unit-ns", "name": "unit-built"}
    name = "ade_runner_last_successful_build_timestamp_seconds"
    metrics.report_last_successful_build(**labels, timestamp=1_750_000_000.0)
    assert metrics.REGISTRY.get_sample_value(name, labels) == 1_750_000_000.0
    metrics.report_last_successful_build(**labels, timestamp=None)
    assert metrics.REGISTRY.get_sample_value(name, labels) is None


def test_forget_removes_every_per_object_series() -> None:
    labels = {"namespace": "unit-forget", "name": "gone"}
    metrics.report_ready(**labels, ready=True)
    metrics.report_last_successful_build(**labels, timestamp=1.0)
    metrics.report_build_queued(**labels, queued=True)

    def series() -> list[str]:
        return [
            sample.name
            for family in metrics.REGISTRY.collect()
            for sample in family.samples
            if sample.labels.get("namespace") == labels["namespace"]
            and sample.labels.get("name") == labels["name"]
        ]

    assert len(series()) == 2
    queued = sample("ade_runner_builds_queued")
    metrics.forget(**labels)
    assert series() == []
    assert sample("ade_runner_builds_queued") == queued - 1
