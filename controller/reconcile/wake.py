"""Wake the reconcile of a RunnerImage at once when work it waits on ends outside a reconcile.

(The same for a catalog change that stayed queued in the writer after its reconcile stopped
waiting, its pushes having lost every race of a round: `catalog_written`, annotation
`runners.ade.dev/catalog-written`.)

An in-process build (BuildKitDaemon, Docker) ends in a task of the operator; a build Job's end
shows in the operator's watch of its Jobs (`handlers`). Rather than leave it to the progress
timer (`ADE_PROGRESS_INTERVAL`) to notice, the operator stamps the RunnerImage with
`runners.ade.dev/build-finished: <build name>`: one metadata patch, which kopf sees as an update
and reconciles at once. Each build is stamped once (a finished Job goes on changing: its
conditions, its deletion). The timer stays as the safety net: a patch that fails is logged,
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
        self._stamped: dict[tuple[str, str], str] = {}

    def build_finished(self, namespace: str, name: str, build: str) -> None:
        """Ask for a reconcile of `namespace/name` now that its build `build` ended (called on
        the event loop: from the build task's completion, or the watch of build Jobs); a build
        already stamped is not stamped again."""
        if self._stamped.get((namespace, name)) == build:
            return
        self._stamped[namespace, name] = build
        task = asyncio.get_running_loop().create_task(self._stamp(namespace, name, build))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def catalog_written(self, namespace: str, name: str, commit: str) -> None:
        """Ask for a reconcile of `namespace/name` now that a catalog change it stopped waiting
        for (a round of lost push races) is settled: `commit` wrote it ("" if it failed)."""
        task = asyncio.get_running_loop().create_task(
            self._wake(namespace, name, {identity.CATALOG_WRITTEN_ANNOTATION: commit or "-"})
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _wake(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        try:
            await self._annotate(namespace, name, annotations)
        except kube_.KubeError as error:  # the retry of the reconcile still finds it
            logger.warning("could not wake %s/%s (%s): %s", namespace, name, annotations, error)

    async def _annotate(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        await self._kube.annotate(
            group=identity.GROUP,
            version=identity.VERSION,
            plural=identity.PLURAL,
            namespace=namespace,
            name=name,
            annotations=annotations,
        )

    async def _stamp(self, namespace: str, name: str, build: str) -> None:
        try:
            await self._annotate(namespace, name, {identity.BUILD_FINISHED_ANNOTATION: build})
        except kube_.KubeError as error:  # the progress timer still finds the build done
            if self._stamped.get((namespace, name)) == build:
                del self._stamped[namespace, name]
            logger.warning("could not wake %s/%s after build %s: %s", namespace, name, build, error)

    def forget(self, *, namespace: str, name: str) -> None:
        """Drop what is kept of a deleted RunnerImage (the build last stamped)."""
        self._stamped.pop((namespace, name), None)
