"""kopf registrations, a few lines each: every cause delegates to one level-based reconcile.

Resume, create, update (including the manual-trigger annotation and the build-finished stamp
that a build's end sets, `controller.reconcile.wake`) and the timers all call
`_reconcile`, which runs `controller.reconcile.cycle` (lock, slot, memory, runner, status write,
metrics) and hands its report to kopf: the Events the runner chose, and a retry with backoff
after a transient failure. The status is written by the cycle, under the object's lock; kopf
writes only its own annotations and finalizer, and the first `Reconciling` of a new object.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterable
from typing import Any, cast

import kopf

from controller import apisession, assembly, backoff, kube
from controller import config as config_
from controller.api import identity
from controller.builds import job
from controller.observe import metrics
from controller.receivers import directory, nudges, observing, server
from controller.reconcile import cycle, owners, runner, services

_RESOURCE = (identity.GROUP, identity.VERSION, identity.PLURAL)
_JOBS = ("batch", "v1", "jobs")
_RECEIVERS = (identity.GROUP, identity.VERSION, identity.RECEIVER_PLURAL)
MAX_RETRY_DELAY = 300.0
CONSISTENCY_TIMEOUT = 60.0
"""How long kopf waits for the echo of its own patch before it trusts an older body (its default
is 5 s). The reconcile writes the status itself, so the status write's event comes before the echo
of kopf's last-handled patch; under watch lag (5,000 objects created at once) the echo came later
than 5 s, kopf took the body without its last-handled record for the truth and ran the creation
again for about 4,000 objects (23,315 writes instead of 20,000, 761 of them after the burst). The
wait ends with the echo, well before this, except when a watch is re-listed."""


def retry_delay(retry: int) -> float:
    """Backoff for transient failures: 5 s doubling per retry, capped at five minutes."""
    return backoff.delay(retry + 1, base=5.0, cap=MAX_RETRY_DELAY)


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's record of the last handled spec, kept as a digest in the annotation.

    kopf stores the whole essence (spec, labels, annotations) in one annotation and compares it
    with the object to tell an update; the reconcile is level-based and reads no diff, so a
    digest tells the same. A whole essence fails above the API server's 256 KiB of annotations
    (a RunnerImage with large inline scripts, each allowed 256 KiB): every patch of the object,
    status included, was refused and kopf retried it without end.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        text = json.dumps(essence, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return cast(kopf.BodyEssence, {"sha256": digest})


def register(registry: kopf.OperatorRegistry, config: config_.Config) -> None:
    """Register every handler of the operator into `registry`."""

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        _configure(settings, config)

    services_ = assembly.services_from_config(config)
    metrics.watch_builds_in_flight(lambda: len(services_.slots.active))

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # In a pod: the service account, at KUBERNETES_SERVICE_HOST/PORT as every Kubernetes
        # client reads them (kopf's own helper always dials kubernetes.default.svc, which a
        # host-network pod without cluster DNS cannot resolve); elsewhere: $KUBECONFIG or
        # ~/.kube/config.
        info = kopf.login_with_service_account(**kwargs)
        if info is not None:
            info = dataclasses.replace(info, server=kube.in_cluster_server(os.environ))
        else:
            info = kopf.login_with_kubeconfig(**kwargs)
        return None if info is None else _bounded(info)

    # Async, as every handler here: kopf runs a sync one in a thread, a hop through the
    # executor (and the GIL) on every event of every RunnerImage.
    @kopf.index(*_RESOURCE, id="runner_repositories", registry=registry)
    async def runner_repositories(
        namespace: str | None, name: str | None, spec: kopf.Spec, meta: kopf.Meta, **_: Any
    ) -> dict[str, owners.Claim]:
        # Which RunnerImage pushes which repository (catalog ownership, duplicates refused).
        return owners.index_entry(
            namespace=namespace or "",
            name=name or "",
            spec=spec,
            created=str(meta.get("creationTimestamp") or ""),
        )

    # Every handler that makes kopf add its finalizer (the changes', the timers', the deletion's)
    # waits, through `when=_taken`, until a new object's first word is written: see `_taken`.
    @kopf.on.resume(*_RESOURCE, when=_taken, registry=registry)
    @kopf.on.create(*_RESOURCE, when=_taken, registry=registry)
    @kopf.on.update(*_RESOURCE, when=_taken, registry=registry)
    async def on_change(body: kopf.Body, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
        services_.owners.index = kwargs["runner_repositories"]
        await _reconcile(services_, body, memo, retry)

    # The resync's first run one interval on: creation and resumption are on_change's (kopf
    # would run a timer at once when an object appears, a second reconcile of every new one).
    @kopf.timer(
        *_RESOURCE,
        interval=config.resync_interval,
        initial_delay=config.resync_interval,
        when=_taken,
        registry=registry,
    )
    async def on_timer(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        services_.owners.index = kwargs["runner_repositories"]
        await _reconcile(services_, body, memo, retry=0)

    @kopf.timer(
        *_RESOURCE,
        interval=config.progress_interval,
        # The reconcile that said Reconciling has just looked: the first look is one interval on
        # (kopf would run a timer at once when `when` turns true: a second reconcile, for nothing).
        initial_delay=config.progress_interval,
        when=_taken_and_reconciling,
        registry=registry,
    )
    async def on_progress(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
        services_.owners.index = kwargs["runner_repositories"]
        # Work is in flight (Reconciling=True, e.g. a build): look at it every few seconds.
        # Timers write nothing of their own, unlike kopf's retries of a handler.
        await _reconcile(services_, body, memo, retry=0)

    @kopf.on.event(*_RESOURCE, when=_not_taken_yet, registry=registry)
    async def on_appear(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        # A new RunnerImage says Reconciling in kopf's first cycle of it, the only write of that
        # cycle; the finalizer comes on its echo, on_change a cycle later. See `first_cycle_status`.
        words = first_cycle_status(body, now=datetime.datetime.now(datetime.UTC))
        if words is not None:
            patch.status.update(words)
            memo[_SAYING] = body.metadata.get("resourceVersion")
            # The reconciles of a burst wait for it (limits.Arrivals): first words go first.
            services_.reconcile_slots.arrivals.expect(
                body.metadata.namespace or "", body.metadata.name or ""
            )

    @kopf.on.event(*_JOBS, labels={job.LABEL_MANAGED_BY: job.MANAGED_BY}, registry=registry)
    async def on_build_job(type: str | None, body: kopf.Body, **_: Any) -> None:
        # A build Job that finishes wakes its RunnerImage's reconcile at once. An event handler
        # writes nothing to the Job (no finalizer, no progress annotation) as long as it
        # returns nothing (kopf would store a result in the Job's status).
        finished = job.finished(type, body)
        if finished is not None and services_.waker is not None:
            services_.waker.build_finished(finished.namespace, finished.owner, finished.name)

    @kopf.on.cleanup(registry=registry)
    async def close_clients(**_: Any) -> None:
        if services_.azure is not None:
            await services_.azure.aclose()

    _register_receivers(registry, config, services_)

    @kopf.on.delete(*_RESOURCE, when=_taken, registry=registry)
    async def on_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # Nothing outside the cluster is removed: pushed images and catalog commits stay (see
        # README, "Deleting a RunnerImage"). Objects the operator creates carry owner references
        # and are collected by the garbage collector.
        namespace, name = body.metadata.namespace or "", body.metadata.name or ""
        cycle.forget(services_, namespace=namespace, name=name, state=memo.get("state"))


def _register_receivers(
    registry: kopf.OperatorRegistry, config: config_.Config, services_: services.Services
) -> None:
    """The webhook receivers' endpoint (on every replica: it only reads and annotates) and the
    WebhookReceivers' status (the active replica's)."""
    listening = config.receiver_port != 0
    endpoint = server.ReceiverServer(
        directory.Directory(services_.kube, config.namespaces),
        nudges.Nudger(services_.kube),
        port=config.receiver_port,
    )

    @kopf.on.startup(registry=registry)
    async def start_receivers(**_: Any) -> None:
        if listening:
            try:
                await endpoint.start()
            except OSError as error:  # e.g. the port is taken: a configuration error
                raise kopf.PermanentError(
                    f"ADE_RECEIVER_PORT: cannot listen on {config.receiver_port}: {error}"
                ) from None

    @kopf.on.cleanup(registry=registry)
    async def stop_receivers(**_: Any) -> None:
        await endpoint.stop()

    # An event handler and a timer: kopf writes nothing of its own to a WebhookReceiver (no
    # finalizer, no last-handled record), so the operator needs only its status.
    @kopf.on.event(*_RECEIVERS, registry=registry)
    @kopf.timer(
        *_RECEIVERS,
        interval=config.resync_interval,
        initial_delay=config.resync_interval,
        registry=registry,
    )
    async def on_receiver(body: kopf.Body, type: str | None = None, **_: Any) -> None:
        if type == "DELETED" or body.metadata.deletion_timestamp:
            return
        try:
            await observing.observe(services_.kube, body, listening=listening)
        except kube.KubeError as error:
            raise kopf.TemporaryError(str(error), delay=retry_delay(0)) from None


def _configure(settings: kopf.OperatorSettings, config: config_.Config) -> None:
    """kopf's settings for this operator: its storage names, watches, retries and peering."""
    settings.persistence.finalizer = identity.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=identity.KOPF_STATE_PREFIX
    )
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        prefix=identity.KOPF_STATE_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.CRITICAL + 1  # only the Events the runner chooses
    settings.posting.reporting_component = "ade-runner-operator"
    settings.posting.reporting_instance = socket.gethostname()
    # Concurrency is bounded by `reconcile_slots` (in _reconcile), not by kopf's worker_limit:
    # kopf's per-object workers linger for batching.idle_timeout after each event, so a small
    # worker_limit turns into a queue that drains a few objects every few seconds.
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = backoff.API_SERVER_WAITS
    settings.watching.client_timeout = 330
    settings.persistence.consistency_timeout = CONSISTENCY_TIMEOUT
    # With named namespaces, serve exactly those and the CRD as found at start-up: scanning
    # would need cluster-wide list/watch of namespaces and CRDs, which a namespaced install's
    # Roles do not grant (kopf would retry for about a minute before serving anything).
    settings.scanning.disabled = bool(config.namespaces)
    # The watch of build Jobs asks the API server for the operator's Jobs only.
    settings.watching.label_selectors[_JOBS] = f"{job.LABEL_MANAGED_BY}={job.MANAGED_BY}"
    settings.peering.standalone = not config.peering
    if config.peering:
        settings.peering.name = config.peering
        settings.peering.clusterwide = config.clusterwide
        # kopf's default (60 s) is how long a killed leader blocks the standby; each replica
        # renews its record 5-10 s before it lapses (the only writes of an idle replica).
        settings.peering.lifetime = max(2, round(config.peering_lifetime))


async def _reconcile(
    services_: services.Services, body: kopf.Body, memo: kopf.Memo, retry: int
) -> None:
    state: cycle.ObjectState = memo.setdefault("state", cycle.ObjectState())
    version = str(body.metadata.get("resourceVersion") or "")
    # The status is written in the cycle, under the object's lock (`reconcile.status_writes`),
    # not through kopf's patch: kopf's patches of one object are not ordered.
    report = await cycle.run(services_, state, runner.ObjectView.of(body), version=version)
    for event in report.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if report.retry:
        raise kopf.TemporaryError(report.message, delay=report.requeue_after or retry_delay(retry))


def _bounded(info: kopf.ConnectionInfo) -> kopf.AiohttpSession:
    """kopf's session for `info`, with its requests bounded (`controller.apisession`)."""
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=apisession.session(
            ssl_context=info.as_ssl_context(),
            headers=info.as_http_headers(),
            proxy=info.proxy_url,
            trust_env=info.trust_env,
        ),
    )


def first_cycle_status(body: kopf.Body, *, now: datetime.datetime) -> dict[str, Any] | None:
    """The status merge patch of kopf's first cycle of a new RunnerImage, or None.

    A new object's first word (`cycle.first_word`: Reconciling) is kopf's only write in its first
    cycle of the object: a new object shows Reconciling after one write, not after the
    finalizer's round trip (in a burst of 50 creates, that round trip was most of the first
    status's wait). The handlers that make kopf add its finalizer wait for the word's echo
    (`_taken`), so the finalizer's JSON patch is tested against the version the word made.
    A merge patch is sent once (kopf keeps only transformations after a conflict), so the early
    word never lands over a verdict the reconcile wrote since.
    """
    return cycle.first_word(runner.ObjectView.of(body), now=now)


_SAYING = "first-word-at"
"""The memo key of the resourceVersion whose kopf cycle says a new object's first word."""


def _taken(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """Whether kopf may take this RunnerImage: add its finalizer, run its changes, timers and
    deletion. Not in the cycle that says a new object's first word (`on_appear` runs first in a
    cycle and notes it), so that the word is that cycle's only write.

    When kopf added its finalizer in that cycle too, the word's echo (the status, without the
    finalizer) made it add the finalizer again, tested against the echo's resourceVersion, which
    the finalizer's write had moved on: refused (422), kept, then a no-op that skipped the
    handlers, and the object waited for a timer. The echo had to say the word again, unchanged,
    for kopf to find its finalizer in the answer: one more request per new object, in the burst.
    Now the finalizer is added on that echo, tested against the word's own version.
    """
    return memo.get(_SAYING) != body.metadata.get("resourceVersion")


def _not_taken_yet(type: str | None, body: kopf.Body, **_: Any) -> bool:
    """Whether kopf has yet to take this RunnerImage (no finalizer, not being deleted): the
    filter of `on_appear`, so that the other events call (and log) nothing. Not `_taken`'s
    negation: on the first word's echo there is no finalizer yet, but the object is taken (kopf
    adds the finalizer in that cycle), and `on_appear` finds nothing more to say."""
    meta = body.metadata
    if type == "DELETED" or meta.deletion_timestamp:
        return False
    return identity.FINALIZER not in (meta.get("finalizers") or [])


def _taken_and_reconciling(body: kopf.Body, memo: kopf.Memo, status: kopf.Status, **_: Any) -> bool:
    """The progress timer's filter: `_taken` and `_reconciling`."""
    return _taken(body, memo) and _reconciling(status)


def _reconciling(status: kopf.Status, **_: Any) -> bool:
    """Whether work is in flight: the `on_progress` timer runs only for such objects."""
    return any(
        condition.get("type") == "Reconciling" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )
