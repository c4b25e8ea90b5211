"""A reconcile's status write (`controller.reconcile.status_writes`): what it waits out."""

from __future__ import annotations

from typing import Any

import pytest

from controller import backoff, kube
from controller.api import identity
from controller.reconcile import status_writes


class Answers:
    """A status client that fails with the given HTTP statuses, then writes."""

    def __init__(self, *failures: int) -> None:
        self.failures = list(failures)
        self.calls: list[dict[str, Any]] = []

    async def patch_status(self, **call: Any) -> str:
        self.calls.append(call)
        if self.failures:
            status = self.failures.pop(0)
            raise kube.KubeError(status, f"HTTP {status}")
        return "rv-9"


class Sleeps:
    def __init__(self) -> None:
        self.waited: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


async def test_writes_the_status_of_the_runner_image() -> None:
    client = Answers()
    written = await status_writes.write(
        client, namespace="team-a", name="bicep", patch={"observedGeneration": 2}
    )
    assert written == "rv-9"
    (call,) = client.calls
    assert call == {
        "group": identity.GROUP,
        "version": identity.VERSION,
        "plural": identity.PLURAL,
        "namespace": "team-a",
        "name": "bicep",
        "patch": {"observedGeneration": 2},
    }


@pytest.mark.parametrize("status", [0, 429, 500, 503])
async def test_waits_out_an_api_server_away_or_overloaded(status: int) -> None:
    client, sleeps = Answers(status, status, status), Sleeps()
    written = await status_writes.write(
        client, namespace="n", name="x", patch={"a": 1}, waits=(1.0, 2.0, 5.0, 5.0), sleep=sleeps
    )
    assert written == "rv-9"
    assert sleeps.waited == [1.0, 2.0, 5.0]


async def test_the_last_failure_is_raised_once_the_waits_are_spent() -> None:
    client, sleeps = Answers(0, 0, 0), Sleeps()
    with pytest.raises(kube.KubeError) as raised:
        await status_writes.write(
            client, namespace="n", name="x", patch={"a": 1}, waits=(1.0, 1.0), sleep=sleeps
        )
    assert raised.value.status == 0
    assert len(client.calls) == 3
    assert sleeps.waited == [1.0, 1.0]


@pytest.mark.parametrize("status", [400, 403, 422])
async def test_a_refusal_is_raised_at_once(status: int) -> None:
    client, sleeps = Answers(status), Sleeps()
    with pytest.raises(kube.KubeError):
        await status_writes.write(client, namespace="n", name="x", patch={"a": 1}, sleep=sleeps)
    assert sleeps.waited == []


async def test_an_object_gone_has_nothing_left_to_write() -> None:
    client, sleeps = Answers(404), Sleeps()
    assert (
        await status_writes.write(client, namespace="n", name="x", patch={}, sleep=sleeps) is None
    )
    assert sleeps.waited == []


def test_waits_as_long_as_kopf_does() -> None:
    # About ten minutes of an API server away, every 5 s once past the first seconds.
    assert 590 <= sum(backoff.API_SERVER_WAITS) <= 660
    assert max(backoff.API_SERVER_WAITS) == 5.0
