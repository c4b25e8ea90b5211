"""Deliveries acted on are refused when they come again; out-of-date ones too; bounded memory."""

from __future__ import annotations

import datetime

import pytest

from controller.receivers import events, replays

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


def _event(delivery: str | None, sent_at: datetime.datetime | None = None) -> events.Event:
    return events.Event(delivery, sent_at, ())


def test_a_delivery_acted_on_is_refused_the_second_time_only_by_its_receiver() -> None:
    seen = replays.Deliveries()
    seen.check("ns/github", _event("d1"), now=NOW, clock=0.0)
    seen.check("ns/github", _event("d1"), now=NOW, clock=0.0)  # not yet acted on: a retry
    seen.remember("ns/github", _event("d1"), clock=1.0)
    with pytest.raises(events.Refused) as refused:
        seen.check("ns/github", _event("d1"), now=NOW, clock=2.0)
    assert (refused.value.status, refused.value.outcome) == (409, events.REPLAYED)
    seen.check("ns/other", _event("d1"), now=NOW, clock=2.0)
    seen.check("ns/github", _event("d2"), now=NOW, clock=2.0)
    seen.check("ns/github", _event(None), now=NOW, clock=2.0)


def test_memory_is_bounded_by_count_and_time() -> None:
    seen = replays.Deliveries(capacity=2, window=100.0)
    for index, name in enumerate(("a", "b", "c")):
        seen.remember("r", _event(name), clock=float(index))
    seen.check("r", _event("a"), now=NOW, clock=3.0)  # pushed out by c
    with pytest.raises(events.Refused):
        seen.check("r", _event("b"), now=NOW, clock=3.0)
    seen.check("r", _event("b"), now=NOW, clock=102.0)  # out of the window


@pytest.mark.parametrize(
    ("offset", "refused"),
    [
        (datetime.timedelta(0), False),
        (-replays.MAX_AGE + datetime.timedelta(seconds=1), False),
        (-replays.MAX_AGE - datetime.timedelta(seconds=1), True),
        (replays.MAX_SKEW - datetime.timedelta(seconds=1), False),
        (replays.MAX_SKEW + datetime.timedelta(seconds=1), True),
    ],
)
def test_events_dated_out_of_the_window_are_refused(
    offset: datetime.timedelta, refused: bool
) -> None:
    event = _event("x", NOW + offset)
    if refused:
        with pytest.raises(events.Refused, match=r"sent more than|ahead"):
            replays.Deliveries().check("r", event, now=NOW, clock=0.0)
    else:
        replays.Deliveries().check("r", event, now=NOW, clock=0.0)
