"""Parsing of Go-style durations by controller.durations.parse."""

from __future__ import annotations

import pytest

from controller import durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2h3m4s", 7384.0),
        ("500ms", 0.5),
        ("1s500ms", 1.5),
        ("1.5h", 5400.0),
        ("0.25m", 15.0),
        ("1m1m", 120.0),
    ],
)
def test_parse_valid(text: str, seconds: float) -> None:
    assert durations.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "5", "m", "1d", "-1s", " 5s", "5s ", "1m30", "1 m", "1.s", ".5s", "5S", "s5", "1h-1m"],
)
def test_parse_invalid_raises_value_error_quoting_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration") as caught:
        durations.parse(text)
    assert repr(text) in str(caught.value)


# Found by tests/unit/properties/test_durations.py: `\d` took any Unicode digit, which the CRD's
# `[0-9]` refuses, and a number beyond a float's range became an infinite duration.


@pytest.mark.parametrize("text", ["\uff10h", "\u0661s", "\u00b2m"])
def test_only_ascii_digits_as_the_crd_pattern(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        durations.parse(text)


def test_a_number_too_large_for_a_float_is_refused_not_infinite() -> None:
    with pytest.raises(ValueError, match="too large"):
        durations.parse("9" * 309 + "h")
    assert durations.parse("9" * 300 + "ms") > 1e290
