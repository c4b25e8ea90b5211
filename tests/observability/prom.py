"""Debian's Prometheus tools against the chart's monitoring assets: the helpers the tests share.

`promtool` and `prometheus` come from Debian's `prometheus` package (`hack/lib.sh` installs it);
a test that needs one is skipped, naming the package, only when it is missing. The chart's alert
rules are taken from the rendered PrometheusRule (its `spec.groups` is a plain Prometheus rules
file) and the dashboard's queries from the rendered ConfigMap, so what is tested is what ships.
`Prometheus` runs a real server on loopback with its storage in a test folder.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from tests.env import controlplane, helm, process

PROMTOOL = pathlib.Path("/usr/bin/promtool")
PROMETHEUS = pathlib.Path("/usr/bin/prometheus")

needs_promtool = pytest.mark.skipif(
    not PROMTOOL.exists(),
    reason=f"{PROMTOOL} is missing: install Debian's prometheus package (hack/lib.sh does)",
)
needs_prometheus = pytest.mark.skipif(
    not PROMETHEUS.exists(),
    reason=f"{PROMETHEUS} is missing: install Debian's prometheus package (hack/lib.sh does)",
)

# The chart is rendered as README.md installs it; its Service, and so Prometheus' job label, is
# `<fullname>-metrics` (alerts_test.yaml uses this job).
RELEASE = "ade-runner-operator"
NAMESPACE = "ade-system"
JOB = "ade-runner-operator-metrics"
MONITORING_VALUES = {"prometheusRule.enabled": "true", "grafanaDashboard.enabled": "true"}


# -- the chart's assets ----------------------------------------------------------------------


def rules_of(docs: Iterable[helm.Manifest]) -> dict[str, Any]:
    """The rendered PrometheusRule's rules, as a Prometheus rules file (`{"groups": [...]}`)."""
    rule = helm.one(docs, "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def alerts_of(rules: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Alert name -> its rule, over every group."""
    return {
        rule["alert"]: rule
        for group in rules["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def write_yaml(path: pathlib.Path, data: Any) -> pathlib.Path:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with path.open("w") as out:
        yaml.dump(data, out)
    return path


def read_yaml(path: pathlib.Path) -> Any:
    return YAML(typ="safe", pure=True).load(path)


def dashboard_of(docs: Iterable[helm.Manifest]) -> dict[str, Any]:
    """The dashboard JSON the chart ships in its ConfigMap."""
    (content,) = helm.one(docs, "ConfigMap")["data"].values()
    board: dict[str, Any] = json.loads(content)
    return board


@dataclasses.dataclass(frozen=True)
class Target:
    """One query of a dashboard panel."""

    panel: str
    expr: str
    legend: str


def targets_of(board: Mapping[str, Any]) -> list[Target]:
    """Every PromQL query of every panel, rows' nested panels included."""

    def panels(items: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for item in items:
            yield item
            yield from panels(item.get("panels") or [])

    return [
        Target(panel["title"], target["expr"], target.get("legendFormat", ""))
        for panel in panels(board["panels"])
        for target in panel.get("targets") or []
        if target.get("expr")
    ]


GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def regex_escape(value: str) -> str:
    """A label value as Grafana puts it in a `=~` matcher (its regex escaping, PromQL-quoted)."""
    return re.sub(r"[\\^$*+?.()|\[\]{}]", lambda m: "\\\\" + m.group(0), value)


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """`expr` with Grafana's variables replaced; an unknown variable fails the test."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        known = {**GRAFANA_BUILTINS, **variables}
        assert name in known, f"unknown Grafana variable ${name} in {expr!r}"
        return known[name]

    return VARIABLE.sub(value, expr)


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    """A series' legend as Grafana renders `legendFormat`; a label the series lacks fails."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in labels, f"legend {fmt!r} names {name!r}, which the series {labels} lacks"
        return labels[name]

    return re.sub(r"\{\{\s*(\w+)\s*\}\}", value, fmt)


# -- promtool --------------------------------------------------------------------------------


def promtool(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# -- a real Prometheus -----------------------------------------------------------------------


class QueryError(AssertionError):
    """Prometheus refused a query (it does not parse, or failed to evaluate)."""


class Prometheus:
    """Debian's prometheus on 127.0.0.1 and a free port, storage and log in `folder`.

    It scrapes `targets` every second as `job` (honoring the target's labels, as the chart's
    ServiceMonitor does, and adding `target_labels` the way prometheus-operator adds the Service's
    namespace) and evaluates `rule_files` every second.
    """

    def __init__(
        self,
        folder: pathlib.Path,
        *,
        job: str,
        targets: Iterable[str],
        target_labels: Mapping[str, str],
        rule_files: Iterable[pathlib.Path] = (),
    ) -> None:
        self.folder = folder
        self.port = controlplane.free_port()
        self.log = folder / "prometheus.log"
        self.config = write_yaml(
            folder / "prometheus.yml",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(path) for path in rule_files],
                "scrape_configs": [
                    {
                        "job_name": job,
                        "honor_labels": True,
                        "static_configs": [
                            {"targets": list(targets), "labels": dict(target_labels)}
                        ],
                    }
                ],
            },
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", trust_env=False, timeout=10
        )

    def __enter__(self) -> Prometheus:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, timeout: float = 15) -> None:
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-4000:]}")
            try:
                if self._client.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"prometheus not ready after {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        process.terminate(self._proc)
        self._client.close()

    def api(self, path: str, **params: str) -> Any:
        """`data` of an API answer; an `error` answer raises `QueryError` with its text."""
        answer = self._client.get(f"/api/v1/{path}", params=params)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise QueryError(f"{path} {params}: {answer.status_code} {body}")
        return body["data"]

    def query(self, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """The instant vector of `expr` (at `at`, else now); a scalar becomes one sample."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result


def variables(server: Prometheus, board: Mapping[str, Any]) -> dict[str, str]:
    """The dashboard's variables as Grafana would fill them with "All" selected."""
    out: dict[str, str] = {}
    for var in board.get("templating", {}).get("list", []):
        if var["type"] == "datasource":
            continue
        assert var["type"] == "query", f"variable {var['name']}: teach the test {var['type']}"
        query = var["query"] if isinstance(var["query"], str) else var["query"]["query"]
        found = re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", query.strip())
        assert found, f"variable {var['name']}: teach the test the query {query!r}"
        selector, label = found.groups()
        params = {"match[]": selector} if selector else {}
        values: list[str] = server.api(f"label/{label}/values", **params)
        if not values:
            return {}
        escaped = [regex_escape(value) for value in values]
        out[var["name"]] = escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"
    return out
