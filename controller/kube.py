"""The operator's own calls to the Kubernetes API (beyond what kopf does): Secrets, Jobs, Pods,
ConfigMaps, lists of custom objects. One place for every such request, on the `kubernetes`
client run in worker threads.

Creates are idempotent: 409 Conflict means the object already exists, and the caller adopts it.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 when unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Secret:
    name: str
    type: str
    data: Mapping[str, bytes]

    def __repr__(self) -> str:
        return f"Secret(name={self.name!r}, type={self.type!r}, keys={sorted(self.data)!r})"


def in_cluster_server(env: Mapping[str, str]) -> str:
    """The API server a pod talks to: `KUBERNETES_SERVICE_HOST` and `_PORT`, as client-go and
    the Kubernetes client read them (what the kubelet injects, or what the pod's spec sets where
    the `kubernetes` Service is not reachable); `https://kubernetes.default.svc` without them."""
    host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = env.get("KUBERNETES_SERVICE_PORT", "").strip() or "443"
    if not host:
        return "https://kubernetes.default.svc"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"https://{host}" if port == "443" else f"https://{host}:{port}"


def api_client() -> client.ApiClient:
    """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    try:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    except config.ConfigException:
        api: client.ApiClient = config.new_client_from_config()  # type: ignore[no-untyped-call]
        return api


CALLS_AT_ONCE = 16
"""Kubernetes calls in flight at once (the client is synchronous: each runs in a thread of its
own pool, so a burst of status writes does not queue behind file and Secret work on asyncio's
small default pool, and the connection pool is as large)."""


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = CALLS_AT_ONCE
        self._core = client.CoreV1Api(api)
        self._batch = client.BatchV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=CALLS_AT_ONCE, thread_name_prefix="kube"
        )

    async def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(function, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except ApiException as error:
            raise KubeError(
                int(error.status or 0), f"{what}: {error.status} {error.reason}"
            ) from None
        except (OSError, urllib3.exceptions.HTTPError) as error:
            # Unreachable (urllib3 gave up connecting: MaxRetryError, not an OSError): status 0.
            raise KubeError(
                0, f"{what}: the API server is unreachable ({type(error).__name__})"
            ) from None

    async def read_secret(self, *, namespace: str, name: str) -> Secret | None:
        try:
            raw = await self._call(
                f"reading Secret {namespace}/{name}",
                self._core.read_namespaced_secret,
                name,
                namespace,
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        data = {key: base64.b64decode(value) for key, value in (raw.data or {}).items()}
        return Secret(name=name, type=str(raw.type or ""), data=data)

    async def patch_status(
        self, *, group: str, version: str, plural: str, namespace: str, name: str, patch: Any
    ) -> str:
        """Merge-patch the status subresource of a namespaced custom object; returns the
        object's new resourceVersion."""
        patched = await self._call(
            f"patching the status of {plural} {namespace}/{name}",
            self._custom.patch_namespaced_custom_object_status,
            group,
            version,
            namespace,
            plural,
            name,
            {"status": patch},
        )
        return str(((patched or {}).get("metadata") or {}).get("resourceVersion") or "")

    async def annotate(
        self,
        *,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        annotations: Mapping[str, str],
    ) -> None:
        """Merge-patch annotations onto a namespaced custom object."""
        await self._call(
            f"annotating {plural} {namespace}/{name}",
            self._custom.patch_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            name,
            {"metadata": {"annotations": dict(annotations)}},
        )

    async def list_custom(
        self, *, group: str, version: str, plural: str, namespace: str | None
    ) -> list[dict[str, Any]]:
        """The namespaced custom objects of `plural` in `namespace` (None: every namespace)."""
        if namespace is None:
            found = await self._call(
                f"listing {plural}",
                self._custom.list_cluster_custom_object,
                group,
                version,
                plural,
            )
        else:
            found = await self._call(
                f"listing {plural} in {namespace}",
                self._custom.list_namespaced_custom_object,
                group,
                version,
                namespace,
                plural,
            )
        items: list[dict[str, Any]] = (found or {}).get("items") or []
        return items

    async def create(self, body: Mapping[str, Any]) -> bool:
        """Create a ConfigMap or Job; False when it already existed (409)."""
        kind = body["kind"]
        namespace = body["metadata"]["namespace"]
        name = body["metadata"]["name"]
        function = {
            "ConfigMap": self._core.create_namespaced_config_map,
            "Job": self._batch.create_namespaced_job,
        }[kind]
        try:
            await self._call(f"creating {kind} {namespace}/{name}", function, namespace, dict(body))
        except KubeError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def get_job(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = await self._call(
                f"reading Job {namespace}/{name}", self._batch.read_namespaced_job, name, namespace
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        result: dict[str, Any] = self._batch.api_client.sanitize_for_serialization(job)
        return result

    async def list_jobs(self, *, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list(
            f"listing Jobs in {namespace}", self._batch.list_namespaced_job, namespace, selector
        )

    async def list_pods(self, *, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list(
            f"listing Pods in {namespace}", self._core.list_namespaced_pod, namespace, selector
        )

    async def _list(
        self, what: str, function: Any, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        found = await self._call(what, function, namespace, label_selector=selector)
        items: list[dict[str, Any]] = self._core.api_client.sanitize_for_serialization(found)[
            "items"
        ]
        return items

    async def delete_config_map(self, *, namespace: str, name: str) -> None:
        try:
            await self._call(
                f"deleting ConfigMap {namespace}/{name}",
                self._core.delete_namespaced_config_map,
                name,
                namespace,
            )
        except KubeError as error:
            if error.status != 404:
                raise

    async def delete_job(self, *, namespace: str, name: str) -> None:
        try:
            await self._call(
                f"deleting Job {namespace}/{name}",
                self._batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Background",
            )
        except KubeError as error:
            if error.status != 404:
                raise
