"""The chart's alerts, checked and unit-tested with Debian's promtool.

tests/observability/ holds the tests of what the chart ships for monitoring, run with Debian's
real Prometheus tools (package `prometheus`, installed by `hack/lib.sh`; the tests are skipped
only when its binaries are missing). They are marked `e2e`: the chart is rendered by the compiled
helm. Run them alone with `.venv/bin/pytest tests/observability -q`.

- `alerts_test.yaml`: promtool unit tests of the alerts (input series named and labelled as the
  operator exports them and Prometheus scrapes them, expected alerts with labels and annotations).
  Each alert needs at least one case where it fires and one where it stays quiet; a new alert
  without both fails `test_every_alert_has_a_firing_and_a_quiet_case`.
- this module: the rendered PrometheusRule's `spec.groups` (a plain rules file) passes
  `promtool check rules` and those unit tests; an alert whose expression never or always returns
  something fails them (so they test something), and a renamed alert fails the coverage check.
- `test_dashboard_queries.py`: a real Prometheus scraping the operator's metrics module
  evaluates every dashboard query and every alert expression.
"""

from __future__ import annotations

import pathlib
import re
import shutil
from typing import Any

import pytest

from tests.env import helm
from tests.observability import prom

pytestmark = [pytest.mark.e2e]

UNIT_TESTS = pathlib.Path(__file__).with_name("alerts_test.yaml")
NEVER = "vector(1) < 0"  # an expression that never returns anything
ALWAYS = "vector(1)"  # one that always does, without the alert's labels


def cases(tests: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(alerts with a firing case, alerts with a quiet case) in promtool's test file."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests["tests"]:
        for case in test.get("alert_rule_test") or []:
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    return firing, quiet


def run_unit_tests(rules: dict[str, Any], folder: pathlib.Path) -> tuple[int, str]:
    """promtool's unit tests against `rules` (written next to a copy of the test file)."""
    folder.mkdir(parents=True, exist_ok=True)
    prom.write_yaml(folder / "rules.yaml", rules)
    shutil.copy(UNIT_TESTS, folder / UNIT_TESTS.name)
    result = prom.promtool("test", "rules", UNIT_TESTS.name, cwd=folder)
    return result.returncode, result.stdout + result.stderr


def with_alert(rules: dict[str, Any], alert: str, changes: dict[str, str]) -> dict[str, Any]:
    """A copy of `rules` with one alert's fields changed."""
    groups = [
        {
            **group,
            "rules": [
                {**rule, **changes} if rule.get("alert") == alert else dict(rule)
                for rule in group["rules"]
            ],
        }
        for group in rules["groups"]
    ]
    return {"groups": groups}


@prom.needs_promtool
def test_the_rendered_rules_pass_promtool_check(
    rules_file: pathlib.Path, monitoring_docs: list[helm.Manifest]
) -> None:
    count = sum(len(group["rules"]) for group in prom.rules_of(monitoring_docs)["groups"])
    result = prom.promtool("check", "rules", rules_file.name, cwd=rules_file.parent)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {count} rules found" in output, output
    assert "FAILED" not in output, output
    assert "WARNING" not in output.upper(), output


@prom.needs_promtool
def test_every_alert_fires_when_its_condition_holds_and_is_quiet_otherwise(
    monitoring_docs: list[helm.Manifest], tmp_path: pathlib.Path
) -> None:
    code, output = run_unit_tests(prom.rules_of(monitoring_docs), tmp_path)
    assert code == 0, output
    assert "SUCCESS" in output, output


def test_every_alert_has_a_firing_and_a_quiet_case(monitoring_docs: list[helm.Manifest]) -> None:
    tests = prom.read_yaml(UNIT_TESTS)
    assert tests["rule_files"] == ["rules.yaml"]
    alerts = set(prom.alerts_of(prom.rules_of(monitoring_docs)))
    assert alerts, "the chart ships no alert"
    firing, quiet = cases(tests)
    assert alerts - firing == set(), f"alerts without a case where they fire: {alerts - firing}"
    assert alerts - quiet == set(), f"alerts without a case where they stay quiet: {alerts - quiet}"
    unknown = (firing | quiet) - alerts
    assert unknown == set(), f"{UNIT_TESTS.name} tests alerts the chart lacks: {unknown}"


@prom.needs_promtool
def test_a_broken_alert_fails_the_unit_tests(
    monitoring_docs: list[helm.Manifest], tmp_path: pathlib.Path
) -> None:
    rules = prom.rules_of(monitoring_docs)
    missed: list[str] = []
    for alert in prom.alerts_of(rules):
        mutants = {
            "never fires": with_alert(rules, alert, {"expr": NEVER}),
            "always fires": with_alert(rules, alert, {"expr": ALWAYS}),
        }
        for how, mutant in mutants.items():
            code, output = run_unit_tests(mutant, tmp_path / alert / how.replace(" ", "-"))
            if code == 0:
                missed.append(f"{alert} {how}")
                continue
            assert f"alertname: {alert}," in output, output
            if how == "always fires":
                # A quiet case (nothing expected) is what caught it.
                quiet_failure = rf"alertname: {alert}, time: [^,]+,\s*exp:\[\]"
                if not re.search(quiet_failure, output):
                    missed.append(f"{alert} {how} (by a quiet case)")
    assert missed == [], f"the unit tests still pass with: {missed}"
