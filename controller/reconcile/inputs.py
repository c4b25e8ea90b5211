"""Step 2, resolve inputs: the source revision, the build context, the base image digest, the key.

For a git source the revision is the commit of `ref` (`git ls-remote`), polled at most once per
`spec.triggers.source.interval`; for an inline source it is a content hash. The context is
materialized once per revision in the work folder. The base image is the final stage's `FROM`
(BuildKit's parser, `ARG`s applied), its digest read from the registry at most once per
`spec.triggers.baseImage.interval`. A spec change or a manual trigger polls both at once.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import time
from typing import Any

from controller import durations, errors
from controller.api import conditions
from controller.api import identity as api_identity
from controller.api import spec as model
from controller.builds import dockerfile, identity
from controller.conformance import lint
from controller.git import credentials as git_credentials
from controller.observe import events as events_
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps
from controller.reconcile import services as services_
from controller.registry import reference
from controller.sources import git

WARNINGS_REASON = "DockerfileWarnings"
GIT_TIMEOUT = 120.0
DEFAULT_SOURCE_INTERVAL = 300.0
DEFAULT_BASE_INTERVAL = 3600.0


@dataclasses.dataclass
class SourcePolls:
    """The inputs step's memory: when the source and the base image were last polled."""

    source_checked: float | None = None
    base_checked: float | None = None
    handled_request: str | None = None
    """The manual-trigger annotation value last acted on (a new one polls both at once)."""
    warnings: list[dict[str, Any]] | None = None
    """The Dockerfile warnings last reported (their Event is posted once)."""


@dataclasses.dataclass(frozen=True)
class ResolveInputs:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.INPUTS_RESOLVED

    @property
    def polls(self) -> SourcePolls:
        return self.memory.part(SourcePolls)

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        spec = ctx.spec
        self.services.owners.check(
            registry=spec.image.registry,
            repository=spec.image.repository,
            me=f"{ctx.namespace}/{ctx.name}",
        )
        requested = ctx.annotations.get(api_identity.RECONCILE_REQUEST_ANNOTATION)
        if requested and requested != self.polls.handled_request:
            self.polls.source_checked = self.polls.base_checked = None
            self.polls.handled_request = requested
        revision = await self._revision(ctx)
        folder, epoch = await self._context(ctx, revision)
        path = folder / spec.dockerfile
        if not path.is_file():
            raise errors.StalledError(
                "DockerfileNotFound",
                f"spec.dockerfile: {spec.dockerfile!r} does not exist in the source "
                f"at revision {identity.short_revision(revision)}",
            )
        text = path.read_text(errors="replace")
        base = dockerfile.final_base_image(
            text, build_args=spec.build_args, target=spec.target, platforms=spec.platforms
        )
        _check_reference(base, spec)
        _report_warnings(ctx, self.polls, text, base.reference)
        digest = await self._base_digest(ctx, base)
        inputs = identity.Inputs(revision=revision, base_image=base.reference, base_digest=digest)
        key = identity.build_key(spec, inputs)
        self.memory.checked_generation = ctx.generation
        ctx.inputs = steps.ResolvedInputs(
            inputs=inputs,
            key=key,
            material=inputs.key_material(spec),
            context_dir=folder,
            source_date_epoch=epoch,
        )
        ctx.updates.update(
            {
                "sourceRevision": revision,
                "baseImage": base.reference,
                "baseImageDigest": digest,
                "buildKey": key,
            }
        )
        base_text = "scratch" if base.reference is None else f"{base.reference}@{digest}"
        return steps.Outcome.done(
            "Resolved", f"revision {identity.short_revision(revision)}, base {base_text}"
        )

    async def _revision(self, ctx: steps.Context) -> str:
        spec = ctx.spec
        if spec.source.inline is not None:
            return identity.inline_revision(spec)
        assert spec.source.git is not None
        previous = ctx.status.get("sourceRevision")
        interval = _interval(spec.triggers.source, DEFAULT_SOURCE_INTERVAL)
        if previous and not self.memory.due(
            self.polls.source_checked, interval, generation=ctx.generation
        ):
            return str(previous)
        credentials = await _git_credentials(self.services, ctx)
        revision = await git.ls_remote(
            url=spec.source.git.url,
            ref=spec.source.git.ref,
            credentials=credentials,
            timeout=GIT_TIMEOUT,
        )
        self.polls.source_checked = time.monotonic()
        return revision

    async def _context(self, ctx: steps.Context, revision: str) -> tuple[pathlib.Path, int]:
        """The build context of `revision` (fetched once) and its time for reproducible builds
        (the commit's; 0 for an inline source), which the `.complete` marker beside it holds."""
        folder = self.services.workdir / "sources" / ctx.namespace / ctx.name / revision
        complete = folder.with_name(folder.name + ".complete")  # beside, not in, the context
        if complete.exists() and folder.is_dir():
            return folder, _epoch(complete.read_text())
        epoch = 0
        scratch = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        spec = ctx.spec
        if spec.source.inline is not None:
            (scratch / "Dockerfile").write_text(spec.source.inline.dockerfile)
            (scratch / "scripts").mkdir()
            for name, content in spec.source.inline.scripts.items():
                script = scratch / "scripts" / name
                script.write_text(content)
                script.chmod(0o755)
        else:
            assert spec.source.git is not None
            credentials = await _git_credentials(self.services, ctx)
            epoch = await git.fetch_tree(
                url=spec.source.git.url,
                revision=revision,
                path=spec.source.git.path,
                dest=scratch,
                credentials=credentials,
                timeout=GIT_TIMEOUT,
            )
        # Keep only the current revision of this object's sources.
        for old in folder.parent.glob("*"):
            if old != scratch:
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
        scratch.rename(folder)
        complete.write_text(str(epoch))
        return folder, epoch

    async def _base_digest(
        self,
        ctx: steps.Context,
        base: dockerfile.BaseImage,
    ) -> str | None:
        if base.reference is None:
            return None
        previous = ctx.status.get("baseImageDigest")
        interval = _interval(ctx.spec.triggers.base_image, DEFAULT_BASE_INTERVAL)
        if previous and not self.memory.due(
            self.polls.base_checked, interval, generation=ctx.generation
        ):
            return str(previous)
        config = await secrets.push_config(self.services.kube, ctx)
        digest = await self.services.registry.resolve(
            base.reference,
            docker_config=config,
            auth_reason="BaseImageAuthFailed",
            not_found=errors.StalledError(
                "BaseImageNotFound",
                f"the base image {base.reference} (Dockerfile line {base.line}) does not exist",
            ),
        )
        self.polls.base_checked = time.monotonic()
        return digest


def _epoch(text: str) -> int:
    """The time a `.complete` marker holds (an older, empty marker: 0)."""
    try:
        return max(0, int(text.strip() or 0))
    except ValueError:
        return 0


def _interval(trigger: model.Trigger, default: float) -> float | None:
    """Seconds between polls; None when the trigger is off (then only a change polls)."""
    if not trigger.enabled:
        return None
    return durations.parse(trigger.interval) if trigger.interval else default


def _check_reference(base: dockerfile.BaseImage, spec: model.RunnerImageSpec) -> None:
    """Refuse (`Stalled`, naming the field) a base image that is not an image reference, before
    any registry is asked: a user must fix the Dockerfile or the build arguments."""
    if base.reference is None:
        return
    try:
        reference.parse(base.reference)
    except reference.InvalidReference as error:
        applied = " (with spec.buildArgs applied)" if spec.build_args else ""
        raise dockerfile.DockerfileError(
            f"line {base.line}: the base image{applied} is not an image reference: {error}"
        ) from None


def _report_warnings(
    ctx: steps.Context, memory: SourcePolls, text: str, base_reference: str | None
) -> None:
    """Lint the Dockerfile for known ADE breakages: `status.warnings`, and an Event when they
    change (never on every pass: memory covers a reconcile that read the object before the last
    status write landed). Warnings do not stop the build."""
    try:
        found = lint.lint(
            text,
            build_args=ctx.spec.build_args,
            base_reference=base_reference,
            target=ctx.spec.target,
        )
    except dockerfile.DockerfileError:
        return  # the build reports a Dockerfile that does not parse
    warnings = [lint.as_status(warning) for warning in found]
    ctx.updates["warnings"] = warnings or None
    seen = [list(ctx.status.get("warnings") or []), memory.warnings]
    memory.warnings = warnings
    if warnings and warnings not in seen:
        listed = "; ".join(f"line {w['line']}: {w['message']} ({w['rule']})" for w in warnings)
        ctx.events.append(
            events_.Event("Warning", WARNINGS_REASON, f"spec.dockerfile: {listed}"[:1000])
        )


async def _git_credentials(
    services: services_.Services, ctx: steps.Context
) -> git_credentials.Credentials | None:
    git_ = ctx.spec.source.git
    return await secrets.git_credentials_at(
        services.kube,
        namespace=ctx.namespace,
        ref=None if git_ is None else git_.secret_ref,
        field="spec.source.git.secretRef",
    )
