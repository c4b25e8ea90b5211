"""The write-back step's pure parts: the status it records after the writer settled a change,
the Event of a commit, the outcome as the last check found it, and what the fingerprint covers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import pathlib
import subprocess
from typing import Any, cast

import pytest

from controller import errors
from controller.api import spec as model
from controller.api import status
from controller.catalog import repository
from controller.reconcile import memory as memory_
from controller.reconcile import steps, wake, writing
from controller.sources import git as git_source
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


SPEC = {
    "source": {"inline": {"dockerfile": "FROM scratch\n", "scripts": {}}},
    "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
    "catalog": {
        "git": {"url": "https://git.example/catalog.git", "branch": "main"},
        "manifests": ["envs/*/environment.yaml"],
    },
}


def _built(status_: str) -> list[dict[str, str]]:
    return [{"type": "Built", "status": status_, "reason": "Building"}]


def test_a_build_in_flight_with_a_catalog_is_expected_on_that_catalog() -> None:
    writer = repository.CatalogWriter(cache=repository.CloneCache(pathlib.Path("/nonexistent")))
    writing.expect(writer, who="ns/a", spec=SPEC, conditions_=_built("Unknown"))
    assert writer.expected(url="https://git.example/catalog.git", branch="main") == {"ns/a"}
    # the build ended (verified, failed or stalled): not coming any more
    writing.expect(writer, who="ns/a", spec=SPEC, conditions_=_built("True"))
    assert writer.expected(url="https://git.example/catalog.git", branch="main") == frozenset()


@pytest.mark.parametrize(
    ("spec", "conditions"),
    [
        ({k: v for k, v in SPEC.items() if k != "catalog"}, _built("Unknown")),  # no catalog
        ({**SPEC, "catalog": {"manifests": []}}, _built("Unknown")),  # a spec that stalls
        (SPEC, []),  # no build in flight
        (SPEC, _built("False")),
    ],
)
def test_anything_else_is_not_expected(spec: dict[str, object], conditions: list[Any]) -> None:
    writer = repository.CatalogWriter(cache=repository.CloneCache(pathlib.Path("/nonexistent")))
    writer.expect("ns/a", url="https://git.example/catalog.git", branch="main")
    writing.expect(writer, who="ns/a", spec=spec, conditions_=conditions)
    assert writer.expected(url="https://git.example/catalog.git", branch="main") == frozenset()
    writing.expect(None, who="ns/a", spec=SPEC, conditions_=_built("Unknown"))  # no writer: no-op


class _Writer(repository.CatalogWriter):
    """Settles every change at once with a commit (no git)."""

    def enqueue(self, change: repository.Change) -> repository.Ticket:
        future: asyncio.Future[repository.Result] = asyncio.get_running_loop().create_future()
        future.set_result(repository.Result("d" * 40, "refs/heads/main", (WEB,), True, SETTLED))
        return repository.Ticket(repository._Pending(change, future, 0.0))


async def test_a_write_counts_as_a_look_at_the_head(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head the push landed on is known: the next reconcile (the progress timer, moments
    later) does not ask the server for it again (`git ls-remote`)."""
    looked: list[str] = []

    async def ls_remote(**kwargs: Any) -> str:
        looked.append(kwargs["url"])
        return "d" * 40

    monkeypatch.setattr(git_source, "ls_remote", ls_remote)
    services_ = fakes.make_services(tmp_path)
    services_.catalog = _Writer(cache=repository.CloneCache(tmp_path / "cache"))
    memory = memory_.ObjectMemory()
    memory.checked_generation = 1
    step = writing.WriteCatalog(services_, memory)
    latest = {"latestImage": {"reference": IMAGE, "digest": "sha256:" + "1" * 64}}
    first = fakes.context(SPEC, status=latest)
    await step(first)
    again = fakes.context(SPEC, status={**latest, "catalog": first.updates["catalog"]})
    await step(again)
    assert looked == []


# -- a change that outlasts a reconcile: kept queued, waited for again, woken when settled ------


class FakeWriter:
    """`CatalogWriter.enqueue` handing out tickets the test settles."""

    def __init__(self) -> None:
        self.pending: list[repository._Pending] = []
        self.enqueued = asyncio.Event()

    def enqueue(self, change: repository.Change) -> repository.Ticket:
        future: asyncio.Future[repository.Result] = asyncio.get_running_loop().create_future()
        self.pending.append(repository._Pending(change, future, 0.0))
        self.enqueued.set()
        return repository.Ticket(self.pending[-1])


class FakeWaker:
    def __init__(self) -> None:
        self.woken: list[tuple[str, str, str]] = []

    def catalog_written(self, namespace: str, name: str, commit: str) -> None:
        self.woken.append((namespace, name, commit))


def _step(tmp_path: pathlib.Path) -> tuple[writing.WriteCatalog, FakeWriter, FakeWaker]:
    writer, waker = FakeWriter(), FakeWaker()
    services = dataclasses.replace(
        fakes.make_services(tmp_path),
        catalog=cast(repository.CatalogWriter, writer),
        waker=cast(wake.Waker, waker),
    )
    return writing.WriteCatalog(services, memory_.ObjectMemory()), writer, waker


def _context(image: str = IMAGE) -> steps.Context:
    return fakes.context(
        SPEC, status={"latestImage": {"reference": image, "digest": "sha256:" + "d" * 64}}
    )


def _lost() -> repository.CatalogPushRejected:
    return repository.CatalogPushRejected(
        "push to 'main' rejected 25 times in a row: the branch moved every time (the change"
        " stays queued and is pushed again)",
        purpose="catalog",
        url="https://git.example/catalog.git",
        ref="main",
    )


async def _reconcile(step: writing.WriteCatalog, ctx: steps.Context) -> asyncio.Task[steps.Outcome]:
    task = asyncio.create_task(step(ctx))
    for _ in range(10):
        await asyncio.sleep(0)
    return task


async def test_a_change_outlasting_a_round_stays_queued_and_the_next_reconcile_waits_for_it(
    tmp_path: pathlib.Path,
) -> None:
    step, writer, waker = _step(tmp_path)
    first = await _reconcile(step, _context())
    assert len(writer.pending) == 1
    writer.pending[0].round_lost(_lost())
    with pytest.raises(repository.CatalogPushRejected, match="stays queued"):
        await first  # what status shows meanwhile: CatalogSynced=False, CatalogPushRejected
    assert not writer.pending[0].future.done()  # not withdrawn

    second = await _reconcile(step, _context())
    assert len(writer.pending) == 1  # waits for the same change, not a second one
    writer.pending[0].future.set_result(
        repository.Result("b" * 40, "refs/heads/main", (), False, SETTLED)
    )
    await second
    assert waker.woken == []  # a reconcile was waiting: nobody to wake
    assert step.checks.queued is None


async def test_a_change_settled_while_no_reconcile_waits_wakes_the_object(
    tmp_path: pathlib.Path,
) -> None:
    step, writer, waker = _step(tmp_path)
    first = await _reconcile(step, _context())
    writer.pending[0].round_lost(_lost())
    with pytest.raises(repository.CatalogPushRejected):
        await first
    writer.pending[0].future.set_result(
        repository.Result("b" * 40, "refs/heads/main", (), False, SETTLED)
    )
    await asyncio.sleep(0)
    assert waker.woken == [("team-a", "runner", "b" * 40)]
    # the reconcile it causes records the result without writing anything again
    await step(_context())
    assert len(writer.pending) == 1


async def test_a_new_image_supersedes_the_queued_change_and_a_deletion_withdraws_it(
    tmp_path: pathlib.Path,
) -> None:
    step, writer, waker = _step(tmp_path)
    first = await _reconcile(step, _context())
    writer.pending[0].round_lost(_lost())
    with pytest.raises(repository.CatalogPushRejected):
        await first
    second = await _reconcile(step, _context(IMAGE + "-next"))
    assert len(writer.pending) == 2
    assert writer.pending[0].future.cancelled()  # the old image's change taken back
    writer.pending[1].round_lost(_lost())
    with pytest.raises(repository.CatalogPushRejected):
        await second
    writing.withdraw(step.memory)  # the RunnerImage was deleted
    assert writer.pending[1].future.cancelled()
    await asyncio.sleep(0)
    assert waker.woken == []


# -- the signing key: read from its Secret and handed to the writer with the change --------------


SIGNED_SPEC = {
    **SPEC,
    "catalog": {**SPEC["catalog"], "signing": {"secretRef": {"name": "catalog-signing"}}},  # type: ignore[dict-item]
}


async def test_the_signing_key_goes_with_the_change(tmp_path: pathlib.Path) -> None:
    key = subprocess_keygen(tmp_path)
    services = fakes.make_services(
        tmp_path, kube_=fakes.FakeKube({"catalog-signing": {"identity": key}})
    )
    writer = FakeWriter()
    services.catalog = cast(repository.CatalogWriter, writer)
    step = writing.WriteCatalog(services, memory_.ObjectMemory())
    ctx = fakes.context(
        SIGNED_SPEC, status={"latestImage": {"reference": IMAGE, "digest": "sha256:" + "d" * 64}}
    )
    task = asyncio.create_task(step(ctx))
    await asyncio.wait_for(writer.enqueued.wait(), 10)  # the key is read in a worker thread
    task.cancel()
    (pending,) = writer.pending
    assert pending.change.signing is not None
    assert pending.change.signing.format == "ssh"
    assert pending.change.signing.secret == "catalog-signing"


@pytest.mark.parametrize(
    ("secret", "reason", "says"),
    [
        (None, "SecretNotFound", "Secret 'catalog-signing' not found"),
        ({"username": b"x"}, "SigningKeyInvalid", "has neither of the keys"),
    ],
)
async def test_a_signing_secret_that_cannot_sign_stalls_naming_the_field(
    tmp_path: pathlib.Path, secret: dict[str, bytes] | None, reason: str, says: str
) -> None:
    secrets = {} if secret is None else {"catalog-signing": secret}
    services = fakes.make_services(tmp_path, kube_=fakes.FakeKube(secrets))
    writer = FakeWriter()
    services.catalog = cast(repository.CatalogWriter, writer)
    step = writing.WriteCatalog(services, memory_.ObjectMemory())
    ctx = fakes.context(
        SIGNED_SPEC, status={"latestImage": {"reference": IMAGE, "digest": "sha256:" + "d" * 64}}
    )
    with pytest.raises(errors.StalledError) as raised:
        await step(ctx)
    assert raised.value.reason == reason
    assert str(raised.value).startswith("spec.catalog.signing.secretRef: ")
    assert says in str(raised.value)
    assert writer.pending == []  # nothing was handed to the writer: no unsigned commit


def subprocess_keygen(folder: pathlib.Path) -> bytes:
    path = folder / "signing-key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path.read_bytes()
