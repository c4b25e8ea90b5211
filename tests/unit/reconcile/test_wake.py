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
