"""Step 6, write back: point the catalog's environment definitions at the verified image.

The edit (set `spec.catalog.field` in every manifest the globs select, pinned by tag or digest)
is handed to the operator-wide catalog writer, which batches every change to one repository into
one commit and push, retries rejected pushes in-process, and never force-pushes the base branch.
A manifest that is not valid YAML, or not an ADE manifest, is left alone and reported by path
while the others proceed. Once the catalog points at an image the step does no git I/O again
until the image or the catalog settings change (or a manual trigger asks). With
`spec.catalog.sync`, ADE is then asked to sync the catalog once per pushed revision.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Mapping
from typing import Any

from controller import errors
from controller.api import conditions
from controller.api import identity as api_identity
from controller.api import spec as model
from controller.azure import access as azure_access
from controller.catalog import manifests, repository, select
from controller.reconcile import services as services_
from controller.reconcile import steps
from controller.sources import credentials as git_credentials

RETRY_INVALID_SECONDS = 300.0


class ManifestNotFound(errors.StalledError):
    def __init__(self, globs: tuple[str, ...]) -> None:
        listed = ", ".join(globs)
        super().__init__("ManifestNotFound", f"spec.catalog.manifests: nothing matches {listed}")


@dataclasses.dataclass
class _Report:
    """What the edit callback found, beyond the files it changed."""

    matched: list[str] = dataclasses.field(default_factory=list)
    invalid: list[str] = dataclasses.field(default_factory=list)
    unmatched: tuple[str, ...] = ()
    selected: frozenset[str] = frozenset()
    """Every file the edit read (the selection, invalid ones included)."""


@dataclasses.dataclass(frozen=True)
class WriteCatalog:
    services: services_.Services
    memory: services_.ObjectMemory
    condition: str = conditions.CATALOG_SYNCED

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        catalog = ctx.spec.catalog
        if catalog is None:
            return steps.Outcome.skipped("no catalog in the spec")
        latest: Mapping[str, Any] = (
            ctx.updates.get("latestImage") or ctx.status.get("latestImage") or {}
        )
        value = manifests.reference(str(latest["reference"]), str(latest["digest"]), catalog.pin)
        fingerprint = _fingerprint(catalog, value)
        previous: Mapping[str, Any] = ctx.status.get("catalog") or {}
        requested = ctx.annotations.get(api_identity.RECONCILE_REQUEST_ANNOTATION)
        if previous.get("fingerprint") == fingerprint and requested == self.memory.catalog_request:
            await self._sync(ctx, catalog, previous)
            return steps.Outcome.done("Synced", _summary(previous))
        writer = self.services.catalog
        if writer is None:
            raise errors.StalledError("CatalogUnavailable", "the operator has no catalog writer")
        report = _Report()
        change = repository.Change(
            url=catalog.git.url,
            branch=catalog.git.branch,
            push_branch=catalog.push_branch,
            credentials=await self._credentials(ctx, catalog),
            author_name=catalog.commit.author_name,
            author_email=catalog.commit.author_email,
            message=_message(ctx, catalog, latest),
            apply=lambda worktree: _edit(worktree, catalog, value, report),
            depends_on=lambda path: select.could_change(catalog.manifests, report.selected, path),
        )
        async with self.services.reconcile_slots.lent():  # while it waits for its batch's push
            result = await writer.submit(change)
        self.memory.catalog_request = requested
        if report.unmatched and not report.matched:
            raise ManifestNotFound(report.unmatched)
        files = sorted(report.matched)
        ctx.updates["catalog"] = {
            "revision": result.commit,
            "ref": result.ref,
            "image": value,
            "manifests": files,
            "pushedAt": (result.settled_at or ctx.now).strftime("%Y-%m-%dT%H:%M:%SZ")
            if result.changed
            else previous.get("pushedAt"),
            "fingerprint": fingerprint if not report.invalid else None,
            "syncedRevision": previous.get("syncedRevision"),
            "syncedAt": previous.get("syncedAt"),
        }
        if report.invalid:
            raise errors.TransientError(
                "ManifestInvalid",
                "left alone (fix them in the catalog): " + "; ".join(report.invalid),
                retry_after=RETRY_INVALID_SECONDS,
            )
        if report.unmatched:
            raise ManifestNotFound(report.unmatched)
        await self._sync(ctx, catalog, ctx.updates["catalog"])
        return steps.Outcome.done("Synced", _summary(ctx.updates["catalog"]))

    async def _sync(
        self, ctx: steps.Context, catalog: model.Catalog, recorded: Mapping[str, Any]
    ) -> None:
        """With `spec.catalog.sync`, have ADE sync the catalog once per pushed revision, so the
        new runner takes effect without waiting for ADE's scheduled sync. A failed sync is
        retried (the commit stays) until `status.catalog.syncedRevision` catches up."""
        target, revision = catalog.sync, recorded.get("revision")
        if target is None or not revision or recorded.get("syncedRevision") == revision:
            return
        azure = self.services.azure
        if azure is None:
            raise errors.StalledError(
                "AzureUnavailable", "the operator was started without Azure management clients"
            )
        client_secret = await services_.azure_client_secret(
            self.services,
            namespace=ctx.namespace,
            ref=target.credentials_secret_ref,
            field="spec.catalog.sync.credentialsSecretRef",
        )
        clients = await azure.get(
            subscription_id=target.subscription_id, client_secret=client_secret
        )
        await azure_access.sync_catalog(clients=clients, target=target)
        ctx.updates["catalog"] = {
            **recorded,
            "syncedRevision": revision,
            "syncedAt": ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    async def _credentials(
        self, ctx: steps.Context, catalog: model.Catalog
    ) -> git_credentials.Credentials | None:
        if catalog.git.secret_ref is None:
            return None
        secret = await services_.read_secret(
            self.services,
            namespace=ctx.namespace,
            name=catalog.git.secret_ref.name,
            field="spec.catalog.git.secretRef",
        )
        return git_credentials.credentials_from_secret(secret.data, secret=secret.name)


def _edit(worktree: pathlib.Path, catalog: model.Catalog, value: str, report: _Report) -> list[str]:
    """The edit the writer applies (again, on a new head, when a push was rejected)."""
    chosen = select.select(worktree, catalog.manifests)
    report.matched, report.invalid, report.unmatched = list(chosen.files), [], chosen.unmatched
    report.selected = frozenset(chosen.files)
    report.invalid.extend(f"{r.path}: {r.reason}" for r in chosen.refused)
    changed = []
    for relative in chosen.files:
        path = worktree / relative
        try:
            text = manifests.decode(path.read_bytes(), path=relative)
            edit = manifests.set_field(text, field=catalog.field, value=value, path=relative)
        except manifests.ManifestInvalid as error:
            report.invalid.append(error.message)
            report.matched.remove(relative)
            continue
        if edit.changed:
            path.write_bytes(manifests.encode(edit.text))
            changed.append(relative)
    return changed


def _fingerprint(catalog: model.Catalog, value: str) -> str:
    material = {
        "value": value,
        "url": catalog.git.url,
        "branch": catalog.git.branch,
        "pushBranch": catalog.push_branch,
        "manifests": list(catalog.manifests),
        "field": catalog.field,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _message(ctx: steps.Context, catalog: model.Catalog, latest: Mapping[str, Any]) -> str:
    values = {
        "image": latest.get("reference", ""),
        "digest": latest.get("digest", ""),
        "reason": latest.get("reason", ""),
        "files": ", ".join(catalog.manifests),
        "name": ctx.name,
        "namespace": ctx.namespace,
    }
    return errors.redact(catalog.commit.message_template.format_map(values))


def _summary(catalog: Mapping[str, Any]) -> str:
    files = catalog.get("manifests") or []
    revision = str(catalog.get("revision", ""))[:12]
    return f"{len(files)} manifest(s) point at {catalog.get('image')} (commit {revision})"
