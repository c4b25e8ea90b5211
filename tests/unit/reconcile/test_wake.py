"""Waking a reconcile when an in-process build ends: one annotation patch, failures only logged."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import pytest

from controller import kube
from controller.reconcile import wake


class Annotations:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.patched: list[tuple[str, str, dict[str, str]]] = []
        self.done = asyncio.Event()

    async def annotate(
        self, *, namespace: str, name: str, annotations: Mapping[str, str], **_: Any
    ) -> None:
        self.done.set()
        if self.fail:
            raise kube.KubeError(403, "annotating runnerimages team-a/runner: 403 Forbidden")
        self.patched.append((namespace, name, dict(annotations)))


async def test_a_finished_build_stamps_its_object() -> None:
    cluster = Annotations()
    wake.Waker(cast(kube.Kube, cluster)).build_finished("team-a", "runner", "runner-build-abc")
    await asyncio.wait_for(cluster.done.wait(), timeout=5)
    assert cluster.patched == [
        ("team-a", "runner", {"runners.ade.dev/build-finished": "runner-build-abc"})
    ]


async def test_a_stamp_that_fails_is_logged_for_the_timer_to_cover(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = Annotations(fail=True)
    wake.Waker(cast(kube.Kube, cluster)).build_finished("team-a", "runner", "runner-build-abc")
    await asyncio.wait_for(cluster.done.wait(), timeout=5)
    await asyncio.sleep(0)
    assert "could not wake team-a/runner after build runner-build-abc" in caplog.text


async def test_a_build_is_stamped_once_however_often_its_end_is_seen() -> None:
    # A finished Job goes on changing (SuccessCriteriaMet, then Complete): one patch.
    cluster = Annotations()
    waker = wake.Waker(cast(kube.Kube, cluster))
    for _ in range(3):
        waker.build_finished("team-a", "runner", "runner-build-abc")
    await asyncio.wait_for(cluster.done.wait(), timeout=5)
    waker.build_finished("team-a", "runner", "runner-build-def")
    await asyncio.sleep(0.01)
    assert [annotations for _, _, annotations in cluster.patched] == [
        {"runners.ade.dev/build-finished": "runner-build-abc"},
        {"runners.ade.dev/build-finished": "runner-build-def"},
    ]


async def test_a_stamp_that_failed_or_a_forgotten_object_is_stamped_again() -> None:
    cluster = Annotations(fail=True)
    waker = wake.Waker(cast(kube.Kube, cluster))
    waker.build_finished("team-a", "runner", "runner-build-abc")
    await asyncio.wait_for(cluster.done.wait(), timeout=5)
    cluster.fail = False
    waker.build_finished("team-a", "runner", "runner-build-abc")
    await asyncio.sleep(0.01)
    waker.forget(namespace="team-a", name="runner")  # deleted, then created again
    waker.build_finished("team-a", "runner", "runner-build-abc")
    await asyncio.sleep(0.01)
    assert len(cluster.patched) == 2


async def test_a_catalog_change_settled_after_its_reconcile_stopped_waiting_wakes_the_object() -> (
    None
):
    cluster = Annotations()
    wake.Waker(cast(kube.Kube, cluster)).catalog_written("team-a", "runner", "abc123")
    await asyncio.wait_for(cluster.done.wait(), timeout=5)
    assert cluster.patched == [("team-a", "runner", {"runners.ade.dev/catalog-written": "abc123"})]


async def test_a_failed_catalog_wake_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    cluster = Annotations(fail=True)
    waker = wake.Waker(cast(kube.Kube, cluster))
    waker.catalog_written("team-a", "runner", "")
    await asyncio.wait_for(cluster.done.wait(), timeout=5)
    await asyncio.sleep(0)
    assert "could not wake team-a/runner" in caplog.text
