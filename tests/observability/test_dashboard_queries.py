"""Every query of the chart's Grafana dashboard, and every alert expression, evaluated by a real
Prometheus (Debian's) that scrapes the operator's metrics.

The metrics are served as the operator serves them (`prometheus_client.start_http_server` on the
registry of `controller/observe/metrics.py`, here on 127.0.0.1), from a private instance of that
module: the same code, with a registry that no other test touches, so the counts are exact. Two
rounds of representative activity are recorded through the module's `report_*` functions (the
calls the reconcile makes), a few scrapes apart, so that counters have moved between samples as
they do in a running operator. Prometheus scrapes every second, as the chart's
ServiceMonitor would (job `<release>-metrics`, the target's namespace added, `honorLabels`), and
evaluates the rendered alert rules every second.

Each dashboard query (Grafana's variables replaced: `$job` by what the dashboard's own variable
query returns) must evaluate without error to the series this activity implies, named by the
panel's legend: exact numbers for the counting panels, a number above zero for rates and
quantiles. A new panel without an expectation here fails the test.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import time
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import prometheus_client
import pytest

from controller.observe import metrics
from tests.env import helm
from tests.observability import prom

pytestmark = [pytest.mark.e2e, prom.needs_prometheus]

ROUNDS = 2  # rounds of activity recorded, a few scrapes apart
BUILT_AT = time.time() - 600  # status.latestImage.builtAt of team-a/bicep-runner
POSITIVE = "> 0"  # any finite value above zero (rates, quantiles, ages)

Expected = Mapping[str, float | str]  # legend of a series -> its value, or POSITIVE

# (panel title, legendFormat) -> the series the query returns after the recorded activity.
DASHBOARD: dict[tuple[str, str], Expected] = {
    ("RunnerImages not Ready", "not ready"): {"not ready": 1},
    ("RunnerImages not Ready", "total"): {"total": 2},
    ("Reconciles by result", "{{result}}"): dict.fromkeys(
        ("ready", "waiting", "stalled"), POSITIVE
    ),
    ("Reconcile duration (p50, p95)", "p50"): {"p50": POSITIVE},
    ("Reconcile duration (p50, p95)", "p95"): {"p95": POSITIVE},
    ("Builds by result and backend", "{{backend}} {{result}}"): {
        "Job started": ROUNDS,
        "Job succeeded": ROUNDS,
        "Docker started": ROUNDS,
        "Docker failed": ROUNDS,
        "Daemon reused": ROUNDS,
    },
    ("Build duration (p95) by backend", "{{backend}}"): {"Job": POSITIVE, "Docker": POSITIVE},
    ("Builds queued and in flight", "queued"): {"queued": 1},
    ("Builds queued and in flight", "in flight"): {"in flight": 1},
    ("git operations by result", "{{purpose}} {{operation}} {{result}}"): dict.fromkeys(
        (
            "source ls-remote ok",
            "catalog fetch ok",
            "catalog push rejected",
            "catalog push ok",
            "catalog push failed",
        ),
        POSITIVE,
    ),
    ("Catalog commits and rejected pushes", "commits"): {"commits": ROUNDS},
    ("Catalog commits and rejected pushes", "rejected pushes"): {"rejected pushes": ROUNDS},
    ("Registry requests and errors", "{{operation}} {{status_class}}"): dict.fromkeys(
        ("token 2xx", "manifest 2xx", "blob 5xx"), POSITIVE
    ),
    ("Registry requests and errors", "errors {{operation}}"): {"errors blob": POSITIVE},
    ("Azure management requests and errors", "{{operation}} {{status}}"): dict.fromkeys(
        ("registries.get 200", "roleAssignments.create 403", "registries.update timeout"),
        POSITIVE,
    ),
    ("Azure management requests and errors", "errors {{operation}}"): dict.fromkeys(
        ("errors roleAssignments.create", "errors registries.update"), POSITIVE
    ),
    ("Conformance failures by rule", "{{rule}}"): {
        "ScriptNotExecutable": ROUNDS,
        "ScriptCRLF": ROUNDS,
    },
    ("Time since the last successful build", "{{namespace}}/{{name}}"): {
        "team-a/bicep-runner": POSITIVE
    },
    ("RunnerImages", "{{namespace}}/{{name}}"): {
        "team-a/bicep-runner": 1,
        "team-b/terraform-runner": 0,
    },
}

# alert -> (a legend for its series, the series its expression returns now). The operator is up,
# so OperatorDown's expression returns nothing.
ALERTS: dict[str, tuple[str, Expected]] = {
    "AdeRunnerBuildFailed": ("{{backend}}", {"Docker": ROUNDS}),
    "AdeRunnerImageStalled": ("{{namespace}}/{{name}}", {"team-b/terraform-runner": 0}),
    "AdeRunnerCatalogPushFailed": ("failed pushes", {"failed pushes": ROUNDS}),
    "AdeRunnerOperatorDown": ("down", {}),
}
DESCRIPTIONS = {  # how the firing alerts' descriptions start
    "AdeRunnerBuildFailed": f"{ROUNDS} Docker build(s) failed in the last 30 minutes",
    "AdeRunnerCatalogPushFailed": f"{ROUNDS} catalog push(es) failed in the last 30 minutes",
    "AdeRunnerImageStalled": "RunnerImage team-b/terraform-runner has not been Ready for 30m",
}


def private_metrics() -> types.ModuleType:
    """A fresh instance of controller/observe/metrics.py, with a registry of its own."""
    spec = importlib.util.spec_from_file_location("ade_runner_metrics_under_test", metrics.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record_round(m: types.ModuleType) -> None:
    """One round of what the operator records, through the calls its code makes."""
    # handlers.py, after each reconcile of a RunnerImage.
    m.report_reconcile(result="ready", seconds=0.04, wrote_status=True)
    m.report_reconcile(result="waiting", seconds=0.3, wrote_status=True)
    m.report_reconcile(result="stalled", seconds=1.5, wrote_status=False)
    m.report_ready(namespace="team-a", name="bicep-runner", ready=True)
    m.report_last_successful_build(namespace="team-a", name="bicep-runner", timestamp=BUILT_AT)
    m.report_ready(namespace="team-b", name="terraform-runner", ready=False)
    m.report_last_successful_build(namespace="team-b", name="terraform-runner", timestamp=None)
    # reconcile/building.py: a build slot is awaited, builds start, end or are reused.
    m.report_build_queued(namespace="team-b", name="terraform-runner", queued=True)
    m.report_build(backend="Job", result="started", reason="SourceChanged")
    m.report_build(backend="Job", result="succeeded", reason="SourceChanged", seconds=95.0)
    m.report_build(backend="Docker", result="started", reason="Initial")
    m.report_build(backend="Docker", result="failed", reason="Initial", seconds=40.0)
    m.report_build(backend="Daemon", result="reused", reason="BaseImageChanged")
    # registry/client.py: each attempt; a 503 is a failure worth retrying.
    m.report_registry_request(operation="token", status=200, failed=False)
    m.report_registry_request(operation="manifest", status=200, failed=False)
    m.report_registry_request(operation="blob", status=503, failed=True)
    # azure/access.py, once per SDK call.
    m.report_azure_request("registries.get", 200)
    m.report_azure_request("roleAssignments.create", 403)
    m.report_azure_request("registries.update", "timeout")
    # sources/git.py, catalog/gitcli.py (a push lost a race, the retry won, a later one failed)
    # and catalog/repository.py.
    m.report_git_operation(purpose="source", operation="ls-remote", result="ok", seconds=0.1)
    m.report_git_operation(purpose="catalog", operation="fetch", result="ok", seconds=0.2)
    m.report_git_operation(purpose="catalog", operation="push", result="rejected", seconds=0.3)
    m.report_git_operation(purpose="catalog", operation="push", result="ok", seconds=0.4, attempt=2)
    m.report_catalog_commit()
    m.report_git_operation(purpose="catalog", operation="push", result="failed", seconds=0.1)
    # reconcile/verifying.py
    m.report_conformance_findings(["ScriptNotExecutable", "ScriptCRLF"])


@pytest.fixture
def served_metrics() -> Iterator[tuple[types.ModuleType, str]]:
    """The private metrics module and the address of its /metrics (started as __main__ does)."""
    m = private_metrics()
    m.watch_builds_in_flight(lambda: 1)  # handlers.py: the operator's build slots in use
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=m.REGISTRY)
    try:
        yield m, f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def prometheus(
    served_metrics: tuple[types.ModuleType, str], rules_file: pathlib.Path, tmp_path: pathlib.Path
) -> Iterator[prom.Prometheus]:
    _, address = served_metrics
    with prom.Prometheus(
        tmp_path,
        job=prom.JOB,
        targets=[address],
        target_labels={"namespace": prom.NAMESPACE},
        rule_files=[rules_file],
    ) as server:
        yield server


def eventually(check: Callable[[], list[str]], *, timeout: float, what: str) -> None:
    """Run `check` until it finds no problem; fail with its last problems after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        problems = check()
        if not problems:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout}s, {what}:\n  " + "\n  ".join(problems))
        time.sleep(0.2)


def mismatches(what: str, result: list[dict[str, Any]], fmt: str, expected: Expected) -> list[str]:
    """How `result` differs from `expected` (by legend), including NaN and Inf values."""
    got: dict[str, float] = {}
    for series in result:
        name = prom.legend(fmt, series["metric"])
        assert name not in got, f"{what}: two series with the legend {name!r}: {result}"
        got[name] = float(series["value"][1])
    problems = []
    if set(got) != set(expected):
        problems.append(f"{what}: series {sorted(got)}, expected {sorted(expected)}")
    for name, value in got.items():
        want = expected.get(name)
        if not math.isfinite(value):
            problems.append(f"{what}: {name} is {value}")
        elif want == POSITIVE and not value > 0:
            problems.append(f"{what}: {name} is {value}, expected above 0")
        elif isinstance(want, int | float) and not math.isclose(value, want, abs_tol=1e-9):
            problems.append(f"{what}: {name} is {value}, expected {want}")
    return problems


def last_scrape(server: prom.Prometheus) -> float | None:
    """When the operator's /metrics was last scraped (evaluating there needs no extrapolation)."""
    # timestamp() of a bare selector is the sample's time (of an expression, the query's).
    result = server.query(f'timestamp(up{{job="{prom.JOB}"}})')
    return float(result[0]["value"][1]) if result else None


def wait_for_commits(server: prom.Prometheus, count: int, *, timeout: float = 10) -> None:
    """Until Prometheus has scraped `count` catalog commits (one is recorded each round)."""

    def check() -> list[str]:
        result = server.query(f'ade_runner_catalog_commits_total{{job="{prom.JOB}"}}')
        seen = [float(series["value"][1]) for series in result]
        return [] if seen == [count] else [f"commits seen: {seen}"]

    eventually(check, timeout=timeout, what=f"a scrape with {count} catalog commit(s)")


def wait_for_scrapes(server: prom.Prometheus, more: int) -> None:
    """Until Prometheus has scraped the operator `more` times again: a value then holds for
    several samples, as in a running operator (with only two samples, increase() extrapolated to
    the counter's zero point would happen to be exact and hide a miscount)."""

    def scrapes() -> int:
        result = server.query(f'count_over_time(up{{job="{prom.JOB}"}}[1h])')
        return int(float(result[0]["value"][1])) if result else 0

    target = scrapes() + more
    eventually(
        lambda: [] if scrapes() >= target else [f"{scrapes()} scrapes, waiting for {target}"],
        timeout=10,
        what=f"{more} more scrapes",
    )


def alert_problems(server: prom.Prometheus, alerts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The rules Prometheus evaluates: all healthy, each alert in the state its expectation
    implies (firing, pending while `for` runs, inactive), annotations rendered."""
    rules = {
        rule["name"]: rule
        for group in server.api("rules")["groups"]
        for rule in group["rules"]
        if rule["type"] == "alerting"
    }
    if set(rules) != set(alerts):
        return [f"Prometheus evaluates {sorted(rules)}, the chart has {sorted(alerts)}"]
    problems = []
    for name, rule in rules.items():
        if rule["health"] != "ok":
            problems.append(f"{name}: health {rule['health']} {rule.get('lastError', '')}")
        expected = ALERTS[name][1]
        state = ("pending" if "for" in alerts[name] else "firing") if expected else "inactive"
        if rule["state"] != state:
            problems.append(f"{name}: {rule['state']}, expected {state}")
        for alert in rule.get("alerts", []):
            for key, text in alert["annotations"].items():
                if "<no value>" in text or "error expanding" in text or "{{" in text:
                    problems.append(f"{name}: annotation {key} renders as {text!r}")
            start = DESCRIPTIONS.get(name, "")
            if not alert["annotations"]["description"].startswith(start):
                problems.append(f"{name}: {alert['annotations']['description']!r}, not {start!r}")
    return problems


def test_every_dashboard_query_and_alert_expression_evaluates_on_the_operators_metrics(
    prometheus: prom.Prometheus,
    served_metrics: tuple[types.ModuleType, str],
    monitoring_docs: list[helm.Manifest],
) -> None:
    m, _ = served_metrics
    board = prom.dashboard_of(monitoring_docs)
    targets = prom.targets_of(board)
    assert targets, "the dashboard has no query"
    keys = {(target.panel, target.legend) for target in targets}
    assert keys == set(DASHBOARD), (
        f"queries without, or expectations without, a query: {keys ^ set(DASHBOARD)}"
    )
    alerts = prom.alerts_of(prom.rules_of(monitoring_docs))
    assert set(alerts) == set(ALERTS), f"alerts without expectations: {set(alerts) ^ set(ALERTS)}"

    # The first scrape (Prometheus 2 starts scraping about 5 s after its start) sees the counters
    # without labels at 0, as after the operator's start.
    wait_for_commits(prometheus, 0, timeout=20)
    for done in range(1, ROUNDS + 1):
        record_round(m)
        wait_for_commits(prometheus, done)
        wait_for_scrapes(prometheus, 2)

    def dashboard_problems() -> list[str]:
        at = last_scrape(prometheus)
        filled = prom.variables(prometheus, board)
        if at is None or not filled:
            return [f"last scrape {at}, variables {filled}"]
        problems = []
        for target in targets:
            expr = prom.substitute(target.expr, filled)
            what = f"{target.panel!r} {expr}"
            expected = DASHBOARD[(target.panel, target.legend)]
            problems += mismatches(what, prometheus.query(expr, at=at), target.legend, expected)
        for alert, (fmt, expected) in ALERTS.items():
            expr = alerts[alert]["expr"]
            problems += mismatches(f"{alert} {expr}", prometheus.query(expr, at=at), fmt, expected)
        return problems

    eventually(dashboard_problems, timeout=10, what="dashboard and alert queries are wrong")
    eventually(
        lambda: alert_problems(prometheus, alerts),
        timeout=10,
        what="the alerts Prometheus evaluates are wrong",
    )
