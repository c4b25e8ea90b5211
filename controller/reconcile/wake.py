"""Wake the reconcile of a RunnerImage at once when work it waits on ends outside a reconcile.

An in-process build (BuildKitDaemon, Docker) ends in a task of the operator. Rather than leave it
to the progress timer (`ADE_PROGRESS_INTERVAL`) to notice, the operator stamps the RunnerImage
with `runners.ade.dev/build-finished: <build name>`: one metadata patch, which kopf sees as an
update and reconciles at once. The timer stays as the safety net: a patch that fails is logged,
never retried, and the timer finds the build done anyway.
"""

from __future__ import annotations

import asyncio
import logging

from controller import kube as kube_
from controller.api import identity

logger = logging.getLogger(__name__)


class Waker:
    def __init__(self, kube: kube_.Kube) -> None:
        self._kube = kube
        self._pending: set[asyncio.Task[None]] = set()

    def build_finished(self, namespace: str, name: str, build: str) -> None:
        """Ask for a reconcile of `namespace/name` now that its build `build` ended (called on
        the event loop, from the build task's completion)."""
        task = asyncio.get_running_loop().create_task(self._stamp(namespace, name, build))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _stamp(self, namespace: str, name: str, build: str) -> None:
        try:
            await self._kube.annotate(
                group=identity.GROUP,
                version=identity.VERSION,
                plural=identity.PLURAL,
                namespace=namespace,
                name=name,
                annotations={identity.BUILD_FINISHED_ANNOTATION: build},
            )
        except kube_.KubeError as error:  # the progress timer still finds the build done
            logger.warning("could not wake %s/%s after build %s: %s", namespace, name, build, error)
