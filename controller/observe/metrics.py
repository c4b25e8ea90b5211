"""Prometheus metrics of the operator, behind small `report_*` functions.

Metric objects live in a registry of their own so tests can read them without a cluster. The
HTTP endpoint is started by the entry point, not here.
"""

from __future__ import annotations

import contextlib

import prometheus_client

PREFIX = "ade_runner"

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)

RECONCILES = prometheus_client.Counter(
    f"{PREFIX}_reconciles_total",
    "Reconciles of RunnerImages, by result (ready, waiting, blocked, stalled, suspended, failed).",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = prometheus_client.Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "Wall-clock time of one reconcile of a RunnerImage.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
STATUS_PATCHES = prometheus_client.Counter(
    f"{PREFIX}_status_patches_total",
    "Reconciles that changed status and so wrote to the API server.",
    registry=REGISTRY,
)
READY = prometheus_client.Gauge(
    f"{PREFIX}_ready",
    "1 when the RunnerImage is Ready, 0 otherwise.",
    ["namespace", "name"],
    registry=REGISTRY,
)


def report_reconcile(*, result: str, seconds: float, wrote_status: bool) -> None:
    RECONCILES.labels(result=result).inc()
    RECONCILE_DURATION.observe(seconds)
    if wrote_status:
        STATUS_PATCHES.inc()


def report_ready(*, namespace: str, name: str, ready: bool) -> None:
    READY.labels(namespace=namespace, name=name).set(1 if ready else 0)


def forget(*, namespace: str, name: str) -> None:
    """Drop the per-object series of a deleted RunnerImage."""
    with contextlib.suppress(KeyError):
        READY.remove(namespace, name)
