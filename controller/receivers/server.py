"""The webhook receivers' HTTP endpoint: `POST /hook/<digest>` on `ADE_RECEIVER_PORT`.

Each request goes, in order: the receiver its path names (404 if none), the body's size (413 over
`MAX_BODY`, read no further), the sender's proof of the token (401), the body's shape (400), a
replay (409); then the RunnerImages it concerns are asked to reconcile (202) or, for a verified
event that changes nothing (a ping), 200. Nothing before the proof of the token reaches the API
server beyond the cached lists (`directory`). Every answer is counted in
`ade_runner_webhook_events_total`; a 503 (the API server could not be read or written) carries
`Retry-After`, and the host's retry of it is not taken for a replay.
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from aiohttp import web

from controller.observe import metrics
from controller.receivers import (
    authentication,
    directory,
    events,
    matching,
    nudges,
    paths,
    payloads,
    replays,
)

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
"""GitHub's push payloads list at most 20 commits; Azure Repos' and ACR's are a few KiB."""


class ReceiverServer:
    def __init__(
        self,
        directory_: directory.Directory,
        nudger: nudges.Nudger,
        *,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 (the pod's port, behind its Service)
    ) -> None:
        self._directory = directory_
        self._nudger = nudger
        self._deliveries = replays.Deliveries()
        self._port = port
        self._host = host
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY + 1)
        app.router.add_post(paths.PREFIX + "{digest}", self._receive)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        logger.info("webhook receivers listening on port %d", self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        kind = ""
        try:
            receiver = await self._directory.receiver(request.path)
            if receiver is None:
                raise events.Refused(404, events.NOT_FOUND, "no receiver has this path")
            kind = receiver.kind
            outcome, answer, requested = await self._handle(receiver, request)
        except events.Refused as refused:
            outcome, requested = refused.outcome, 0
            answer = _refusal(refused)
            if refused.outcome not in (events.NOT_FOUND, events.UNAVAILABLE):
                logger.warning("webhook refused (%s %d): %s", kind, refused.status, refused)
        metrics.report_webhook(
            type_=kind, outcome=outcome, seconds=time.monotonic() - started, requested=requested
        )
        return answer

    async def _handle(
        self, receiver: directory.Receiver, request: web.Request
    ) -> tuple[str, web.Response, int]:
        body = await _body(request)
        headers = {name.lower(): value for name, value in request.headers.items()}
        authentication.check(receiver.kind, headers, body, receiver.credentials)
        event = payloads.read(receiver.kind, headers, body)
        now = datetime.datetime.now(datetime.UTC)
        self._deliveries.check(receiver.key, event, now=now, clock=time.monotonic())
        if event.ignored is not None:
            self._deliveries.remember(receiver.key, event, clock=time.monotonic())
            return events.IGNORED, _json(200, {"ignored": event.ignored}), 0
        candidates = await self._directory.candidates(receiver.namespace)
        wanted = matching.nudges(event, candidates)
        made = await self._nudger.send(wanted)
        self._deliveries.remember(receiver.key, event, clock=time.monotonic())
        concerned = sum(
            any(matching.concerns(change, candidate) for change in event.changes)
            for candidate in candidates
        )
        logger.info(
            "webhook %s %s (delivery %s): %d change(s), %d RunnerImage(s) concerned, "
            "reconcile asked of %s",
            receiver.kind,
            receiver.key,
            event.delivery,
            len(event.changes),
            concerned,
            ", ".join(nudge.name for nudge in made) or "none",
        )
        answer = {"concerned": concerned, "requested": len(made)}
        return events.ACCEPTED, _json(202, answer), len(made)


async def _body(request: web.Request) -> bytes:
    """The request's body, or `events.Refused` (413) as soon as it is known to be too large."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _too_large()
    body = b""
    while chunk := await request.content.read(MAX_BODY + 1 - len(body)):
        body += chunk
        if len(body) > MAX_BODY:
            raise _too_large()
    return body


def _too_large() -> events.Refused:
    return events.Refused(413, events.OVERSIZED, f"the body is larger than {MAX_BODY} bytes")


def _refusal(refused: events.Refused) -> web.Response:
    response = _json(refused.status, {"error": str(refused)})
    if refused.status == 503:
        response.headers["Retry-After"] = str(directory.RETRY_AFTER)
    return response


def _json(status: int, data: dict[str, Any]) -> web.Response:
    return web.json_response(data, status=status)
