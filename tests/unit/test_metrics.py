"""Prometheus metrics behind the report_* functions (controller.observe.metrics)."""

from __future__ import annotations

from controller.observe import metrics


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_report_reconcile_counts_result_duration_and_writes() -> None:
    reconciles = sample("ade_runner_reconciles_total", result="unit-test")
    durations = sample("ade_runner_reconcile_duration_seconds_count")
    total = sample("ade_runner_reconcile_duration_seconds_sum")
    writes = sample("ade_runner_status_patches_total")

    metrics.report_reconcile(result="unit-test", seconds=0.25, wrote_status=True)
    metrics.report_reconcile(result="unit-test", seconds=0.5, wrote_status=False)

    assert sample("ade_runner_reconciles_total", result="unit-test") == reconciles + 2
    assert sample("ade_runner_reconcile_duration_seconds_count") == durations + 2
    assert sample("ade_runner_reconcile_duration_seconds_sum") == total + 0.75
    assert sample("ade_runner_status_patches_total") == writes + 1


def test_report_ready_and_forget() -> None:
    labels = {"namespace": "unit-ns", "name": "unit-name"}
    metrics.report_ready(**labels, ready=True)
    assert metrics.REGISTRY.get_sample_value("ade_runner_ready", labels) == 1.0
    metrics.report_ready(**labels, ready=False)
    assert metrics.REGISTRY.get_sample_value("ade_runner_ready", labels) == 0.0
    metrics.forget(**labels)
    assert metrics.REGISTRY.get_sample_value("ade_runner_ready", labels) is None


def test_forget_unknown_object_is_harmless() -> None:
    metrics.forget(namespace="unit-ns", name="never-seen")
    assert (
        metrics.REGISTRY.get_sample_value(
            "ade_runner_ready", {"namespace": "unit-ns", "name": "never-seen"}
        )
        is None
    )
