"""Properties of `controller.durations.parse` (Go-style durations: 90s, 1h30m, 500ms).

- Every text the CRD's pattern accepts parses to the sum of its parts, finite and >= 0.
- Every other text raises ValueError, and nothing else.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller import durations

CRD_PATTERN = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
"""spec.triggers.*.interval, spec.catalog.interval (crds/runnerimages.yaml)."""
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

numbers = st.one_of(
    st.integers(0, 10**6).map(str),
    st.tuples(st.integers(0, 10**4), st.integers(0, 10**6)).map(lambda p: f"{p[0]}.{p[1]}"),
    st.text("0123456789", min_size=1, max_size=30),
    st.integers(300, 400).map(lambda size: "9" * size),  # around the largest float
)
parts = st.lists(st.tuples(numbers, st.sampled_from(sorted(UNITS))), min_size=1, max_size=5)


@given(parts)
def test_a_duration_is_the_sum_of_its_parts(items: list[tuple[str, str]]) -> None:
    text = "".join(number + unit for number, unit in items)
    assert CRD_PATTERN.match(text)
    expected = sum(float(number) * UNITS[unit] for number, unit in items)
    if not math.isfinite(expected):
        with pytest.raises(ValueError, match="too large"):
            durations.parse(text)
        return
    assert math.isclose(durations.parse(text), expected, rel_tol=1e-9)


@given(
    st.one_of(
        st.text(max_size=20),
        st.text("0123456789.msh -+eE_\u0661\uff11\u00b2", max_size=12),
        parts.map(lambda items: "".join(n + u for n, u in items))
        .flatmap(
            lambda text: st.tuples(st.just(text), st.integers(0, len(text)), st.text(max_size=2))
        )
        .map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]),
    )
)
def test_anything_else_is_a_value_error(text: str) -> None:
    try:
        seconds = durations.parse(text)
    except ValueError:
        assert not CRD_PATTERN.match(text) or not math.isfinite(_sum(text))
        return
    assert CRD_PATTERN.match(text), f"{text!r} parsed to {seconds} but the CRD refuses it"
    assert math.isfinite(seconds)
    assert seconds >= 0


def _sum(text: str) -> float:
    return sum(
        float(n) * UNITS[u] for n, _, u in re.findall(r"([0-9]+(\.[0-9]+)?)(ms|s|m|h)", text)
    )
