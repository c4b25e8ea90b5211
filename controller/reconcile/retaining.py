"""Step 7, retention (`spec.retention`): delete the images this RunnerImage pushed that the
policy no longer keeps, once the catalog points at the latest one.

At most once per `spec.retention.interval` (and at once for a new generation, a new latest image
or a manual trigger): the repository is listed (`controller.retention.inventory`), the catalog's
files are read at its branch's head and at the push branch's (whatever names an image there, by
tag or digest, is kept: an environment definition, an open pull request), and `policy.decide`
says what goes. An image's age counts from when the operator first saw it in the repository
(`status.retention.seen`: its own push, or the first pass after it appeared), never from the
image's `created`, which reproducible builds set to the commit's time: what cannot be dated is
not deleted early. Only images whose `runners.ade.dev/runner-image` label names this
RunnerImage are ever deleted, by digest; never the latest, never the build cache (another
repository). With `dryRun`, `status.retention.wouldDelete` lists them instead. A registry that
refuses deletion (turned off, no delete permission, a lock) is reported (`DeletionRefused`, a
Warning Event) and asked again only at the next pass. Retention never holds Ready back: its
condition says how the last pass went.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import pathlib
import shutil
import tempfile
import time
from typing import Any, Literal

from controller import durations
from controller.api import conditions
from controller.api import identity as api_identity
from controller.api import spec as model
from controller.observe import events as events_
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps
from controller.reconcile import services as services_
from controller.registry import client as registry_client
from controller.registry import reference
from controller.retention import inventory, policy, references
from controller.signatures import referrers
from controller.sources import git

logger = logging.getLogger(__name__)

WOULD_DELETE_SHOWN = 50
GIT_TIMEOUT = 120.0
MAX_FILE = 1 << 20
TEXT_SUFFIXES = (".yaml", ".yml", ".json")


@dataclasses.dataclass
class RetentionMemory:
    checked: float | None = None
    outcome: steps.Outcome | None = None
    known: dict[str, inventory.Made] = dataclasses.field(default_factory=dict)
    handled_request: str | None = None
    generation: int | None = None
    """The generation the last pass was for (a new one passes at once)."""


@dataclasses.dataclass(frozen=True)
class ApplyRetention:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.IMAGES_RETAINED

    @property
    def part(self) -> RetentionMemory:
        return self.memory.part(RetentionMemory)

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        retention = ctx.spec.retention
        if retention is None:
            ctx.updates["retention"] = None
            return steps.Outcome.skipped("spec.retention is not set")
        latest = ctx.image()
        if latest is None or not latest.digest:
            return steps.Outcome.done("NothingBuilt", "no image pushed yet")
        part = self.part
        requested = ctx.annotations.get(api_identity.RECONCILE_REQUEST_ANNOTATION)
        fresh_request = bool(requested) and requested != part.handled_request
        interval = durations.parse(retention.interval)
        seen = (ctx.status.get("retention") or {}).get("seen") or {}
        if (
            part.outcome is not None
            and not fresh_request
            and latest.digest in seen
            and part.generation == ctx.generation
            and part.checked is not None
            and time.monotonic() - part.checked < interval
        ):
            return part.outcome
        part.handled_request, part.generation = requested, ctx.generation
        outcome = await self._pass(ctx, retention, latest.digest)
        part.checked, part.outcome = time.monotonic(), outcome
        return outcome

    async def _pass(
        self, ctx: steps.Context, retention: model.Retention, latest: str
    ) -> steps.Outcome:
        spec = ctx.spec
        repository = f"{spec.image.registry}/{spec.image.repository}"
        owner = f"{ctx.namespace}/{ctx.name}"
        config = await secrets.push_config(self.services.kube, ctx)
        client = self.services.registry.client(config)
        try:
            found = await inventory.images(client, repository, self.part.known)
            tags, digests = await self._referenced(ctx, repository)
            before = dict((ctx.status.get("retention") or {}).get("seen") or {})
            stamp = ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ")
            seen = {i.digest: before.get(i.digest, stamp) for i in found if i.owner == owner}
            dated = [
                dataclasses.replace(i, created=_time(seen[i.digest]), made=i.created)
                if i.digest in seen
                else i
                for i in found
            ]
            decision = policy.decide(
                dated,
                owner=owner,
                latest=latest,
                referenced_digests=digests,
                referenced_tags=tags,
                keep_last=retention.keep_last,
                keep_for=datetime.timedelta(seconds=durations.parse(retention.keep_for)),
                now=ctx.now,
            )
            summary: dict[str, Any] = {
                "images": len(decision.kept) + len(decision.delete),
                "kept": len(decision.kept),
                "foreign": decision.foreign,
                "deleted": 0,
                "wouldDelete": None,
                "message": None,
                "seen": {**dict.fromkeys(before), **seen},  # None: no longer there
            }
            if retention.dry_run:
                shown = [_named(repository, image) for image in decision.delete]
                summary["wouldDelete"] = shown[:WOULD_DELETE_SHOWN] or None
                message = (
                    f"dry run: {len(decision.delete)} of {summary['images']} image(s) would be "
                    f"deleted, {len(decision.kept)} kept"
                )
                ctx.updates["retention"] = summary
                if decision.delete:
                    self._event(ctx, "Normal", "RetentionDryRun", message)
                return steps.Outcome.done("DryRun", message)
            deleted, refused = await self._delete(client, repository, decision.delete)
            for digest in deleted:
                summary["seen"][digest] = None
        except registry_client.RegistryError as error:
            raise registry_client.as_reconcile_error(
                error, auth_reason="RegistryAuthFailed"
            ) from None
        finally:
            await client.aclose()
        summary["deleted"] = len(deleted)
        summary["kept"] = len(decision.kept) + len(decision.delete) - len(deleted)
        if refused is not None:
            left = len(decision.delete) - len(deleted)
            message = f"kept {left} image(s) the policy would delete: {refused}"
            summary["message"] = message
            ctx.updates["retention"] = summary
            self._event(ctx, "Warning", "DeletionRefused", message)
            return steps.Outcome.done("DeletionRefused", message)
        message = f"{summary['kept']} image(s) kept, {deleted} deleted" + (
            f", {decision.foreign} not pushed by this RunnerImage" if decision.foreign else ""
        )
        ctx.updates["retention"] = summary
        if deleted:
            self._event(ctx, "Normal", "ImagesDeleted", message)
        return steps.Outcome.done("Pruned" if deleted else "NothingToPrune", message)

    async def _delete(
        self,
        client: registry_client.RegistryClient,
        repository: str,
        images: tuple[policy.Image, ...],
    ) -> tuple[list[str], str | None]:
        """Delete `images` in order; the digests gone, and why the registry stopped it if it
        did (the rest are kept until the next pass)."""
        deleted = []
        for image in images:
            try:
                if await client.delete_manifest(ref=f"{repository}@{image.digest}"):
                    logger.info("deleted %s (tags %s)", _named(repository, image), image.tags)
                deleted.append(image.digest)  # gone either way (404: already)
                await _delete_referrers(client, f"{repository}@{image.digest}")
            except registry_client.DeletionRefused as refused:
                return deleted, str(refused)
        return deleted, None

    async def _referenced(self, ctx: steps.Context, repository: str) -> tuple[set[str], set[str]]:
        """Tags and digests of `repository` any file of the catalog names, at its branch's head
        and at the push branch's (absent: nothing)."""
        catalog = ctx.spec.catalog
        if catalog is None:
            return set(), set()
        ref = reference.parse(repository)
        credentials = await secrets.git_credentials_at(
            self.services.kube,
            namespace=ctx.namespace,
            ref=catalog.git.secret_ref,
            field="spec.catalog.git.secretRef",
        )
        tags: set[str] = set()
        digests: set[str] = set()
        branches = [catalog.git.branch, *([catalog.push_branch] if catalog.push_branch else [])]
        for branch in branches:
            try:
                revision = await git.ls_remote(
                    url=catalog.git.url, ref=branch, credentials=credentials, timeout=GIT_TIMEOUT
                )
            except git.GitRefNotFound:
                if branch == catalog.git.branch:
                    raise
                continue  # no push branch yet: nothing proposed
            folder = pathlib.Path(tempfile.mkdtemp(prefix="ade-retention-"))
            try:
                await git.fetch_tree(
                    url=catalog.git.url,
                    revision=revision,
                    path=".",
                    dest=folder / "tree",
                    credentials=credentials,
                    timeout=GIT_TIMEOUT,
                )
                found = references.find_all(
                    _texts(folder / "tree"), registry=ref.registry, repository=ref.repository
                )
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            tags |= found[0]
            digests |= found[1]
        return tags, digests

    @staticmethod
    def _event(
        ctx: steps.Context, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        ctx.events.append(events_.Event(kind, reason, f"spec.retention: {message}"[:1000]))


def _texts(folder: pathlib.Path) -> list[str]:
    """The text of every YAML and JSON file under `folder` (larger ones than `MAX_FILE` too:
    only their first MiB is read)."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix.lower() in TEXT_SUFFIXES:
            with path.open("rb") as handle:
                found.append(handle.read(MAX_FILE).decode("utf-8", "replace"))
    return found


def _time(text: str) -> datetime.datetime | None:
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


def _named(repository: str, image: policy.Image) -> str:
    tag = f":{image.tags[0]}" if image.tags else ""
    return f"{repository}{tag}@{image.digest}"


async def _delete_referrers(client: registry_client.RegistryClient, image: str) -> None:
    """Delete what referred to a deleted image (its signatures, their referrers tag index):
    nothing else can name them. A failure is logged, not fatal: they are only dangling."""
    try:
        gone = await referrers.delete_referrers(client, image=registry_client.as_reference(image))
    except registry_client.RegistryError as error:
        logger.warning("could not delete the referrers of %s: %s", image, error)
        return
    if gone:
        logger.info("deleted %d referrer(s) of %s", gone, image)
