"""The typed status views (controller.api.status): read leniently, written back unchanged.

An unchanged view must write back exactly what it read (else an idle operator would patch its
status on every pass), and a status edited by hand must read as absent, never crash.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from controller.api import status
from controller.observe import status as diff

LATEST = {
    "reference": "contoso.azurecr.io/ade/runner:1a2b3c4d5e6f",
    "digest": "sha256:" + "a" * 64,
    "builtAt": "2026-12-05T10:00:00Z",
    "reason": "SourceChanged",
    "changes": ["revision 0123456 -> 89abcde"],
    "buildKey": "f" * 64,
    "inputs": {"v": 1, "revision": "89abcde"},
}
RUNNING = {
    "name": "runner-build-ffffffffffff",
    "attempt": 1,
    "buildKey": "f" * 64,
    "reason": "Initial",
    "image": LATEST["reference"],
    "startedAt": "2026-12-05T09:58:00Z",
    "result": "Running",
}
FAILED = {
    **RUNNING,
    "attempt": 2,
    "result": "Failed",
    "finishedAt": "2026-12-05T09:59:00Z",
    "message": "failed to push: 503",
    "retries": 1,
    "requestedAt": "2026-12-05T09:57:00Z",
}
CATALOG = {
    "revision": "c" * 40,
    "ref": "refs/heads/main",
    "image": LATEST["reference"],
    "manifests": ["envs/web/environment.yaml"],
    "changed": ["envs/web/environment.yaml"],
    "files": [{"path": "envs/web/environment.yaml", "state": "Synced", "written": "x"}],
    "pushedAt": "2026-12-05T10:01:00Z",
    "fingerprint": "0123456789abcdef",
    "syncedRevision": "c" * 40,
    "syncedAt": "2026-12-05T10:02:00Z",
}
REGISTRY = {
    "resourceId": "/subscriptions/s/resourceGroups/rg/providers/x/registries/acr",
    "mode": "PrivatePull",
    "anonymousPull": None,
    "publicNetworkAccess": None,
    "principals": ["a", "b"],
    "repairedAt": None,
}


@pytest.mark.parametrize("record", [RUNNING, FAILED])
def test_a_build_record_writes_back_what_it_read(record: dict[str, Any]) -> None:
    (read,) = status.BuildRecord.all_of({"builds": [record]})
    assert read.to_status() == record
    assert diff.merge_patch({"builds": [record]}, {"builds": [read.to_status()]}) == {}


def test_build_records_keep_their_order_and_drop_what_is_not_one() -> None:
    found = status.BuildRecord.all_of({"builds": [FAILED, {"result": "Exploded"}, "x", RUNNING]})
    assert [(r.attempt, r.result) for r in found] == [
        (2, status.BuildResult.FAILED),
        (1, status.BuildResult.RUNNING),
    ]
    assert found[0].result.finished
    assert not found[1].result.finished
    assert status.BuildRecord.all_of({"builds": "nonsense"}) == ()


def test_the_latest_image_writes_back_what_it_read() -> None:
    latest = status.LatestImage.of({"latestImage": LATEST})
    assert latest is not None
    assert latest.changes == ("revision 0123456 -> 89abcde",)
    assert latest.to_status() == LATEST


@pytest.mark.parametrize(
    "found",
    [None, {}, {"reference": "r"}, {"digest": "sha256:x"}, {"reference": 3, "digest": "d"}, "x"],
)
def test_no_latest_image_until_it_has_a_reference_and_a_digest(found: object) -> None:
    assert status.LatestImage.of({"latestImage": found}) is None


def test_catalog_and_registry_write_back_what_they_read() -> None:
    catalog = status.CatalogStatus.of({"catalog": CATALOG})
    assert diff.merge_patch({"catalog": CATALOG}, {"catalog": catalog.to_status()}) == {}
    registry = status.RegistryStatus.of({"registry": REGISTRY})
    assert registry is not None
    assert registry.principals == ("a", "b")
    assert registry.to_status() == REGISTRY


def test_an_empty_catalog_status_writes_nothing_but_its_lists() -> None:
    empty = status.CatalogStatus.of({})
    assert diff.merge_patch({"catalog": {}}, {"catalog": empty.to_status()}) == {
        "catalog": {"manifests": [], "files": []}
    }
    assert status.RegistryStatus.of({}) is None


def test_one_timestamp_format_both_ways() -> None:
    moment = datetime.datetime(
        2026, 12, 5, 11, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    assert status.timestamp(moment) == "2026-12-05T10:00:00Z"
    assert status.parse_timestamp("2026-12-05T10:00:00Z") == moment
    assert status.parse_timestamp("2026-12-05T10:00:00") == moment  # naive reads as UTC
    assert status.parse_timestamp("yesterday") is None
    assert status.parse_timestamp(None) is None
