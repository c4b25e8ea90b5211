"""The write-back step's pure parts: the status it records after the writer settled a change,
the Event of a commit, the outcome as the last check found it, and what the fingerprint covers."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from controller.api import spec as model
from controller.api import status
from controller.catalog import repository
from controller.reconcile import writing
from tests.unit.reconcile import fakes

IMAGE = "contoso.azurecr.io/ade/runner:v2"
WEB = "envs/web/environment.yaml"
API = "envs/api/environment.yaml"
BEFORE = status.CatalogStatus(
    revision="a" * 40,
    ref="refs/heads/main",
    image="contoso.azurecr.io/ade/runner:v1",
    manifests=(WEB,),
    changed=(WEB,),
    pushed_at="2026-12-01T00:00:00Z",
    fingerprint="old",
    synced_revision="a" * 40,
    synced_at="2026-12-01T00:01:00Z",
)
SETTLED = datetime.datetime(2026, 12, 5, 9, 59, 30, tzinfo=datetime.UTC)
SYNCED = [{"path": WEB, "state": "Synced", "value": IMAGE}]


def result(*, changed: bool) -> repository.Result:
    return repository.Result(
        commit="b" * 40 if changed else "c" * 40,
        ref="refs/heads/main",
        files=(WEB,) if changed else (),
        changed=changed,
        settled_at=SETTLED,
    )


def record(result_: repository.Result, *, valid: bool = True) -> status.CatalogStatus:
    return writing.record(
        BEFORE,
        result_,
        written=[WEB],
        files=SYNCED,
        valid=valid,
        value=IMAGE,
        fingerprint="new",
        now=fakes.NOW,
    )


def test_a_commit_moves_the_revision_the_changed_files_and_the_push_time() -> None:
    recorded = record(result(changed=True))
    assert recorded.revision == "b" * 40
    assert recorded.changed == (WEB,)
    assert recorded.pushed_at == "2026-12-05T09:59:30Z"  # when the push landed, not now
    assert (recorded.image, recorded.fingerprint) == (IMAGE, "new")
    # the sync of the old revision is kept: the next pass asks for the new one
    assert recorded.synced_revision == "a" * 40


def test_a_check_that_changed_nothing_keeps_the_last_commit() -> None:
    recorded = record(result(changed=False))
    assert recorded.revision == BEFORE.revision
    assert recorded.changed == BEFORE.changed
    assert recorded.pushed_at == BEFORE.pushed_at
    first = writing.record(
        status.CatalogStatus(),
        result(changed=False),
        written=[WEB],
        files=SYNCED,
        valid=True,
        value=IMAGE,
        fingerprint="new",
        now=fakes.NOW,
    )
    assert first.revision == "c" * 40  # nothing recorded yet: the head it was checked at


def test_invalid_files_leave_no_fingerprint_so_the_next_pass_reads_again() -> None:
    assert record(result(changed=True), valid=False).fingerprint is None


def test_the_commit_event_names_files_value_and_commit() -> None:
    event = writing.committed(result(changed=True), IMAGE)
    assert (event.type, event.reason) == ("Normal", "CatalogCommitted")
    assert event.message == f"{WEB} now point at {IMAGE} (commit {'b' * 12} on refs/heads/main)"


PARSED = model.parse(
    {
        "source": {"inline": {"dockerfile": "FROM scratch\n", "scripts": {}}},
        "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
        "catalog": {
            "git": {"url": "https://git.example/catalog.git"},
            "manifests": ["envs/*/environment.yaml"],
        },
    }
).catalog
assert PARSED is not None
CATALOG: model.Catalog = PARSED


def test_the_outcome_is_synced_or_blocked_as_the_last_check_found() -> None:
    synced = writing.outcome(record(result(changed=True)), CATALOG)
    assert synced.reason == "Synced"
    assert synced.message == f"1 manifest(s) point at {IMAGE} (commit {'b' * 12})"
    pinned = dataclasses.replace(
        record(result(changed=True)),
        files=(
            *SYNCED,
            {"path": API, "state": "PinnedByHand", "value": "mine:hotfix", "written": "mine:v1"},
        ),
    )
    blocked = writing.outcome(pinned, CATALOG)
    assert (blocked.kind.value, blocked.reason) == ("blocked", "CatalogPinnedByHand")
    assert API in blocked.message


@pytest.mark.parametrize(
    "change",
    [
        {"branch": "release"},
        {"manifests": ["other/*.yaml"]},
        {"field": "spec.runner"},
        {"adopt": ["mcr.microsoft.com/*"]},
        {"onHumanEdit": "Overwrite"},
    ],
)
def test_the_fingerprint_changes_with_every_catalog_setting_that_changes_the_edit(
    change: dict[str, object],
) -> None:
    base = {
        "git": {"url": "https://git.example/catalog.git"},
        "manifests": ["envs/*/environment.yaml"],
    }
    spec = {
        "source": {"inline": {"dockerfile": "FROM scratch\n", "scripts": {}}},
        "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
    }
    git_change = {"git": {**base["git"], **change}} if "branch" in change else change  # type: ignore[dict-item]
    before = model.parse({**spec, "catalog": base}).catalog
    after = model.parse({**spec, "catalog": {**base, **git_change}}).catalog
    assert before is not None
    assert after is not None
    assert writing._fingerprint(before, IMAGE) != writing._fingerprint(after, IMAGE)
    assert writing._fingerprint(before, IMAGE) != writing._fingerprint(before, IMAGE + "x")
