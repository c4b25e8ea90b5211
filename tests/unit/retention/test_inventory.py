"""What an image config says of its making and its pusher (`inventory.made_of`)."""

from __future__ import annotations

import datetime
import json

from controller.retention import inventory, policy


def test_created_and_the_owner_label_are_read() -> None:
    config = {
        "created": "2026-12-06T12:00:00.123456789Z",
        "config": {"Labels": {policy.OWNER_LABEL: "team/bicep", "other": "x"}},
    }
    made = inventory.made_of(json.dumps(config).encode())
    assert made.created == datetime.datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=datetime.UTC)
    assert made.owner == "team/bicep"


def test_what_a_config_does_not_say_is_none() -> None:
    assert inventory.made_of(b"not json") == inventory.Made(None, None)
    assert inventory.made_of(b"[]") == inventory.Made(None, None)
    assert inventory.made_of(b'{"created": "yesterday", "config": {"Labels": null}}') == (
        inventory.Made(None, None)
    )
    unlabelled = inventory.made_of(b'{"created": "2026-01-01T00:00:00+01:00", "config": {}}')
    assert unlabelled.owner is None
    assert unlabelled.created == datetime.datetime(2025, 12, 31, 23, tzinfo=datetime.UTC)
