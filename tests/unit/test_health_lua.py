"""The Argo CD health script for RunnerImage (`deploy/health/runnerimage.lua`) on hand-made
objects, in Lua 5.1 as Argo CD runs it; and the argocd-cm snippet carries the same script."""

from __future__ import annotations

import io
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.e2e import health


def _obj(
    *conditions: tuple[str, str, str, str],
    generation: int = 3,
    observed: int | None = 3,
    **extra: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions
        ]
    }
    if observed is not None:
        status["observedGeneration"] = observed
    obj: dict[str, Any] = {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": "r", "namespace": "ns", "generation": generation},
        "spec": {"image": {"registry": "r.example", "repository": "x"}},
        "status": status,
    }
    for key, value in extra.items():
        obj[key].update(value)
    return obj


READY = ("Ready", "True", "Succeeded", "image r.example/x:1 built and verified")
STALLED = ("Stalled", "True", "InvalidSpec", "spec.catalog.manifests[1]: outside the repository")
BUILDING = ("Reconciling", "True", "Building", "build r-build-0123 is running")


def test_ready_is_healthy() -> None:
    assert health.argocd(_obj(READY)) == health.Health("Healthy", READY[3])


def test_stalled_is_degraded_with_its_message() -> None:
    not_ready = ("Ready", "False", "InvalidSpec", STALLED[3])
    assert health.argocd(_obj(not_ready, STALLED)) == health.Health("Degraded", STALLED[3])


def test_reconciling_is_progressing_with_its_message() -> None:
    not_ready = ("Ready", "False", "Building", BUILDING[3])
    assert health.argocd(_obj(not_ready, BUILDING)) == health.Health("Progressing", BUILDING[3])


@pytest.mark.parametrize("status", ["False", "Unknown"])
def test_ready_not_true_without_stalled_is_progressing(status: str) -> None:
    ready = ("Ready", status, "RegistryUnavailable", "registry r.example: connection refused")
    assert health.argocd(_obj(ready)) == health.Health("Progressing", ready[3])


def test_an_old_observed_generation_is_progressing_whatever_the_conditions() -> None:
    found = health.argocd(_obj(READY, generation=4, observed=3))
    assert found.status == "Progressing"
    assert found.message == "Generation 4 is not observed yet (observed: 3)"
    assert health.argocd(_obj(STALLED, generation=4, observed=3)).status == "Progressing"


def test_no_status_is_progressing() -> None:
    obj = _obj()
    del obj["status"]
    assert health.argocd(obj) == health.Health(
        "Progressing", "Waiting for the operator to report status"
    )
    assert health.argocd(_obj(READY, observed=None)).status == "Progressing"


def test_no_ready_condition_is_progressing() -> None:
    assert health.argocd(_obj()) == health.Health("Progressing", "Waiting for the Ready condition")


def test_suspend_wins_over_the_conditions() -> None:
    suspended = ("Ready", "False", "Suspended", "reconciliation is suspended")
    obj = _obj(suspended, spec={"suspend": True})
    assert health.argocd(obj).status == "Suspended"
    assert health.argocd(_obj(READY, spec={"suspend": False})).status == "Healthy"


def test_deletion_is_progressing_whatever_the_conditions() -> None:
    deleting = {"deletionTimestamp": "2026-11-26T12:00:00Z", "finalizers": ["x"]}
    obj = _obj(STALLED, metadata=deleting, spec={"suspend": True})
    assert health.argocd(obj) == health.Health("Progressing", "Pending deletion")


def test_false_abnormal_conditions_are_ignored() -> None:
    obj = _obj(READY, ("Stalled", "False", "X", "old"), ("Reconciling", "False", "Y", "old"))
    assert health.argocd(obj).status == "Healthy"


def test_an_empty_message_falls_back_to_the_reason() -> None:
    obj = _obj(("Ready", "False", "Building", ""))
    assert health.argocd(obj) == health.Health("Progressing", "Building")


def test_agreement_treats_suspended_as_in_progress_only_when_suspended() -> None:
    argo = health.Health("Suspended", "")
    suspended = _obj(spec={"suspend": True})
    assert health.agree(health.Health("InProgress", ""), argo, suspended)
    assert not health.agree(health.Health("InProgress", ""), argo, _obj())
    assert not health.agree(health.Health("Current", ""), argo, suspended)
    assert health.agree(health.Health("Failed", ""), health.Health("Degraded", ""), _obj())
    assert not health.agree(health.Health("Current", ""), health.Health("Progressing", ""), _obj())


def test_the_argocd_cm_snippet_holds_the_script_verbatim() -> None:
    config_map = YAML(typ="safe").load(io.StringIO(health.ARGOCD_CM.read_text()))
    assert (config_map["kind"], config_map["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert config_map["data"][health.ARGOCD_KEY] == health.LUA_SCRIPT.read_text()
