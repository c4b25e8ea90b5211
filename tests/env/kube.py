"""Test-side helpers over the real API server: read objects, wait on conditions, count writes."""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from kubernetes import client, config

from controller.api import identity
from tests.env import controlplane

OPERATOR_USER = "ade-runner-operator"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def custom_objects(plane: controlplane.ControlPlane) -> client.CustomObjectsApi:
    """A client of custom objects as the cluster's admin."""
    return client.CustomObjectsApi(
        config.new_client_from_config(str(plane.kubeconfig))  # type: ignore[no-untyped-call]
    )


OPERATOR_PLURALS = (identity.PLURAL, identity.RECEIVER_PLURAL)
"""The operator's kinds: kopf puts its finalizer on each (handlers and timers need it)."""


def clear_namespace(api: client.CustomObjectsApi, namespace: str) -> int:
    """Delete every object of the operator's kinds left in `namespace`, their finalizers (the
    operator's, and any a test put there) taken off first, as the operator takes its own off when
    one is deleted; how many had finalizers. Returns once they are gone.

    For a test's teardown, after its operator stopped. A namespace deleted with finalized objects
    in it stayed Terminating for the rest of the session, kube-controller-manager's namespace
    controller going over them again and again (after the 1,000-object burst benchmark the API
    server spent ~35% of a core on it, and every later test and benchmark shared the machine with
    that); and a namespace of many objects, deleted in the background, was still being emptied
    while the next test measured."""
    left = {
        plural: cast(
            dict[str, Any],
            api.list_namespaced_custom_object(identity.GROUP, identity.VERSION, namespace, plural),
        )["items"]
        for plural in OPERATOR_PLURALS
    }
    finalized = [
        (plural, obj["metadata"]["name"])
        for plural, items in left.items()
        for obj in items
        if obj["metadata"].get("finalizers")
    ]

    def release(plural: str, name: str) -> None:
        try:
            api.patch_namespaced_custom_object(
                identity.GROUP, identity.VERSION, namespace, plural, name,
                {"metadata": {"finalizers": None}},
            )  # fmt: skip
        except client.ApiException as error:
            if error.status != 404:  # gone meanwhile: nothing to release
                raise

    with concurrent.futures.ThreadPoolExecutor(RELEASERS) as pool:
        list(pool.map(lambda item: release(*item), finalized))
    for plural, items in left.items():
        if items:  # the API server deletes them all before it answers
            api.delete_collection_namespaced_custom_object(
                identity.GROUP, identity.VERSION, namespace, plural
            )
    return len(finalized)


RELEASERS = 8
"""Threads that release finalized objects (1,000 in about 4 s on this machine)."""


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None


class Cluster:
    def __init__(self, plane: controlplane.ControlPlane) -> None:
        self.plane = plane

    def apply(self, namespace: str, manifest: str) -> None:
        self.plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)

    def get(self, namespace: str, name: str, kind: str = "runnerimage") -> dict[str, Any] | None:
        result = self.plane.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        obj: dict[str, Any] = json.loads(result.stdout)
        return obj

    def wait_condition(
        self,
        namespace: str,
        name: str,
        type_: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Wait until the operator reported on the current generation and the condition, as
        written for that generation, matches."""

        def probe() -> dict[str, Any] | None:
            obj = self.get(namespace, name)
            if obj is None:
                return None
            generation = obj["metadata"].get("generation")
            current = (obj.get("status") or {}).get("observedGeneration") == generation
            found = condition(obj, type_)
            # the condition itself must speak of this generation: a new generation is first
            # reported as Reconciling with the older conditions left as they were
            if not current or found is None or found.get("observedGeneration") != generation:
                return None
            if status is not None and found.get("status") != status:
                return None
            if reason is not None and found.get("reason") != reason:
                return None
            return obj

        return wait_for(
            probe,
            timeout=timeout,
            what=f"{namespace}/{name} {type_}={status} reason={reason}",
        )

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        result = self.plane.kubectl(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            f"involvedObject.name={name}",
            "-o",
            "json",
        )
        items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
        return items

    def writes_by(self, user: str, *, since: datetime.datetime) -> list[dict[str, Any]]:
        """Write requests `user` made to the API server since `since` (from the audit log)."""
        out = []
        for event in self.plane.audit_events():
            if event.get("user", {}).get("username") != user:
                continue
            if event.get("verb") not in WRITE_VERBS:
                continue
            stamp = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"])
            if stamp >= since:
                out.append(event)
        return out
