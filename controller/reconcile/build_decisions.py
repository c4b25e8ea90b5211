"""What the build step does, as a function of the spec, the status and what it observed. Pure.

`decide` reads the facts of one reconcile (spec, resolved inputs, the latest image and build
records of status, the manual-trigger annotation, the time, the retry policy) and what the step
observed so far (the backend's state of the build, a build slot, the planned tag in the
registry). When it needs an observation it has not got, it asks for it (`Look`); the step makes
that one call and decides again. Otherwise it says what to do (`Decision`): the outcome, the
build records to write, the image built or adopted now, the build to start, the slot to hold or
release, the build to count as finished. The step does the I/O; every rule lives here:

- the same key as the latest image: built, nothing to do;
- a build running or pending: waited for, recorded Running;
- a build finished: recorded (the history limits applied); a success is the latest image, a
  failure stalls `BuildFailed` unless a failure on the way to the registry is retried by itself
  (`controller.builds.retries`: bounded, backing off; in progress, not stalled, meanwhile);
- a build missing: a key that failed waits for a change or a manual trigger (never a loop); a
  failed key never blocks another key; over the operator-wide limit it waits queued; a tag that
  exists is adopted when it names this key, never overwritten otherwise (`TagExists`).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

from controller import durations, errors
from controller.api import identity as api_identity
from controller.api import spec as model
from controller.api import status as status_
from controller.builds import backend, buildctl, identity, retries
from controller.reconcile import steps

POLL_SECONDS = 3.0
QUEUED_POLL_SECONDS = 10.0
LABEL_PREFIX = "org.opencontainers.image"
MESSAGE_LIMIT = 2000
"""A build record keeps the last this many characters of a failure message."""


@dataclasses.dataclass(frozen=True)
class Facts:
    """What one reconcile knows before the build step looks at anything."""

    spec: model.RunnerImageSpec
    found: steps.ResolvedInputs
    owner: backend.Owner
    latest: status_.LatestImage | None
    records: tuple[status_.BuildRecord, ...]
    """`status.builds`, newest first."""
    now: datetime.datetime
    requested: str = ""
    """The manual-trigger annotation (empty: none)."""
    policy: retries.Policy = dataclasses.field(default_factory=retries.Policy)
    slot_limit: int = 1
    """How many builds run at once across the operator (for the queued message)."""

    @classmethod
    def of(cls, ctx: steps.Context, *, policy: retries.Policy, slot_limit: int) -> Facts:
        """The facts of `ctx`, with the status as this reconcile's writes so far leave it (a
        second decision in one reconcile sees the records and image the first one wrote)."""
        status = {**ctx.status, **ctx.updates}
        return cls(
            spec=ctx.spec,
            found=ctx.resolved(),
            owner=backend.Owner(name=ctx.name, namespace=ctx.namespace, uid=ctx.uid),
            latest=status_.LatestImage.of(status),
            records=status_.BuildRecord.all_of(status),
            now=ctx.now,
            requested=ctx.annotations.get(api_identity.RECONCILE_REQUEST_ANNOTATION, ""),
            policy=policy,
            slot_limit=slot_limit,
        )


@dataclasses.dataclass(frozen=True)
class Tag:
    """What the planned tag names in the registry."""

    digest: str | None
    """The digest under the tag; None: the tag does not exist."""


@dataclasses.dataclass(frozen=True)
class Seen:
    """What the step observed so far in this reconcile (None: not looked at yet)."""

    state: backend.BuildState | None = None
    slot: bool | None = None
    """Whether a build slot was free (acquired) for this key."""
    tag: Tag | None = None


class Need(enum.Enum):
    STATE = "state"
    """The backend's state of the planned build (the step frees the slots of older keys first)."""
    SLOT = "slot"
    """A build slot for this key."""
    TAG = "tag"
    """What the planned tag names in the registry (with the push credentials)."""


@dataclasses.dataclass(frozen=True)
class Look:
    """The decision needs an observation first."""

    need: Need
    plan: backend.BuildPlan


class Slot(enum.Enum):
    KEEP = "keep"
    HOLD = "hold"
    """Count a build found running (e.g. adopted after a restart) against the limit."""
    RELEASE = "release"


@dataclasses.dataclass(frozen=True)
class Stall:
    """A problem the user must fix (or a failed build): raised as a `StalledError`."""

    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Finished:
    """A build seen finished for the first time (its record did not say so yet): counted once."""

    result: str
    """`succeeded` or `failed`, as the build metric counts it."""
    seconds: float | None
    """From its record's start; None when no start was recorded."""
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the build step does now, and the I/O that goes with it."""

    outcome: steps.Outcome | Stall
    plan: backend.BuildPlan | None = None
    """The build the decision is about (None: the latest image is this key's)."""
    records: tuple[status_.BuildRecord, ...] | None = None
    """`status.builds` to write, history limits applied (None: left as it is)."""
    image: status_.LatestImage | None = None
    """The image built or adopted in this reconcile: the new `status.latestImage`."""
    start: bool = False
    """Start the planned build (the slot is held)."""
    adopted: bool = False
    """The image is one the registry already had under the planned tag (counted `reused`)."""
    slot: Slot = Slot.KEEP
    finished: Finished | None = None
    prune: bool = False
    """Remove the owner's finished builds that `records` no longer names."""
    queued: bool = False
    """Waiting for a build slot (the queued gauge)."""


def decide(facts: Facts, seen: Seen) -> Decision | Look:
    """What the build step does for `facts`, given what it `seen` so far."""
    key = facts.found.key
    latest = facts.latest
    if latest is not None and latest.build_key == key:
        return Decision(steps.Outcome.done("Built", f"{latest.reference} ({latest.digest})"))
    record = next((r for r in facts.records if r.build_key == key), None)
    plan = make_plan(facts, record)
    if seen.state is None:
        return Look(Need.STATE, plan)
    state = seen.state
    if state.phase in (backend.Phase.PENDING, backend.Phase.RUNNING):
        records, _ = upsert(facts, plan, record, result=status_.BuildResult.RUNNING)
        detail = f": {state.message}" if state.message else ""
        return Decision(
            steps.Outcome.waiting(
                "Building",
                f"build {plan.name} ({plan.reason}) is {state.phase.value.lower()}{detail}",
                requeue_after=POLL_SECONDS,
            ),
            plan=plan,
            records=records,
            slot=Slot.HOLD,
        )
    if state.phase is backend.Phase.SUCCEEDED:
        assert state.digest is not None
        return dataclasses.replace(
            succeeded(facts, plan, record, state.digest),
            slot=Slot.RELEASE,
            finished=finished(facts, record, "succeeded"),
            prune=True,
        )
    if state.phase is backend.Phase.FAILED:
        records, failed_record = upsert(
            facts, plan, record, result=status_.BuildResult.FAILED, message=state.message
        )
        return dataclasses.replace(
            failed(facts, plan, failed_record),
            records=records,
            slot=Slot.RELEASE,
            finished=finished(facts, record, "failed", state.message),
            prune=True,
        )
    # Missing: start one, unless this key already failed and no retry is due.
    failed_before = record is not None and record.result is status_.BuildResult.FAILED
    if record is not None and failed_before and not restarts(facts, record):
        return failed(facts, plan, record)
    if seen.slot is None:
        return Look(Need.SLOT, plan)
    if not seen.slot:
        return Decision(
            steps.Outcome.waiting(
                "BuildQueued",
                f"waiting for a build slot ({facts.slot_limit} builds run at once)",
                requeue_after=QUEUED_POLL_SECONDS,
            ),
            plan=plan,
            queued=True,
        )
    if seen.tag is None:
        return Look(Need.TAG, plan)
    if seen.tag.digest is not None:
        return existing_tag(facts, plan, record, seen.tag.digest)
    records, _ = upsert(
        facts,
        plan,
        record,
        result=status_.BuildResult.RUNNING,
        restart=True,
        retries=plan.retries,
        requested_at=facts.requested,
    )
    return Decision(
        steps.Outcome.waiting(
            "Building", f"build {plan.name} started ({plan.reason})", requeue_after=POLL_SECONDS
        ),
        plan=plan,
        records=records,
        start=True,
    )


def make_plan(facts: Facts, record: status_.BuildRecord | None) -> backend.BuildPlan:
    """The build of this key: a first one, a manual or automatic retry, or the one recorded."""
    spec, found = facts.spec, facts.found
    again = 0
    if record is None:
        reason, _ = identity.reasons(_inputs(facts.latest), found.material)
        attempt = 1
    elif record.result is status_.BuildResult.FAILED and manual(facts, record):
        reason, attempt = "Manual", record.attempt + 1
    elif (due := due_now(facts, record)) is not None:
        reason, attempt, again = record.reason, due.attempt, due.retries
    else:
        reason, attempt = record.reason, record.attempt
    image = (record.image if record is not None else "") or (
        f"{spec.image.registry}/{spec.image.repository}:"
        + identity.render_tag(
            spec.image.tag, revision=found.inputs.revision, key=found.key, at=facts.now
        )
    )
    return backend.BuildPlan(
        owner=facts.owner,
        key=found.key,
        reason=reason,
        image=image,
        dockerfile=spec.dockerfile,
        build_args=spec.build_args,
        platforms=spec.platforms,
        target=spec.target,
        labels={
            f"{LABEL_PREFIX}.revision": found.inputs.revision,
            f"{api_identity.GROUP}/build-key": found.key,
            # Who pushed it: retention deletes only images carrying its own name.
            api_identity.RUNNER_IMAGE_LABEL: f"{facts.owner.namespace}/{facts.owner.name}",
        },
        cache_ref=buildctl.cache_ref(spec.image.registry, spec.image.repository),
        context_dir=found.context_dir,
        push_secret=spec.image.push_secret_ref.name if spec.image.push_secret_ref else None,
        timeout_seconds=int(durations.parse(spec.build.timeout)),
        resources=spec.build.resources,
        placement=backend.PodPlacement.of(spec.build),
        source_date_epoch=found.source_date_epoch,
        attestations=spec.build.attestations,
        attempt=attempt,
        retries=again,
    )


def manual(facts: Facts, record: status_.BuildRecord) -> bool:
    """Whether the manual trigger asks for a build this record did not answer yet."""
    return bool(facts.requested) and facts.requested != record.requested_at


def restarts(facts: Facts, record: status_.BuildRecord) -> bool:
    """Whether a failed build of this key starts again now (asked for, or a due retry)."""
    return manual(facts, record) or due_now(facts, record) is not None


def due_now(facts: Facts, record: status_.BuildRecord) -> retries.Retry | None:
    """The automatic retry of a failed build that starts now, if one does."""
    automatic = retries.automatic(facts.policy, record, facts.now)
    return automatic if automatic is not None and automatic.wait <= 0 else None


def failed(facts: Facts, plan: backend.BuildPlan, record: status_.BuildRecord) -> Decision:
    """A failed build: in progress while an automatic retry is coming, else stalled."""
    automatic = retries.automatic(facts.policy, record, facts.now)
    if automatic is None:
        after = f" (after {record.retries + 1} attempts)" if record.retries else ""
        return Decision(
            Stall("BuildFailed", f"build {plan.name} failed{after}: {record.message}"), plan=plan
        )
    return Decision(
        steps.Outcome.waiting(
            "BuildRetrying",
            f"build {plan.name} failed on the way to the registry "
            f"({retries.summary(record.message)}); retry {automatic.retries} of "
            f"{facts.policy.retries} starts in {automatic.wait:.0f}s",
            requeue_after=max(automatic.wait, 1.0),
        ),
        plan=plan,
    )


def existing_tag(
    facts: Facts, plan: backend.BuildPlan, record: status_.BuildRecord | None, digest: str
) -> Decision:
    """The planned tag exists: this key's image when the tag names the key, else never
    overwritten."""
    if "{buildKey}" in facts.spec.image.tag or "{shortBuildKey}" in facts.spec.image.tag:
        return dataclasses.replace(
            succeeded(facts, plan, record, digest), adopted=True, slot=Slot.RELEASE
        )
    return Decision(
        Stall(
            "TagExists",
            f"spec.image.tag: {plan.image} already exists ({digest}) and "
            "is not this build's; tags are never overwritten — use a template with "
            "{shortBuildKey} or {timestamp}",
        ),
        plan=plan,
        slot=Slot.RELEASE,
    )


def succeeded(
    facts: Facts, plan: backend.BuildPlan, record: status_.BuildRecord | None, digest: str
) -> Decision:
    """A build of this key pushed `digest`: recorded, and the latest image."""
    records, _ = upsert(facts, plan, record, result=status_.BuildResult.SUCCEEDED, digest=digest)
    _, changes = identity.reasons(_inputs(facts.latest), facts.found.material)
    image = status_.LatestImage(
        reference=plan.image,
        digest=digest,
        built_at=status_.timestamp(facts.now),
        reason=plan.reason,
        changes=tuple(changes),
        build_key=facts.found.key,
        inputs=facts.found.material,
    )
    return Decision(
        steps.Outcome.done("Built", f"{plan.image} ({digest})"),
        plan=plan,
        records=records,
        image=image,
    )


def finished(
    facts: Facts, record: status_.BuildRecord | None, result: str, message: str = ""
) -> Finished | None:
    """The build seen finished, unless its record already said so (counted then)."""
    if record is not None and record.result.finished:
        return None
    begun = status_.parse_timestamp(record.started_at) if record is not None else None
    seconds = (facts.now - begun).total_seconds() if begun is not None else None
    return Finished(result=result, seconds=seconds, message=message)


def upsert(
    facts: Facts,
    plan: backend.BuildPlan,
    record: status_.BuildRecord | None,
    *,
    result: status_.BuildResult,
    message: str = "",
    digest: str = "",
    restart: bool = False,
    retries: int = 0,
    requested_at: str = "",
) -> tuple[tuple[status_.BuildRecord, ...], status_.BuildRecord]:
    """The records with the plan's build recorded as `result` (a new record first when there
    was none or the build starts again), the history limits applied; and that record."""
    stamp = status_.timestamp(facts.now)
    records = list(facts.records)
    if record is None or restart:
        if record is not None:
            records.remove(record)
        current = status_.BuildRecord(
            name=plan.name,
            build_key=plan.key,
            reason=plan.reason,
            image=plan.image,
            started_at=stamp,
            result=result,
            attempt=plan.attempt,
            finished_at=stamp if result.finished else "",
            retries=retries,
            requested_at=requested_at,
        )
        index = 0
        records.insert(0, current)
    else:
        index = records.index(record)
        current = record
        if current.result is not result:
            current = dataclasses.replace(
                current,
                result=result,
                finished_at=stamp if result.finished else current.finished_at,
            )
    if message:
        current = dataclasses.replace(current, message=errors.redact(message)[-MESSAGE_LIMIT:])
    if digest:
        current = dataclasses.replace(current, digest=digest)
    records[index] = current
    return kept(records, facts.spec.history_limit), current


def kept(
    records: list[status_.BuildRecord], limits: model.HistoryLimit
) -> tuple[status_.BuildRecord, ...]:
    """The newest records within the history limits for succeeded and failed builds."""
    out: list[status_.BuildRecord] = []
    succeeded_ = failed_ = 0
    for record in records:
        if record.result is status_.BuildResult.SUCCEEDED:
            succeeded_ += 1
            if succeeded_ > limits.succeeded:
                continue
        elif record.result is status_.BuildResult.FAILED:
            failed_ += 1
            if failed_ > limits.failed:
                continue
        out.append(record)
    return tuple(out)


def _inputs(latest: status_.LatestImage | None) -> dict[str, object] | None:
    return dict(latest.inputs) if latest is not None and latest.inputs else None
