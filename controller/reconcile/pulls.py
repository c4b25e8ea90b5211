"""The end of the write-back with `spec.catalog.pullRequest`: the pull request that carries the
push branch into the catalog's branch, and what it means for Ready.

After the write step pushed to `spec.catalog.pushBranch` (or found the branch already right),
`follow` makes sure one pull request from that branch into the base branch carries the commit:
it finds the one recorded in `status.catalog.pullRequest`, else the open one from that branch
(another RunnerImage sharing the branch may have opened it), else opens one; it rewrites the
title and body only when what the pull request holds changed (`pulls.describe`). Then:

| the pull request                        | CatalogSynced / Ready                           |
| --------------------------------------- | ----------------------------------------------- |
| open                                    | False, `PullRequestOpen` (not Stalled), its URL |
| merged with the commit                  | True                                            |
| closed without merging the commit       | Stalled `PullRequestClosed`, its URL            |
| none needed (the base has every commit) | True                                            |

A new image (a new commit on the branch) after a merge or a close opens a new pull request. The
host is asked at most once per `spec.catalog.pullRequest.interval` (1m) for the same commit (each
resync otherwise answers from status), so an open pull request costs one API call a minute (its
text is read again only when its head moved) and no status write until it changes.
"""

from __future__ import annotations

import dataclasses
import time

from controller import durations, errors
from controller.api import spec as model
from controller.api import status as status_
from controller.hosting import hosts, pulls
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps
from controller.reconcile import services as services_

LOOK_INTERVAL = 60.0
"""How often an open pull request is looked at by default (`spec.catalog.pullRequest.interval`;
a new commit is looked at at once)."""


@dataclasses.dataclass
class PullChecks:
    """The pull request step's memory: when it last asked the host, for which commit."""

    polled: float | None = None
    revision: str | None = None
    described: tuple[int, str] | None = None
    """The pull request and head whose title and body were last written or found right: the
    text is read again (commits, files) only when the head moved."""


async def follow(
    services: services_.Services,
    memory: memory_.ObjectMemory,
    ctx: steps.Context,
    *,
    catalog: model.Catalog,
    recorded: status_.CatalogStatus,
    settled: steps.Outcome,
) -> steps.Outcome:
    """`settled` (the write step's outcome) as the pull request carrying the push branch says:
    see the module's table. Records `status.catalog.pullRequest` in `ctx.updates` when it
    changed; raises `errors.StalledError` for a closed one."""
    spec = catalog.pull_request
    revision = recorded.revision or ""
    on_branch = recorded.ref == f"refs/heads/{catalog.push_branch}"
    if spec is None or settled.kind is not steps.Kind.DONE or not on_branch or not revision:
        return settled
    checks = memory.part(PullChecks)
    known = recorded.pull_request
    interval = durations.parse(spec.interval) if spec.interval else LOOK_INTERVAL
    fresh = checks.revision == revision and not memory.due(
        checks.polled, interval, generation=ctx.generation
    )
    if known is not None and known.head == revision and fresh:
        return _judged(known, settled)
    host = await _host(services, ctx, catalog, spec)
    found, holds = await _look(host, known, revision, catalog)
    verdict = pulls.verdict(found, holds)
    if verdict == "new":
        title, body = pulls.describe(
            pulls.Contents(((revision, _subject(ctx, recorded)),), recorded.changed or ()),
            title=spec.title,
        )
        found = await host.open(
            head=catalog.push_branch, base=catalog.git.branch, title=title, body=body
        )
        if found is None:  # the base branch has every commit of the push branch
            checks.polled, checks.revision = time.monotonic(), revision
            _record(ctx, recorded, None)
            return settled
        verdict = "open"
    if (
        verdict == "open"
        and found is not None
        and checks.described != (found.number, found.head_sha)
    ):
        title, body = pulls.describe(await host.contents(found.number), title=spec.title)
        if (title, body) != (found.title, found.body):
            found = await host.edit(found.number, title=title, body=body)
        checks.described = (found.number, found.head_sha)
    assert found is not None
    checks.polled, checks.revision = time.monotonic(), revision
    seen = status_.PullRequestStatus(
        number=found.number,
        url=found.url,
        state=found.state,
        head=revision,
    )
    _record(ctx, recorded, seen)
    return _judged(seen, settled)


async def _look(
    host: pulls.Host,
    known: status_.PullRequestStatus | None,
    revision: str,
    catalog: model.Catalog,
) -> tuple[pulls.PullRequest | None, bool]:
    """The pull request that carries (or carried) `revision`, and whether it holds it: the
    recorded one while open, or once over if `revision` is among its commits (another
    RunnerImage's newer commit may be its head); else the open one from the branch, if any."""
    found = await host.get(known.number) if known is not None else None
    if found is not None and found.state == "open":
        return found, True
    if found is not None:
        commits = (await host.contents(found.number)).commits
        if any(sha == revision for sha, _ in commits):
            return found, True
    opened = await host.find_open(head=catalog.push_branch, base=catalog.git.branch)
    return (opened, True) if opened is not None else (found, False)


def _judged(seen: status_.PullRequestStatus, settled: steps.Outcome) -> steps.Outcome:
    if seen.state == "merged":
        return steps.Outcome.done(
            settled.reason, f"{settled.message}; merged in pull request #{seen.number}"
        )
    if seen.state == "closed":
        raise errors.StalledError(
            "PullRequestClosed",
            f"pull request #{seen.number} was closed without merging: {seen.url} (reopen it, or"
            " a new image opens a new one)",
        )
    return steps.Outcome(
        steps.Kind.BLOCKED,
        "PullRequestOpen",
        f"the catalog change waits in pull request #{seen.number} for review and merge: {seen.url}",
    )


def _record(
    ctx: steps.Context,
    recorded: status_.CatalogStatus,
    seen: status_.PullRequestStatus | None,
) -> None:
    """`status.catalog` as `recorded` (the latest: the write step's), with `seen`."""
    if recorded.pull_request != seen:
        ctx.updates["catalog"] = dataclasses.replace(recorded, pull_request=seen).to_status()


def _subject(ctx: steps.Context, recorded: status_.CatalogStatus) -> str:
    return f"Use runner image {recorded.image or ''} ({ctx.namespace}/{ctx.name})"


async def _host(
    services: services_.Services,
    ctx: steps.Context,
    catalog: model.Catalog,
    spec: model.PullRequestSpec,
) -> pulls.Host:
    try:
        api_url, repository = hosts.locate(
            spec.provider.value,
            git_url=catalog.git.url,
            api_url=spec.api_url,
            repository=spec.repository,
        )
    except hosts.Unlocated as missing:
        raise errors.SpecError(f"spec.catalog.pullRequest.{missing.field}", str(missing)) from None
    token = await _token(services, ctx, catalog, spec)
    try:
        return services.hosts.get(
            provider=spec.provider.value, api_url=api_url, repository=repository, token=token
        )
    except ValueError as refused:  # a GitHub App for Azure Repos
        raise errors.SpecError("spec.catalog.pullRequest.secretRef", str(refused)) from None


async def _token(
    services: services_.Services,
    ctx: steps.Context,
    catalog: model.Catalog,
    spec: model.PullRequestSpec,
) -> pulls.Credential:
    if spec.secret_ref is not None:
        field = "spec.catalog.pullRequest.secretRef"
        secret = await secrets.read(
            services.kube, namespace=ctx.namespace, name=spec.secret_ref.name, field=field
        )
        return pulls.credential_from_secret(secret.data, secret=secret.name, field=field)
    field = "spec.catalog.git.secretRef"
    credentials = await secrets.git_credentials_at(
        services.kube, namespace=ctx.namespace, ref=catalog.git.secret_ref, field=field
    )
    token = "" if credentials is None else credentials.bearer_token or credentials.password or ""
    if not token:
        raise errors.StalledError(
            "SecretInvalid",
            "spec.catalog.pullRequest.secretRef: no API token (set secretRef to a Secret with key"
            f" 'token', or give {field} a bearerToken or password the host's API accepts)",
        )
    return token
