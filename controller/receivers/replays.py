"""Deliveries already acted on, so that a replayed event is refused (pure, bounded).

A delivery is known by its receiver and the host's id for it (`X-GitHub-Delivery`, the `id` of an
Azure Repos, ACR or generic event). It is remembered once acted on (not when refused or failed:
the host's retry of a delivery that got a 5xx must go through), for `window` seconds and at most
`capacity` of them. An event older than `max_age` by its own timestamp, or too far in the future,
is refused too: this bounds a replay that this replica has not seen (another replica, a restart).
A replay that slips past both can only ask again for the reconcile already asked for: the nudge
is keyed by the change, not the delivery (`controller.receivers.nudges`).
"""

from __future__ import annotations

import collections
import datetime

from controller.receivers import events

CAPACITY = 100_000
WINDOW = 24 * 3600.0
MAX_AGE = datetime.timedelta(hours=1)
MAX_SKEW = datetime.timedelta(minutes=5)


class Deliveries:
    def __init__(self, *, capacity: int = CAPACITY, window: float = WINDOW) -> None:
        self._seen: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
        self._capacity = capacity
        self._window = window

    def check(
        self, receiver: str, event: events.Event, *, now: datetime.datetime, clock: float
    ) -> None:
        """Raise `events.Refused` (409) if `event` was acted on already or is out of date;
        `now` is the wall clock (for the event's timestamp), `clock` the monotonic one."""
        if event.sent_at is not None:
            if event.sent_at < now - MAX_AGE:
                raise events.Refused(
                    409, events.REPLAYED, f"the event was sent more than {MAX_AGE} ago"
                )
            if event.sent_at > now + MAX_SKEW:
                raise events.Refused(
                    409, events.REPLAYED, f"the event is dated more than {MAX_SKEW} ahead"
                )
        if event.delivery is None:
            return
        seen = self._seen.get((receiver, event.delivery))
        if seen is not None and clock - seen < self._window:
            raise events.Refused(
                409, events.REPLAYED, f"delivery {event.delivery[:64]!r} was acted on already"
            )

    def remember(self, receiver: str, event: events.Event, *, clock: float) -> None:
        if event.delivery is None:
            return
        key = (receiver, event.delivery)
        self._seen[key] = clock
        self._seen.move_to_end(key)
        while self._seen:
            oldest_key, oldest = next(iter(self._seen.items()))
            if len(self._seen) <= self._capacity and clock - oldest < self._window:
                break
            del self._seen[oldest_key]
