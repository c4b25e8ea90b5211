"""How far the operator's counters moved during a test, read from `controller.observe.metrics`.

I/O packages report straight to `metrics.report_*`; a test that wants to see what a client
reported takes a `Moved` before and reads the counters after, through the same registry the
`/metrics` endpoint serves.
"""

from __future__ import annotations

from controller.observe import metrics

_Key = tuple[str, tuple[tuple[str, str], ...]]


def _samples() -> dict[_Key, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
    }


class Moved:
    """The counters' values when made; `counts` says how much each moved since."""

    def __init__(self) -> None:
        self._before = _samples()

    def counts(self, name: str, *labels: str) -> dict[tuple[str, ...], float]:
        """Each sample of `name` that moved, keyed by its values of `labels` (in that order)."""
        moved: dict[tuple[str, ...], float] = {}
        for key, value in _samples().items():
            sample, pairs = key
            delta = value - self._before.get(key, 0.0)
            if sample == name and delta:
                values = dict(pairs)
                moved[tuple(values[label] for label in labels)] = delta
        return moved
