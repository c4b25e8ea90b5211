"""The resources of the ARM emulator (`tests.env.arm`): container registries, DevCenter catalogs.

Pure, no I/O. `Registries` holds each registry's `anonymousPullEnabled`, `publicNetworkAccess`,
sku and login server, answers `GET` with the resource as ACR's api-version 2025-11-01 shapes it,
and takes `PATCH` as the SDK's `begin_update` sends it: 201 with `provisioningState: Updating`
and an `Azure-AsyncOperation` URL; the change becomes visible, and the `on_anonymous_pull` hook
is told, only when the operation ends. A second PATCH meanwhile is 409
`AnotherOperationInProgress`. A test changes a registry at once with `set()` (drift).

`Catalogs` holds the catalogs of dev centers and projects (api-version 2024-02-01): `GET`,
and `sync` as a 202 operation that sets `syncState` and `lastSyncTime` when it ends; every sync
asked for is recorded as a `CatalogSync`.

A registry's name is global (its login server is), the other names are per group; all are
case-insensitive.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from tests.env.arm_state import (
    After,
    ArmError,
    Caller,
    Groups,
    Operations,
    Reply,
    bad_content,
    forbidden,
    iso,
    not_found,
    now,
)

AnonymousPullHook = Callable[[str, bool], None]
"""`hook(registry_name, enabled)`: told whenever a registry's anonymous pull becomes visible."""

ParentKind = Literal["devcenters", "projects"]
SKUS = ("Standard", "Premium")
"""The skus with anonymous pull (Basic has none)."""


@dataclasses.dataclass(frozen=True)
class RegistryState:
    """One container registry as a test sees it (a snapshot)."""

    subscription_id: str
    resource_group: str
    name: str
    login_server: str
    location: str
    sku: str
    anonymous_pull: bool
    public_network_access: str
    admin_user_enabled: bool
    provisioning_state: str
    tags: Mapping[str, str]
    created: datetime.datetime

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerRegistry/registries/{self.name}"
        )

    def to_json(self) -> dict[str, Any]:
        """The resource as `GET` (api-version 2025-11-01) answers it."""
        created = iso(self.created)
        return {
            "sku": {"name": self.sku, "tier": self.sku},
            "type": "Microsoft.ContainerRegistry/registries",
            "id": self.id,
            "name": self.name,
            "location": self.location,
            "tags": dict(self.tags),
            "systemData": {
                "createdBy": "ade-test",
                "createdByType": "User",
                "createdAt": created,
                "lastModifiedBy": "ade-test",
                "lastModifiedByType": "User",
                "lastModifiedAt": created,
            },
            "properties": {
                "loginServer": self.login_server,
                "creationDate": created,
                "provisioningState": self.provisioning_state,
                "adminUserEnabled": self.admin_user_enabled,
                "policies": {
                    "quarantinePolicy": {"status": "disabled"},
                    "trustPolicy": {"type": "Notary", "status": "disabled"},
                    "retentionPolicy": {"days": 7, "status": "disabled"},
                    "exportPolicy": {"status": "enabled"},
                    "azureADAuthenticationAsArmPolicy": {"status": "enabled"},
                },
                "encryption": {"status": "disabled"},
                "dataEndpointEnabled": False,
                "dataEndpointHostNames": [],
                "privateEndpointConnections": [],
                "publicNetworkAccess": self.public_network_access,
                "networkRuleBypassOptions": "AzureServices",
                "networkRuleBypassAllowedForTasks": False,
                "zoneRedundancy": "Disabled",
                "anonymousPullEnabled": self.anonymous_pull,
                "roleAssignmentMode": "LegacyRegistryPermissions",
            },
        }


class Registries:
    """The container registries (`Microsoft.ContainerRegistry/registries`)."""

    def __init__(
        self,
        lock: threading.RLock,
        groups: Groups,
        operations: Operations,
        *,
        on_anonymous_pull: AnonymousPullHook | None,
    ) -> None:
        self._lock = lock
        self._groups = groups
        self._operations = operations
        self.on_anonymous_pull = on_anonymous_pull
        self.hook_errors: list[Exception] = []
        """What the hook raised (a test asserts it stayed empty); requests go on regardless."""
        self._registries: dict[str, RegistryState] = {}
        self._pending: dict[str, str] = {}
        """registry (lower) -> the id of its update operation in flight."""

    # -- the test's side -----------------------------------------------------------------------

    def add(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        login_server: str,
        anonymous_pull: bool,
        public_network_access: str,
        sku: str,
        location: str,
    ) -> RegistryState:
        if sku not in SKUS:
            raise ValueError(f"sku {sku!r}: anonymous pull needs one of {SKUS}")
        state = RegistryState(
            subscription_id=subscription_id,
            resource_group=resource_group,
            name=name,
            login_server=login_server,
            location=location,
            sku=sku,
            anonymous_pull=anonymous_pull,
            public_network_access=public_network_access,
            admin_user_enabled=False,
            provisioning_state="Succeeded",
            tags={},
            created=now(),
        )
        with self._lock:
            self._groups.add(subscription_id, resource_group)
            self._registries[name.lower()] = state
        return state

    def get(self, name: str) -> RegistryState:
        with self._lock:
            return self._registries[name.lower()]

    def set(
        self,
        name: str,
        *,
        anonymous_pull: bool | None = None,
        public_network_access: str | None = None,
        sku: str | None = None,
    ) -> RegistryState:
        """Change a registry at once, as someone else would (drift); the hook is told."""
        changes: dict[str, Any] = {
            key: value
            for key, value in (
                ("anonymous_pull", anonymous_pull),
                ("public_network_access", public_network_access),
                ("sku", sku),
            )
            if value is not None
        }
        with self._lock:
            state = dataclasses.replace(self._registries[name.lower()], **changes)
            self._registries[name.lower()] = state
        if anonymous_pull is not None:
            self._tell(state.name, anonymous_pull)
        return state

    def find(self, subscription_id: str, resource_group: str, name: str) -> RegistryState:
        """The registry at this path, or ARM's 404 (subscription, group or resource)."""
        self._groups.check(subscription_id, resource_group)
        with self._lock:
            state = self._registries.get(name.lower())
        if (
            state is None
            or state.subscription_id.lower() != subscription_id.lower()
            or state.resource_group.lower() != resource_group.lower()
        ):
            raise not_found(f"Microsoft.ContainerRegistry/registries/{name}", resource_group)
        return state

    def _tell(self, name: str, enabled: bool) -> None:
        hook = self.on_anonymous_pull
        if hook is None:
            return
        try:
            hook(name, enabled)
        except Exception as error:  # kept for the test to see
            with self._lock:
                self.hook_errors.append(error)

    # -- the routes ----------------------------------------------------------------------------

    def read(self, caller: Caller, subscription_id: str, resource_group: str, name: str) -> Reply:
        state = self.find(subscription_id, resource_group, name)
        if not caller.principal.can_read:
            raise forbidden(caller, "Microsoft.ContainerRegistry/registries/read", state.id)
        return Reply(200, state.to_json())

    def update(
        self,
        caller: Caller,
        subscription_id: str,
        resource_group: str,
        name: str,
        body: Any,
        *,
        base_url: str,
        api_version: str,
    ) -> Reply:
        """PATCH: 201 `Updating` with `Azure-AsyncOperation`; the change shows when it ends."""
        state = self.find(subscription_id, resource_group, name)
        if not caller.principal.can_write_registry:
            raise forbidden(caller, "Microsoft.ContainerRegistry/registries/write", state.id)
        changes = _registry_changes(body)
        key = state.name.lower()
        op_id = f"registries-{uuid.uuid4()}"
        path = f"{state.id}/operationStatuses/{op_id}"
        url = f"{base_url}{path}?api-version={api_version}"

        def finish(ok: bool) -> list[After]:
            self._pending.pop(key, None)
            current = self._registries[key]
            if not ok:
                self._registries[key] = dataclasses.replace(current, provisioning_state="Failed")
                return []
            updated = dataclasses.replace(current, provisioning_state="Succeeded", **changes)
            self._registries[key] = updated
            if "anonymous_pull" not in changes:
                return []
            return [lambda: self._tell(updated.name, updated.anonymous_pull)]

        with self._lock:
            if key in self._pending:
                raise ArmError(
                    409,
                    "AnotherOperationInProgress",
                    "Another operation on this or dependent resource is in progress. To retrieve "
                    "status of the operation use uri: "
                    f"{self._operations.url_of(self._pending[key])}",
                )
            self._operations.start(
                op_id=op_id, resource_id=state.id, path=path, url=url, finish=finish
            )
            self._pending[key] = op_id
            updating = dataclasses.replace(self._registries[key], provisioning_state="Updating")
            self._registries[key] = updating
        headers = {"Azure-AsyncOperation": url, **self._operations.headers()}
        return Reply(201, updating.to_json(), headers)

    def operation(
        self, caller: Caller, subscription_id: str, resource_group: str, name: str, op_id: str
    ) -> Reply:
        state = self.find(subscription_id, resource_group, name)
        if not caller.principal.can_read:
            raise forbidden(caller, "Microsoft.ContainerRegistry/registries/read", state.id)
        return self._operations.poll(op_id, resource_id=state.id)


_REGISTRY_FIELDS: Mapping[str, tuple[str, type]] = {
    "anonymousPullEnabled": ("anonymous_pull", bool),
    "publicNetworkAccess": ("public_network_access", str),
    "adminUserEnabled": ("admin_user_enabled", bool),
}


def _registry_changes(body: Any) -> dict[str, Any]:
    """What a PATCH body (`RegistryUpdateParameters`) changes, as `RegistryState` fields."""
    if not isinstance(body, dict):
        raise bad_content("The request content was invalid and could not be deserialized.")
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        raise bad_content("The request content was invalid: 'properties' must be an object.")
    changes: dict[str, Any] = {}
    for key, (field, kind) in _REGISTRY_FIELDS.items():
        value = properties.get(key)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise bad_content(
                f"The request content was invalid: '{key}' must be a {kind.__name__}."
            )
        changes[field] = value
    if changes.get("public_network_access", "Enabled") not in ("Enabled", "Disabled"):
        raise bad_content("The value of publicNetworkAccess must be 'Enabled' or 'Disabled'.")
    sku = body.get("sku")
    if isinstance(sku, dict) and sku.get("name"):
        if sku["name"] not in SKUS:
            raise bad_content(f"The sku '{sku['name']}' is not supported by the emulator.")
        changes["sku"] = sku["name"]
    tags = body.get("tags")
    if isinstance(tags, dict):
        changes["tags"] = {str(k): str(v) for k, v in tags.items()}
    return changes


@dataclasses.dataclass(frozen=True)
class CatalogState:
    """A DevCenter catalog, of a dev center or of a project (a snapshot)."""

    subscription_id: str
    resource_group: str
    parent_kind: ParentKind
    parent: str
    name: str
    repo_uri: str
    branch: str
    path: str
    location: str
    sync_state: str
    last_sync_time: datetime.datetime | None
    syncs: int

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.DevCenter/{self.parent_kind}/{self.parent}"
            f"/catalogs/{self.name}"
        )

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return _catalog_key(
            self.subscription_id, self.resource_group, self.parent_kind, self.parent, self.name
        )

    def to_json(self) -> dict[str, Any]:
        """The resource as api-version 2024-02-01 answers it."""
        properties: dict[str, Any] = {
            "gitHub": {"uri": self.repo_uri, "branch": self.branch, "path": self.path},
            "syncType": "Manual",
            "provisioningState": "Succeeded",
            "syncState": self.sync_state,
            "connectionState": "Connected",
            "lastSyncStats": {
                "added": 0,
                "updated": self.syncs,
                "unchanged": 0,
                "removed": 0,
                "validationErrors": 0,
                "synchronizationErrors": 0,
                "syncedCatalogItemTypes": ["EnvironmentDefinition"],
            },
        }
        if self.last_sync_time is not None:
            properties["lastSyncTime"] = iso(self.last_sync_time)
            properties["lastConnectionTime"] = iso(self.last_sync_time)
        return {
            "id": self.id,
            "name": self.name,
            "type": f"Microsoft.DevCenter/{self.parent_kind}/catalogs",
            "properties": properties,
        }


@dataclasses.dataclass(frozen=True)
class CatalogSync:
    """One `sync` action on a catalog, recorded for tests."""

    time: float
    """`time.monotonic()` when it was asked for."""
    subscription_id: str
    resource_group: str
    parent_kind: ParentKind
    parent: str
    catalog: str
    client_id: str
    operation_id: str
    status: str
    """`InProgress`, then `Succeeded` or `Failed` once the operation ended."""


def _catalog_key(
    subscription_id: str, resource_group: str, kind: str, parent: str, name: str
) -> tuple[str, str, str, str, str]:
    return (subscription_id.lower(), resource_group.lower(), kind, parent.lower(), name.lower())


class Catalogs:
    """DevCenter catalogs (`Microsoft.DevCenter/{devcenters,projects}/catalogs`)."""

    def __init__(self, lock: threading.RLock, groups: Groups, operations: Operations) -> None:
        self._lock = lock
        self._groups = groups
        self._operations = operations
        self._catalogs: dict[tuple[str, str, str, str, str], CatalogState] = {}
        self._syncs: list[CatalogSync] = []

    # -- the test's side -----------------------------------------------------------------------

    def add(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        dev_center: str | None,
        project: str | None,
        repo_uri: str,
        branch: str,
        path: str,
        location: str,
    ) -> CatalogState:
        if (dev_center is None) == (project is None):
            raise ValueError("a catalog belongs to exactly one of dev_center, project")
        kind: ParentKind = "devcenters" if dev_center is not None else "projects"
        state = CatalogState(
            subscription_id=subscription_id,
            resource_group=resource_group,
            parent_kind=kind,
            parent=dev_center or project or "",
            name=name,
            repo_uri=repo_uri,
            branch=branch,
            path=path,
            location=location,
            sync_state="Succeeded",
            last_sync_time=None,
            syncs=0,
        )
        with self._lock:
            self._groups.add(subscription_id, resource_group)
            self._catalogs[state.key] = state
        return state

    def get(
        self, name: str, *, dev_center: str | None = None, project: str | None = None
    ) -> CatalogState:
        kind = "devcenters" if dev_center is not None else "projects"
        wanted = (kind, (dev_center or project or "").lower(), name.lower())
        with self._lock:
            for key, state in self._catalogs.items():
                if key[2:] == wanted:
                    return state
        raise KeyError(name)

    @property
    def syncs(self) -> list[CatalogSync]:
        with self._lock:
            return list(self._syncs)

    # -- the routes ----------------------------------------------------------------------------

    def _find(
        self, subscription_id: str, resource_group: str, kind: ParentKind, parent: str, name: str
    ) -> CatalogState:
        self._groups.check(subscription_id, resource_group)
        with self._lock:
            state = self._catalogs.get(
                _catalog_key(subscription_id, resource_group, kind, parent, name)
            )
        if state is None:
            raise not_found(f"Microsoft.DevCenter/{kind}/{parent}/catalogs/{name}", resource_group)
        return state

    def read(
        self,
        caller: Caller,
        subscription_id: str,
        resource_group: str,
        kind: ParentKind,
        parent: str,
        name: str,
    ) -> Reply:
        state = self._find(subscription_id, resource_group, kind, parent, name)
        if not caller.principal.can_read:
            raise forbidden(caller, f"Microsoft.DevCenter/{kind}/catalogs/read", state.id)
        return Reply(200, state.to_json())

    def sync(
        self,
        caller: Caller,
        subscription_id: str,
        resource_group: str,
        kind: ParentKind,
        parent: str,
        name: str,
        *,
        base_url: str,
        api_version: str,
    ) -> Reply:
        """POST sync: 202 with `Azure-AsyncOperation` and `Location`, no body."""
        state = self._find(subscription_id, resource_group, kind, parent, name)
        if not caller.principal.can_sync_catalogs:
            raise forbidden(caller, f"Microsoft.DevCenter/{kind}/catalogs/sync/action", state.id)
        op_id = str(uuid.uuid4())
        path = (
            f"/subscriptions/{state.subscription_id}/providers/Microsoft.DevCenter"
            f"/locations/{state.location}/operationStatuses/{op_id}"
        )
        url = f"{base_url}{path}?api-version={api_version}"
        key = state.key

        def finish(ok: bool) -> list[After]:
            current = self._catalogs[key]
            self._catalogs[key] = dataclasses.replace(
                current,
                sync_state="Succeeded" if ok else "Failed",
                last_sync_time=now() if ok else current.last_sync_time,
                syncs=current.syncs + (1 if ok else 0),
            )
            status = "Succeeded" if ok else "Failed"
            self._syncs = [
                dataclasses.replace(s, status=status) if s.operation_id == op_id else s
                for s in self._syncs
            ]
            return []

        with self._lock:
            self._operations.start(
                op_id=op_id, resource_id=state.id, path=path, url=url, finish=finish
            )
            self._catalogs[key] = dataclasses.replace(self._catalogs[key], sync_state="InProgress")
            self._syncs.append(
                CatalogSync(
                    time=time.monotonic(),
                    subscription_id=state.subscription_id,
                    resource_group=state.resource_group,
                    parent_kind=kind,
                    parent=state.parent,
                    catalog=state.name,
                    client_id=caller.client_id,
                    operation_id=op_id,
                    status="InProgress",
                )
            )
        headers = {"Azure-AsyncOperation": url, "Location": url, **self._operations.headers()}
        return Reply(202, None, headers)

    def operation(self, caller: Caller, subscription_id: str, op_id: str) -> Reply:
        self._groups.check(subscription_id, None)
        if not caller.principal.can_read:
            raise forbidden(
                caller,
                "Microsoft.DevCenter/locations/operationStatuses/read",
                f"/subscriptions/{subscription_id}",
            )
        return self._operations.poll(op_id)
