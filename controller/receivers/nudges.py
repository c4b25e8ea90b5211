"""The reconcile requests a verified event makes: the manual trigger's annotation, set once per
RunnerImage and change.

The annotation's value names the change (`controller.receivers.matching`), so a burst of
deliveries of one change sets it once: the requests already made are remembered (bounded), and a
RunnerImage that already carries the value is not patched at all. kopf sees the annotation as an
update and reconciles the object at once; the inputs step then polls its source and base image
anew, as for `kubectl annotate ... reconcile-requested-at=...`.
"""

from __future__ import annotations

import asyncio
import collections

from controller import kube as kube_
from controller.api import identity
from controller.receivers import events, matching

CAPACITY = 10_000


class Nudger:
    def __init__(self, kube: kube_.Kube, *, capacity: int = CAPACITY) -> None:
        self._kube = kube
        self._asked: collections.OrderedDict[tuple[str, str], str] = collections.OrderedDict()
        self._capacity = capacity

    async def send(self, nudges: list[matching.Nudge]) -> list[matching.Nudge]:
        """Ask for the reconciles `nudges` name; returns those this call made (not those already
        asked for by an earlier event). `events.Refused` (503) if the API server refused one."""
        fresh = [nudge for nudge in nudges if self._asked.get(_key(nudge)) != nudge.value]
        for nudge in fresh:
            self._remember(nudge)
        results = await asyncio.gather(*(self._annotate(n) for n in fresh), return_exceptions=True)
        made, failed = [], None
        for nudge, result in zip(fresh, results, strict=True):
            if result is None:
                made.append(nudge)
                continue
            self._asked.pop(_key(nudge), None)  # a retry of the delivery asks again
            if not isinstance(result, kube_.KubeError):
                raise result
            if result.status != 404:  # a RunnerImage deleted since it was listed: nothing to do
                failed = result
        if failed is not None:
            raise events.Refused(
                503,
                events.UNAVAILABLE,
                f"the API server refused a reconcile request ({failed.status})",
            )
        return made

    def _remember(self, nudge: matching.Nudge) -> None:
        self._asked[_key(nudge)] = nudge.value
        self._asked.move_to_end(_key(nudge))
        while len(self._asked) > self._capacity:
            self._asked.popitem(last=False)

    async def _annotate(self, nudge: matching.Nudge) -> None:
        await self._kube.annotate(
            group=identity.GROUP,
            version=identity.VERSION,
            plural=identity.PLURAL,
            namespace=nudge.namespace,
            name=nudge.name,
            annotations={identity.RECONCILE_REQUEST_ANNOTATION: nudge.value},
        )


def _key(nudge: matching.Nudge) -> tuple[str, str]:
    return (nudge.namespace, nudge.name)
