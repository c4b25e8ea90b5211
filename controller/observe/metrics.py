"""Prometheus metrics of the operator, behind small `report_*` functions.

Metric objects live in a registry of their own so tests can read them without a cluster. The
HTTP endpoint is started by the entry point, not here. Every name starts with `ade_runner_`,
counters end in `_total`, durations are in seconds (`_seconds`); labels are bounded: a
RunnerImage's namespace and name, a backend, a reason, an operation, a status (class). Never a
digest, a tag, a URL, a registry host or a commit id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import prometheus_client

PREFIX = "ade_runner"

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)

# -- reconciles ----------------------------------------------------------------------------------

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

# -- per RunnerImage (removed by `forget`) -------------------------------------------------------

READY = prometheus_client.Gauge(
    f"{PREFIX}_ready",
    "1 when the RunnerImage is Ready, 0 otherwise.",
    ["namespace", "name"],
    registry=REGISTRY,
)
LAST_SUCCESSFUL_BUILD = prometheus_client.Gauge(
    f"{PREFIX}_last_successful_build_timestamp_seconds",
    "When the latest image of the RunnerImage was built (status.latestImage.builtAt), "
    "in seconds since the Unix epoch.",
    ["namespace", "name"],
    registry=REGISTRY,
)

# -- builds --------------------------------------------------------------------------------------

BUILDS = prometheus_client.Counter(
    f"{PREFIX}_builds_total",
    "Builds by backend, result (started, succeeded, failed; reused: the tag already held this "
    "build key's image) and reason (Initial, SpecChanged, SourceChanged, BaseImageChanged, "
    "Manual).",
    ["backend", "result", "reason"],
    registry=REGISTRY,
)
BUILD_DURATION = prometheus_client.Histogram(
    f"{PREFIX}_build_duration_seconds",
    "Time from the start of a build to its end (succeeded or failed), by backend.",
    ["backend"],
    buckets=(5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
    registry=REGISTRY,
)
BUILDS_QUEUED = prometheus_client.Gauge(
    f"{PREFIX}_builds_queued",
    "RunnerImages whose build waits for a build slot (ADE_MAX_CONCURRENT_BUILDS reached).",
    registry=REGISTRY,
)
BUILDS_IN_FLIGHT = prometheus_client.Gauge(
    f"{PREFIX}_builds_in_flight",
    "Builds holding a build slot: started or found running, not yet finished.",
    registry=REGISTRY,
)

# -- registries, Azure, git, catalog, conformance ------------------------------------------------

REGISTRY_REQUESTS = prometheus_client.Counter(
    f"{PREFIX}_registry_requests_total",
    "HTTP requests to OCI registries (every attempt), by operation (manifest, blob, token) and "
    "status class (2xx, 3xx, 4xx, 5xx; error: no answer).",
    ["operation", "status_class"],
    registry=REGISTRY,
)
REGISTRY_ERRORS = prometheus_client.Counter(
    f"{PREFIX}_registry_request_errors_total",
    "Registry requests that failed in a way worth retrying (no answer, 408, 429, 5xx), by "
    "operation and status class.",
    ["operation", "status_class"],
    registry=REGISTRY,
)
AZURE_REQUESTS = prometheus_client.Counter(
    f"{PREFIX}_azure_requests_total",
    "Azure management operations, by operation (e.g. registries.get) and HTTP status.",
    ["operation", "status"],
    registry=REGISTRY,
)
AZURE_ERRORS = prometheus_client.Counter(
    f"{PREFIX}_azure_request_errors_total",
    "Azure management operations that failed (HTTP status 400 or more, or no answer), by "
    "operation and status.",
    ["operation", "status"],
    registry=REGISTRY,
)
GIT_OPERATIONS = prometheus_client.Counter(
    f"{PREFIX}_git_operations_total",
    "git operations against servers, by purpose (source, catalog), operation (ls-remote, clone, "
    "fetch, push) and result (ok, failed; rejected: a push that lost a race).",
    ["purpose", "operation", "result"],
    registry=REGISTRY,
)
GIT_DURATION = prometheus_client.Histogram(
    f"{PREFIX}_git_operation_duration_seconds",
    "Time of one git operation against a server, by purpose, operation and result.",
    ["purpose", "operation", "result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
GIT_PUSH_RETRIES = prometheus_client.Counter(
    f"{PREFIX}_git_push_retries_total",
    "Catalog pushes that were a retry (the attempt before lost a race).",
    registry=REGISTRY,
)
GIT_PUSHES_REJECTED = prometheus_client.Counter(
    f"{PREFIX}_git_pushes_rejected_total",
    "Catalog pushes rejected because the branch moved (retried in-process).",
    registry=REGISTRY,
)
CATALOG_COMMITS = prometheus_client.Counter(
    f"{PREFIX}_catalog_commits_total",
    "Commits pushed to catalog repositories (one per batch of changes).",
    registry=REGISTRY,
)
CONFORMANCE_FAILURES = prometheus_client.Counter(
    f"{PREFIX}_conformance_failures_total",
    "Findings of the image conformance check, by rule (e.g. ScriptNotExecutable).",
    ["rule"],
    registry=REGISTRY,
)

# -- webhook receivers ---------------------------------------------------------------------------

WEBHOOK_EVENTS = prometheus_client.Counter(
    f"{PREFIX}_webhook_events_total",
    "Events the webhook receivers answered, by receiver type and outcome (accepted, ignored, "
    "unauthorized, malformed, oversized, replayed, not_found, unavailable).",
    ["type", "outcome"],
    registry=REGISTRY,
)
WEBHOOK_RECONCILE_REQUESTS = prometheus_client.Counter(
    f"{PREFIX}_webhook_reconcile_requests_total",
    "Reconciles of RunnerImages the webhook receivers asked for (one per object and change).",
    ["type"],
    registry=REGISTRY,
)
WEBHOOK_DURATION = prometheus_client.Histogram(
    f"{PREFIX}_webhook_request_duration_seconds",
    "Time from an event's arrival to its answer.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)

_queued: set[tuple[str, str]] = set()
BUILDS_QUEUED.set_function(lambda: len(_queued))


# -- reconciles and objects ----------------------------------------------------------------------


def report_reconcile(*, result: str, seconds: float, wrote_status: bool) -> None:
    RECONCILES.labels(result=result).inc()
    RECONCILE_DURATION.observe(seconds)
    if wrote_status:
        STATUS_PATCHES.inc()


def report_ready(*, namespace: str, name: str, ready: bool) -> None:
    READY.labels(namespace=namespace, name=name).set(1 if ready else 0)


def report_last_successful_build(*, namespace: str, name: str, timestamp: float | None) -> None:
    """The time of the latest image's build (None: no image yet, the series is dropped)."""
    if timestamp is None:
        with contextlib.suppress(KeyError):
            LAST_SUCCESSFUL_BUILD.remove(namespace, name)
        return
    LAST_SUCCESSFUL_BUILD.labels(namespace=namespace, name=name).set(timestamp)


def forget(*, namespace: str, name: str) -> None:
    """Drop the per-object series (and the queued build) of a deleted RunnerImage."""
    for gauge in (READY, LAST_SUCCESSFUL_BUILD):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    _queued.discard((namespace, name))


# -- builds ----------------------------------------------------------------------------------


def report_build(*, backend: str, result: str, reason: str, seconds: float | None = None) -> None:
    """A build `started`, `succeeded`, `failed` or `reused`; `seconds` (when known) is the
    duration of a finished one."""
    BUILDS.labels(backend=backend, result=result, reason=reason).inc()
    if seconds is not None and result in ("succeeded", "failed"):
        BUILD_DURATION.labels(backend=backend).observe(max(0.0, seconds))


def report_build_queued(*, namespace: str, name: str, queued: bool) -> None:
    """Whether the RunnerImage's build waits for a slot."""
    if queued:
        _queued.add((namespace, name))
    else:
        _queued.discard((namespace, name))


def watch_builds_in_flight(count: Callable[[], int]) -> None:
    """Read the builds in flight from `count` at each scrape (the operator's build slots)."""
    BUILDS_IN_FLIGHT.set_function(lambda: float(count()))


# -- registries and Azure --------------------------------------------------------------------


def status_class(status: int | None) -> str:
    """`2xx` .. `5xx` for an HTTP status; `error` when there was no answer."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def report_registry_request(*, operation: str, status: int | None, failed: bool) -> None:
    """One attempt of a registry request; `failed`: a failure worth retrying (no answer, 408,
    429, 5xx), whether it was retried or not."""
    labels = {"operation": operation, "status_class": status_class(status)}
    REGISTRY_REQUESTS.labels(**labels).inc()
    if failed:
        REGISTRY_ERRORS.labels(**labels).inc()


def report_azure_request(operation: str, status: int | str) -> None:
    """One Azure management operation (`azure.access` reports each SDK call)."""
    if isinstance(status, int):
        shown = str(status)
        failed = status >= 400
    else:
        # A word such as "error" or "timeout"; anything else is folded so labels stay bounded.
        shown = status if status.isalpha() and len(status) <= 20 else "error"
        failed = True
    AZURE_REQUESTS.labels(operation=operation, status=shown).inc()
    if failed:
        AZURE_ERRORS.labels(operation=operation, status=shown).inc()


# -- git, catalog, conformance ---------------------------------------------------------------


def report_git_operation(
    *, purpose: str, operation: str, result: str, seconds: float, attempt: int = 1
) -> None:
    """One git operation against a server (several git processes, timed by the caller: ls-remote
    and fetch of a build source, clone, fetch and push of the catalog writer); for a push,
    `attempt` counts the pushes of a batch."""
    GIT_OPERATIONS.labels(purpose=purpose, operation=operation, result=result).inc()
    GIT_DURATION.labels(purpose=purpose, operation=operation, result=result).observe(seconds)
    if operation == "push":
        if attempt > 1:
            GIT_PUSH_RETRIES.inc()
        if result == "rejected":
            GIT_PUSHES_REJECTED.inc()


def report_catalog_commit() -> None:
    CATALOG_COMMITS.inc()


def report_conformance_findings(rules: Iterable[str]) -> None:
    """One count per finding, by its rule."""
    for rule in rules:
        CONFORMANCE_FAILURES.labels(rule=str(rule)).inc()


def report_webhook(*, type_: str, outcome: str, seconds: float, requested: int = 0) -> None:
    """One event a receiver answered (`type_`: its type, "" for an unknown path)."""
    WEBHOOK_EVENTS.labels(type=type_ or "unknown", outcome=outcome).inc()
    WEBHOOK_DURATION.observe(seconds)
    if requested:
        WEBHOOK_RECONCILE_REQUESTS.labels(type=type_).inc(requested)
