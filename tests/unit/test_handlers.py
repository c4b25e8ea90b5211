"""The kopf layer's own decisions: how long a transient failure waits, and which objects the
progress timer looks at (the rest is `controller.reconcile.cycle`)."""

from __future__ import annotations

from typing import Any

import pytest

from controller import handlers


@pytest.mark.parametrize(
    ("retry", "delay"),
    [(0, 5.0), (1, 10.0), (2, 20.0), (5, 160.0), (6, 300.0), (50, 300.0)],
)
def test_a_transient_failure_waits_5s_doubling_up_to_five_minutes(retry: int, delay: float) -> None:
    assert handlers.retry_delay(retry) == delay


@pytest.mark.parametrize(
    ("conditions", "looked_at"),
    [
        ([], False),
        ([{"type": "Reconciling", "status": "True"}], True),
        ([{"type": "Reconciling", "status": "False"}], False),
        ([{"type": "Ready", "status": "True"}], False),
        ([{"type": "Ready", "status": "False"}, {"type": "Reconciling", "status": "True"}], True),
    ],
)
def test_the_progress_timer_runs_only_while_work_is_in_flight(
    conditions: list[dict[str, Any]], looked_at: bool
) -> None:
    assert handlers._reconciling({"conditions": conditions}) is looked_at  # type: ignore[arg-type]
