"""Step 6, write back: point the catalog's environment definitions at the verified image.

The edit (set `spec.catalog.field` in every manifest the globs select, pinned by tag or digest)
is handed to the operator-wide catalog writer, which batches every change to one repository into
one commit and push, retries rejected pushes in-process, and never force-pushes the base branch.
A manifest that is not valid YAML, or not an ADE manifest, is left alone and reported by path
while the others proceed. Each file has one owner and human edits are kept (`claims`,
`catalog.ownership`): a file another RunnerImage owns is reported (`CatalogConflict`), one changed
by hand since this RunnerImage wrote it is kept (`CatalogPinnedByHand`) unless
`spec.catalog.onHumanEdit: Overwrite`. Ready tells the catalog as read at the last check: once the
catalog points at the image the step looks at the branch head every resync (`git ls-remote`) and
reads the files again only when it moved; it writes again when the image or the catalog settings
change (or a manual trigger asks). With `spec.catalog.sync`, ADE is then asked to sync the
catalog once per pushed revision.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from controller import durations, errors
from controller.api import conditions
from controller.api import identity as api_identity
from controller.api import spec as model
from controller.api import status as status_
from controller.azure import access as azure_access
from controller.catalog import manifests, ownership, repository
from controller.git import credentials as git_credentials
from controller.observe import events as events_
from controller.observe.conditions import find as conditions_find
from controller.reconcile import claims, pulls, secrets, steps
from controller.reconcile import memory as memory_
from controller.reconcile import services as services_
from controller.sources import git as git_

logger = logging.getLogger(__name__)

RETRY_INVALID_SECONDS = 300.0
DEFAULT_INTERVAL = 300.0
"""How often the catalog branch is checked when `spec.catalog.interval` is not set."""


class ManifestNotFound(errors.StalledError):
    def __init__(self, globs: tuple[str, ...]) -> None:
        listed = ", ".join(globs)
        super().__init__("ManifestNotFound", f"spec.catalog.manifests: nothing matches {listed}")


@dataclasses.dataclass
class CatalogChecks:
    """The catalog step's memory: which branch head it last read, when it last looked."""

    request: str | None = None
    """The reconcile-request annotation value the catalog step last acted on."""
    checked: str | None = None
    """The catalog branch head the catalog step last read its files at."""
    polled: float | None = None
    """When the catalog step last looked at the branch head (monotonic)."""
    queued: Queued | None = None
    """A change still in the writer after a reconcile stopped waiting for it (its pushes lost
    every race of a round): the next reconcile waits for it rather than submit it again."""


@dataclasses.dataclass(frozen=True)
class Queued:
    """A change handed to the catalog writer, with what the step needs to record its result."""

    fingerprint: str
    request: str | None
    edit: claims.CatalogEdit
    ticket: repository.Ticket


@dataclasses.dataclass(frozen=True)
class WriteCatalog:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.CATALOG_SYNCED

    @property
    def checks(self) -> CatalogChecks:
        return self.memory.part(CatalogChecks)

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        catalog = ctx.spec.catalog
        if catalog is None:
            return steps.Outcome.skipped("no catalog in the spec")
        latest = ctx.image()
        if latest is None:
            return steps.Outcome.skipped("no image to point the catalog at yet")
        value = manifests.reference(latest.reference, latest.digest, catalog.pin)
        fingerprint = _fingerprint(catalog, value)
        previous = status_.CatalogStatus.of(ctx.status)
        requested = ctx.annotations.get(api_identity.RECONCILE_REQUEST_ANNOTATION)
        unchanged = previous.fingerprint == fingerprint and requested == self.checks.request
        if unchanged and not await self._moved(ctx, catalog):
            return await self._finish(ctx, catalog, previous)
        queued = self.checks.queued
        if queued is None or (queued.fingerprint, queued.request) != (fingerprint, requested):
            if queued is not None:  # superseded (a new image, new settings): taken back
                queued.ticket.withdraw()
                self.checks.queued = None
            queued = await self._enqueue(
                ctx, catalog=catalog, latest=latest, value=value, fingerprint=fingerprint,
                requested=requested,
            )  # fmt: skip
        edit = queued.edit
        try:
            async with self.services.reconcile_slots.lent():  # while it waits for its push
                result = await queued.ticket.wait()
        except repository.CatalogPushRejected:
            raise  # still queued, retried by the writer: the next reconcile waits for it again
        except repository.Withdrawn:
            self.checks.queued = None  # taken back meanwhile (the object is being deleted)
            raise
        except asyncio.CancelledError:
            queued.ticket.withdraw()
            self.checks.queued = None
            raise
        except BaseException:
            self.checks.queued = None
            raise
        self.checks.queued = None
        self.checks.request = requested
        self.checks.checked = result.commit
        self.checks.polled = time.monotonic()  # the head as of the push: as good as a look
        if edit.unmatched and not edit.matched:
            raise ManifestNotFound(edit.unmatched)
        recorded = record(
            previous,
            result,
            written=edit.written(),
            files=[state.to_status() for _, state in sorted(edit.states.items())],
            valid=not edit.invalid,
            value=value,
            fingerprint=fingerprint,
            now=ctx.now,
        )
        ctx.updates["catalog"] = recorded.to_status()
        if result.changed:
            ctx.events.append(committed(result, value))
        if edit.invalid:
            raise errors.TransientError(
                "ManifestInvalid",
                "left alone (fix them in the catalog): " + "; ".join(edit.invalid),
                retry_after=RETRY_INVALID_SECONDS,
            )
        if edit.unmatched:
            raise ManifestNotFound(edit.unmatched)
        if edit.blocked() is not None:
            return outcome(recorded, catalog)
        return await self._finish(ctx, catalog, recorded)

    async def _finish(
        self, ctx: steps.Context, catalog: model.Catalog, recorded: status_.CatalogStatus
    ) -> steps.Outcome:
        """The catalog as written: with a pull request, as it says (`pulls.follow`); then, once
        the catalog's branch has the change, have ADE sync it."""
        settled = outcome(recorded, catalog)
        if catalog.pull_request is not None:
            settled = await pulls.follow(
                self.services, self.memory, ctx, catalog=catalog, recorded=recorded, settled=settled
            )
            if settled.kind is not steps.Kind.DONE:
                return settled
            recorded = (
                status_.CatalogStatus.of({"catalog": ctx.updates.get("catalog")})
                if ctx.updates.get("catalog")
                else recorded
            )
        await self._sync(ctx, catalog, recorded)
        return settled

    async def _enqueue(
        self,
        ctx: steps.Context,
        *,
        catalog: model.Catalog,
        latest: status_.LatestImage,
        value: str,
        fingerprint: str,
        requested: str | None,
    ) -> Queued:
        """Hand the change to the operator-wide writer; remembered until it is settled. Settled
        while no reconcile waits for it (a round of lost races ended the last one), it wakes the
        object, so the result is recorded at once."""
        previous = status_.CatalogStatus.of(ctx.status)
        credentials = await self._credentials(ctx, catalog)
        signing_key = await secrets.signing_key_at(
            self.services.kube,
            namespace=ctx.namespace,
            ref=None if catalog.signing is None else catalog.signing.secret_ref,
            field="spec.catalog.signing.secretRef",
        )
        writer = self.services.catalog
        if writer is None:
            raise errors.StalledError("CatalogUnavailable", "the operator has no catalog writer")
        me = f"{ctx.namespace}/{ctx.name}"
        edit = claims.CatalogEdit(
            catalog=catalog,
            value=value,
            mine=ownership.repository_of(value) or "",
            others=self.services.owners.others(me),
            records=claims.records_from_status(previous.files),
        )
        change = repository.Change(
            url=catalog.git.url,
            branch=catalog.git.branch,
            push_branch=catalog.push_branch,
            credentials=credentials,
            signing=signing_key,
            author_name=catalog.commit.author_name,
            author_email=catalog.commit.author_email,
            message=lambda files: _message(ctx, catalog, latest, files),
            apply=edit,
            depends_on=edit.depends_on,
            submitter=me,
        )
        queued = self.checks.queued = Queued(fingerprint, requested, edit, writer.enqueue(change))
        waker, checks = self.services.waker, self.checks
        namespace, name = ctx.namespace, ctx.name

        def settled() -> None:
            if waker is not None and checks.queued is queued and not queued.ticket.waited:
                waker.catalog_written(namespace, name, queued.ticket.commit())

        queued.ticket.add_done_callback(settled)
        return queued

    async def _moved(self, ctx: steps.Context, catalog: model.Catalog) -> bool:
        """Whether the branch moved since the files were last read, looked at every
        `spec.catalog.interval` (`git ls-remote`). A head that cannot be read leaves the last
        check standing (logged)."""
        interval = durations.parse(catalog.interval) if catalog.interval else DEFAULT_INTERVAL
        if not self.memory.due(self.checks.polled, interval, generation=ctx.generation):
            return False
        self.checks.polled = time.monotonic()
        try:
            head = await git_.ls_remote(
                url=catalog.git.url,
                ref=catalog.git.branch,
                credentials=await self._credentials(ctx, catalog),
            )
        except errors.ReconcileError as error:
            logger.warning("cannot check the head of the catalog: %s", error)
            return False
        return head != self.checks.checked

    async def _sync(
        self, ctx: steps.Context, catalog: model.Catalog, recorded: status_.CatalogStatus
    ) -> status_.CatalogStatus:
        """With `spec.catalog.sync`, have ADE sync the catalog once per pushed revision, so the
        new runner takes effect without waiting for ADE's scheduled sync. A failed sync is
        retried (the commit stays) until `status.catalog.syncedRevision` catches up."""
        target, revision = catalog.sync, recorded.revision
        if target is None or not revision or recorded.synced_revision == revision:
            return recorded
        azure = self.services.azure
        if azure is None:
            raise errors.StalledError(
                "AzureUnavailable", "the operator was started without Azure management clients"
            )
        client_secret = await secrets.azure_client_secret(
            self.services.kube,
            namespace=ctx.namespace,
            ref=target.credentials_secret_ref,
            field="spec.catalog.sync.credentialsSecretRef",
        )
        clients = await azure.get(
            subscription_id=target.subscription_id, client_secret=client_secret
        )
        await azure_access.sync_catalog(clients=clients, target=target)
        synced = dataclasses.replace(
            recorded, synced_revision=revision, synced_at=status_.timestamp(ctx.now)
        )
        ctx.updates["catalog"] = synced.to_status()
        return synced

    async def _credentials(
        self, ctx: steps.Context, catalog: model.Catalog
    ) -> git_credentials.Credentials | None:
        return await secrets.git_credentials_at(
            self.services.kube,
            namespace=ctx.namespace,
            ref=catalog.git.secret_ref,
            field="spec.catalog.git.secretRef",
        )


def expect(
    writer: repository.CatalogWriter | None,
    *,
    who: str,
    spec: Mapping[str, Any],
    conditions_: Sequence[Mapping[str, Any]],
) -> None:
    """Tell the catalog writer whether `who` (`namespace/name`) is coming to its catalog: a
    RunnerImage with a catalog whose reconcile left a build queued or running (`Built` Unknown)
    will submit a change once the build is verified, and a batch on that catalog waits for it
    (within its windows) rather than leave without it. Anything else: not coming."""
    if writer is None:
        return
    built = conditions_find(conditions_, conditions.BUILT)
    catalog = _catalog_of(spec) if built and built.get("status") == "Unknown" else None
    if catalog is None:
        writer.unexpect(who)
    else:
        _coming(writer, who, catalog)


def expect_while_building(
    writer: repository.CatalogWriter | None, *, who: str, spec: model.RunnerImageSpec
) -> None:
    """`expect`, said by a reconcile that waits for the build it started (before it tells its
    conditions): the batch waits for its change, the branch is fetched while it builds."""
    if writer is not None and spec.catalog is not None:
        _coming(writer, who, spec.catalog)


def _coming(writer: repository.CatalogWriter, who: str, catalog: model.Catalog) -> None:
    writer.expect(
        who, url=catalog.git.url, branch=catalog.git.branch, push_branch=catalog.push_branch
    )


def _catalog_of(spec: Mapping[str, Any]) -> model.Catalog | None:
    try:
        return model.parse(spec).catalog
    except errors.StalledError:
        return None


def withdraw(memory: memory_.ObjectMemory) -> None:
    """Take back the catalog change still queued for a RunnerImage (deleted: nothing more is
    written for it)."""
    checks = memory.part(CatalogChecks)
    if checks.queued is not None:
        checks.queued.ticket.withdraw()
        checks.queued = None


def _fingerprint(catalog: model.Catalog, value: str) -> str:
    material = {
        "value": value,
        "url": catalog.git.url,
        "branch": catalog.git.branch,
        "pushBranch": catalog.push_branch,
        "manifests": list(catalog.manifests),
        "field": catalog.field,
        "adopt": list(catalog.adopt),
        "onHumanEdit": catalog.on_human_edit.value,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _message(
    ctx: steps.Context,
    catalog: model.Catalog,
    latest: status_.LatestImage,
    files: Sequence[str],
) -> str:
    values = {
        "image": latest.reference,
        "digest": latest.digest,
        "reason": latest.reason,
        "files": ", ".join(files),
        "name": ctx.name,
        "namespace": ctx.namespace,
    }
    return errors.redact(catalog.commit.message_template.format_map(values))


def record(
    previous: status_.CatalogStatus,
    result: repository.Result,
    *,
    written: Sequence[str],
    files: Sequence[Mapping[str, Any]],
    valid: bool,
    value: str,
    fingerprint: str,
    now: datetime.datetime,
) -> status_.CatalogStatus:
    """`status.catalog` after the writer settled `edit`: a commit moves the revision, the
    changed files and the push time; a check that changed nothing keeps them. `written`: the
    files that point at `value`; `files`: every selected file's state. A catalog with invalid
    files (not `valid`) keeps no fingerprint, so the next pass reads it again."""
    return dataclasses.replace(
        previous,
        revision=result.commit if result.changed or not previous.revision else previous.revision,
        ref=result.ref,
        image=value,
        manifests=tuple(written),
        changed=result.files if result.changed else previous.changed,
        files=tuple(files),
        pushed_at=status_.timestamp(result.settled_at or now)
        if result.changed
        else previous.pushed_at,
        fingerprint=fingerprint if valid else None,
    )


def committed(result: repository.Result, value: str) -> events_.Event:
    """The Event of a commit that changed files."""
    return events_.Event(
        "Normal",
        "CatalogCommitted",
        f"{', '.join(result.files)} now point at {value}"
        f" (commit {result.commit[:12]} on {result.ref})",
    )


def outcome(recorded: status_.CatalogStatus, catalog: model.Catalog) -> steps.Outcome:
    """Synced, or blocked as the last check found (a conflict, a pin by hand)."""
    blocked = claims.blocked(claims.states_from_status(recorded.files), field=catalog.field)
    if blocked:
        return steps.Outcome.blocked(*blocked)
    revision = (recorded.revision or "")[:12]
    return steps.Outcome.done(
        "Synced",
        f"{len(recorded.manifests)} manifest(s) point at {recorded.image} (commit {revision})",
    )
