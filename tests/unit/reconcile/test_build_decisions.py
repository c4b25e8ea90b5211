"""The build step's decisions (controller.reconcile.build_decisions), as tables: the spec, the
status and what the step observed in; the outcome, the records and the I/O to do out."""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from typing import Any

import pytest

from controller.api import identity as api_identity
from controller.api import spec as model
from controller.api import status as status_
from controller.builds import backend, identity, retries
from controller.reconcile import build_decisions as decisions
from controller.reconcile import steps

NOW = datetime.datetime(2026, 12, 5, 10, 0, 0, tzinfo=datetime.UTC)
STAMP = "2026-12-05T10:00:00Z"
STARTED = "2026-12-05T09:55:00Z"
DIGEST = "sha256:" + "d" * 64
OLD_DIGEST = "sha256:" + "0" * 64
OWNER = backend.Owner(name="runner", namespace="team-a", uid="uid-1")
POLICY = retries.Policy(retries=2, delay=10.0)
TRANSIENT = "error: failed to solve: failed to push r.example/x:1: 503 Service Unavailable"
PERMANENT = "#7 ERROR: process '/bin/sh -c exit 3' did not complete successfully: exit code: 3"
Result = status_.BuildResult
Phase = backend.Phase


def parse(**fields: Any) -> model.RunnerImageSpec:
    return model.parse(
        {
            "source": {"git": {"url": "https://github.com/org/runner.git"}},
            "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
            "build": {"timeout": "10m"},
            **fields,
        }
    )


SPEC = parse()
INPUTS = identity.Inputs(
    revision="0123456789abcdef0123456789abcdef01234567",
    base_image="mcr.microsoft.com/core",
    base_digest="sha256:" + "a" * 64,
)
KEY = identity.build_key(SPEC, INPUTS)
OTHER_KEY = "f" * 64
MATERIAL = INPUTS.key_material(SPEC)
FOUND = steps.ResolvedInputs(
    inputs=INPUTS, key=KEY, material=MATERIAL, context_dir=pathlib.Path("/ctx")
)
NAME = backend.build_name(OWNER.name, KEY)
IMAGE = f"contoso.azurecr.io/ade/runner:0123456789ab-{KEY[:12]}"


def facts(
    *,
    latest: status_.LatestImage | None = None,
    records: tuple[status_.BuildRecord, ...] = (),
    requested: str = "",
    spec: model.RunnerImageSpec = SPEC,
) -> decisions.Facts:
    return decisions.Facts(
        spec=spec,
        found=FOUND,
        owner=OWNER,
        latest=latest,
        records=records,
        now=NOW,
        requested=requested,
        policy=POLICY,
        slot_limit=4,
    )


def record(**changes: Any) -> status_.BuildRecord:
    """This key's first build, running since STARTED."""
    fields: dict[str, Any] = {
        "name": NAME,
        "build_key": KEY,
        "reason": "Initial",
        "image": IMAGE,
        "started_at": STARTED,
        "result": Result.RUNNING,
    }
    fields.update(changes)
    return status_.BuildRecord(**fields)


def failed_record(
    message: str = PERMANENT, ago: float = 60.0, **changes: Any
) -> status_.BuildRecord:
    finished = status_.timestamp(NOW - datetime.timedelta(seconds=ago))
    return record(result=Result.FAILED, finished_at=finished, message=message, **changes)


def other(result: Result, key: str = OTHER_KEY) -> status_.BuildRecord:
    return record(name=backend.build_name(OWNER.name, key), build_key=key, result=result)


def state(phase: backend.Phase, **fields: Any) -> backend.BuildState:
    return backend.BuildState(phase, **fields)


MISSING = state(Phase.MISSING)


def decide(
    given: decisions.Facts,
    *,
    seen: backend.BuildState = MISSING,
    slot: bool = True,
    tag: str | None = None,
) -> decisions.Decision:
    """The decision once everything it may ask for was observed."""
    decision = decisions.decide(given, decisions.Seen(seen, slot, decisions.Tag(tag)))
    assert isinstance(decision, decisions.Decision)
    return decision


def building(message: str, requeue: float = decisions.POLL_SECONDS) -> steps.Outcome:
    return steps.Outcome.waiting("Building", message, requeue_after=requeue)


# --- up to date, and what is asked for before deciding ---------------------------------------


def test_the_same_key_as_the_latest_image_is_built_without_looking() -> None:
    latest = status_.LatestImage(reference=IMAGE, digest=DIGEST, build_key=KEY)
    decision = decisions.decide(facts(latest=latest), decisions.Seen())
    assert decision == decisions.Decision(steps.Outcome.done("Built", f"{IMAGE} ({DIGEST})"))


def test_observations_are_asked_for_one_at_a_time_in_order() -> None:
    given = facts()
    asked = decisions.decide(given, decisions.Seen())
    assert isinstance(asked, decisions.Look)
    assert (asked.need, asked.plan.name, asked.plan.image) == (decisions.Need.STATE, NAME, IMAGE)
    asked = decisions.decide(given, decisions.Seen(state=MISSING))
    assert isinstance(asked, decisions.Look)
    assert asked.need is decisions.Need.SLOT
    asked = decisions.decide(given, decisions.Seen(state=MISSING, slot=True))
    assert isinstance(asked, decisions.Look)
    assert asked.need is decisions.Need.TAG


# --- a build in flight -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "message", "said"),
    [
        (Phase.RUNNING, "", "is running"),
        (Phase.PENDING, "Unschedulable: 0/1 nodes", "is pending: Unschedulable: 0/1 nodes"),
    ],
)
def test_a_build_in_flight_is_waited_for_and_recorded_running(
    phase: backend.Phase, message: str, said: str
) -> None:
    decision = decide(facts(records=(record(),)), seen=state(phase, message=message))
    assert decision.outcome == building(f"build {NAME} (Initial) {said}")
    assert decision.records == (record(),)  # unchanged: started when it started
    assert decision.slot is decisions.Slot.HOLD
    assert (decision.start, decision.image, decision.finished, decision.prune) == (
        False,
        None,
        None,
        False,
    )


def test_a_build_found_running_without_a_record_is_recorded() -> None:
    decision = decide(facts(), seen=state(Phase.RUNNING))
    assert decision.records == (record(started_at=STAMP),)


# --- a build finished --------------------------------------------------------------------------


def test_a_succeeded_build_is_recorded_and_is_the_latest_image() -> None:
    old = {**MATERIAL, "revision": "fedcba"}
    latest = status_.LatestImage(
        reference="r/x:old", digest=OLD_DIGEST, build_key="e" * 64, inputs=old
    )
    running = record(reason="SourceChanged")
    decision = decide(
        facts(latest=latest, records=(running, other(Result.SUCCEEDED))),
        seen=state(Phase.SUCCEEDED, digest=DIGEST),
    )
    assert decision.outcome == steps.Outcome.done("Built", f"{IMAGE} ({DIGEST})")
    done = dataclasses.replace(running, result=Result.SUCCEEDED, finished_at=STAMP, digest=DIGEST)
    assert decision.records == (done, other(Result.SUCCEEDED))
    assert decision.image == status_.LatestImage(
        reference=IMAGE,
        digest=DIGEST,
        built_at=STAMP,
        reason="SourceChanged",
        changes=(f"revision: 'fedcba' -> {INPUTS.revision!r}",),
        build_key=KEY,
        inputs=MATERIAL,
    )
    assert decision.slot is decisions.Slot.RELEASE
    assert decision.finished == decisions.Finished("succeeded", seconds=300.0)
    assert decision.prune
    assert not decision.adopted


def test_a_first_build_says_why_it_runs() -> None:
    old = {**MATERIAL, "baseDigest": OLD_DIGEST}
    latest = status_.LatestImage(
        reference="r/x:old", digest=OLD_DIGEST, build_key="e" * 64, inputs=old
    )
    asked = decisions.decide(facts(latest=latest), decisions.Seen())
    assert isinstance(asked, decisions.Look)
    assert asked.plan.reason == "BaseImageChanged"
    asked = decisions.decide(facts(), decisions.Seen())
    assert isinstance(asked, decisions.Look)
    assert asked.plan.reason == "Initial"


def test_a_build_recorded_finished_is_counted_once() -> None:
    done = record(result=Result.SUCCEEDED, finished_at=STAMP, digest=DIGEST)
    decision = decide(facts(records=(done,)), seen=state(Phase.SUCCEEDED, digest=DIGEST))
    assert decision.finished is None
    assert decision.records == (done,)


def test_a_failed_build_stalls_with_its_message() -> None:
    decision = decide(facts(records=(record(),)), seen=state(Phase.FAILED, message=PERMANENT))
    assert decision.outcome == decisions.Stall("BuildFailed", f"build {NAME} failed: {PERMANENT}")
    failed = record(result=Result.FAILED, finished_at=STAMP, message=PERMANENT)
    assert decision.records == (failed,)
    assert decision.slot is decisions.Slot.RELEASE
    assert decision.finished == decisions.Finished("failed", seconds=300.0, message=PERMANENT)
    assert decision.prune
    assert decision.image is None


def test_a_failed_build_says_how_many_attempts_it_made() -> None:
    third = record(name=backend.build_name(OWNER.name, KEY, 3), attempt=3, retries=2)
    decision = decide(facts(records=(third,)), seen=state(Phase.FAILED, message=TRANSIENT))
    assert decision.outcome == decisions.Stall(
        "BuildFailed", f"build {third.name} failed (after 3 attempts): {TRANSIENT}"
    )


def test_a_failure_message_is_redacted_and_cut() -> None:
    message = "x" * 3000 + " https://user:secret@r.example/v2/"
    decision = decide(facts(records=(record(),)), seen=state(Phase.FAILED, message=message))
    assert decision.records is not None
    kept = decision.records[0].message
    assert len(kept) == decisions.MESSAGE_LIMIT
    assert "secret" not in kept


# --- automatic retries -------------------------------------------------------------------------


def test_a_transient_failure_waits_for_its_retry() -> None:
    decision = decide(facts(records=(record(),)), seen=state(Phase.FAILED, message=TRANSIENT))
    assert decision.outcome == steps.Outcome.waiting(
        "BuildRetrying",
        f"build {NAME} failed on the way to the registry ({TRANSIENT}); retry 1 of 2 starts in 10s",
        requeue_after=10.0,
    )
    assert decision.finished is not None
    assert decision.slot is decisions.Slot.RELEASE


def test_a_retry_not_yet_due_keeps_waiting() -> None:
    given = facts(records=(failed_record(TRANSIENT, ago=4.0),))
    decision = decide(given, seen=MISSING)
    assert decision.outcome == steps.Outcome.waiting(
        "BuildRetrying",
        f"build {NAME} failed on the way to the registry ({TRANSIENT}); retry 1 of 2 starts in 6s",
        requeue_after=6.0,
    )
    assert (decision.records, decision.start, decision.finished) == (None, False, None)


def test_a_due_retry_starts_the_next_attempt() -> None:
    failed = failed_record(TRANSIENT, ago=20.0, reason="SpecChanged")
    given = facts(records=(failed, other(Result.SUCCEEDED)))
    asked = decisions.decide(given, decisions.Seen())
    assert isinstance(asked, decisions.Look)
    assert (asked.plan.attempt, asked.plan.retries) == (2, 1)
    decision = decide(given)
    second = backend.build_name(OWNER.name, KEY, 2)
    assert decision.outcome == building(f"build {second} started (SpecChanged)")
    assert decision.start
    assert decision.plan is not None
    assert (decision.plan.name, decision.plan.attempt, decision.plan.retries) == (second, 2, 1)
    started = record(name=second, attempt=2, retries=1, reason="SpecChanged", started_at=STAMP)
    assert decision.records == (started, other(Result.SUCCEEDED))


# --- manual trigger ----------------------------------------------------------------------------


def test_a_manual_trigger_starts_a_failed_key_again() -> None:
    given = facts(records=(failed_record(),), requested="2026-12-05T09:59:00Z")
    decision = decide(given)
    second = backend.build_name(OWNER.name, KEY, 2)
    assert decision.outcome == building(f"build {second} started (Manual)")
    assert decision.records == (
        record(
            name=second,
            attempt=2,
            reason="Manual",
            started_at=STAMP,
            requested_at="2026-12-05T09:59:00Z",
        ),
    )


def test_a_manual_trigger_already_answered_does_not_start_it_again() -> None:
    answered = failed_record(requested_at="2026-12-05T09:59:00Z")
    decision = decide(facts(records=(answered,), requested="2026-12-05T09:59:00Z"))
    assert decision.outcome == decisions.Stall("BuildFailed", f"build {NAME} failed: {PERMANENT}")
    assert (decision.records, decision.start, decision.slot) == (None, False, decisions.Slot.KEEP)


def test_a_failed_key_waits_for_a_change_without_a_trigger() -> None:
    decision = decide(facts(records=(failed_record(),)))
    assert decision.outcome == decisions.Stall("BuildFailed", f"build {NAME} failed: {PERMANENT}")
    assert decision.records is None


# --- starting ----------------------------------------------------------------------------------


def test_a_failed_key_never_blocks_a_new_key() -> None:
    failed = other(Result.FAILED)
    decision = decide(facts(records=(failed,)))
    assert decision.outcome == building(f"build {NAME} started (Initial)")
    assert decision.records == (record(started_at=STAMP), failed)
    assert decision.start


def test_the_trigger_a_first_build_answers_is_recorded() -> None:
    decision = decide(facts(requested="t1"))
    assert decision.records == (record(started_at=STAMP, requested_at="t1"),)


def test_without_a_slot_the_build_waits_queued() -> None:
    decision = decide(facts(), slot=False)
    assert decision == decisions.Decision(
        steps.Outcome.waiting(
            "BuildQueued",
            "waiting for a build slot (4 builds run at once)",
            requeue_after=decisions.QUEUED_POLL_SECONDS,
        ),
        plan=decision.plan,
        queued=True,
    )


def test_an_existing_tag_that_names_this_key_is_adopted() -> None:
    decision = decide(facts(), tag=DIGEST)
    assert decision.outcome == steps.Outcome.done("Built", f"{IMAGE} ({DIGEST})")
    assert decision.adopted
    assert not decision.start
    assert decision.slot is decisions.Slot.RELEASE
    assert decision.records == (
        record(result=Result.SUCCEEDED, started_at=STAMP, finished_at=STAMP, digest=DIGEST),
    )
    assert decision.image is not None
    assert (decision.image.digest, decision.image.reason) == (DIGEST, "Initial")
    assert (decision.finished, decision.prune) == (None, False)


def test_an_existing_tag_that_is_not_this_keys_is_never_overwritten() -> None:
    spec = parse(image={"registry": "contoso.azurecr.io", "repository": "ade/runner", "tag": "v1"})
    decision = decide(facts(spec=spec), tag=DIGEST)
    assert decision.outcome == decisions.Stall(
        "TagExists",
        f"spec.image.tag: contoso.azurecr.io/ade/runner:v1 already exists ({DIGEST}) and "
        "is not this build's; tags are never overwritten — use a template with "
        "{shortBuildKey} or {timestamp}",
    )
    assert decision.slot is decisions.Slot.RELEASE
    assert (decision.records, decision.start) == (None, False)


# --- history -----------------------------------------------------------------------------------


def test_history_limits_keep_the_newest_succeeded_and_failed_records() -> None:
    spec = parse(historyLimit={"succeeded": 1, "failed": 1})
    older = (
        other(Result.SUCCEEDED, "1" * 64),
        other(Result.FAILED, "2" * 64),
        other(Result.SUCCEEDED, "3" * 64),
        other(Result.RUNNING, "4" * 64),
        other(Result.FAILED, "5" * 64),
    )
    decision = decide(facts(spec=spec, records=older))
    assert decision.records == (record(started_at=STAMP), older[0], older[1], older[3])


# --- reading the facts from the step context ---------------------------------------------------


def test_the_facts_read_status_through_the_typed_views() -> None:
    latest = status_.LatestImage(reference=IMAGE, digest=DIGEST, build_key=OTHER_KEY)
    ctx = steps.Context(
        name="runner",
        namespace="team-a",
        generation=1,
        spec=SPEC,
        status={
            "latestImage": latest.to_status(),
            "builds": [failed_record().to_status(), {"name": "hand-edited"}],
        },
        now=NOW,
        inputs=FOUND,
        annotations={api_identity.RECONCILE_REQUEST_ANNOTATION: "t1"},
        uid="uid-1",
    )
    given = decisions.Facts.of(ctx, policy=POLICY, slot_limit=4)
    assert given == facts(latest=latest, records=(failed_record(),), requested="t1")
