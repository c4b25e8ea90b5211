"""Fixtures of the observability tests: the chart rendered once with its monitoring objects on."""

from __future__ import annotations

import pathlib

import pytest

from tests.env import helm
from tests.observability import prom


@pytest.fixture(scope="session")
def monitoring_docs(tmp_path_factory: pytest.TempPathFactory) -> list[helm.Manifest]:
    """The chart as `helm template` renders it with the PrometheusRule and the dashboard."""
    chart = helm.Helm(tmp_path_factory.mktemp("helm"))
    docs = chart.template(prom.MONITORING_VALUES, release=prom.RELEASE, namespace=prom.NAMESPACE)
    # the metrics Service is the one whose port is named `metrics` (the other: the receivers')
    (service,) = [
        s["metadata"]["name"]
        for s in helm.find(docs, "Service")
        if any(port["name"] == "metrics" for port in s["spec"]["ports"])
    ]
    assert service == prom.JOB, f"the metrics Service is {service!r}; the tests expect {prom.JOB!r}"
    return docs


@pytest.fixture
def rules_file(monitoring_docs: list[helm.Manifest], tmp_path: pathlib.Path) -> pathlib.Path:
    """The chart's alerts as a plain Prometheus rules file, `rules.yaml` in the test's folder."""
    return prom.write_yaml(tmp_path / "rules.yaml", prom.rules_of(monitoring_docs))
