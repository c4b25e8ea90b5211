"""Azure resource ids, the AcrPull role, and deterministic role assignment names.

Pure: no I/O. Role assignment names are GUIDs the caller chooses; deriving them with uuid5 from
(scope, role definition, principal) makes a create retried after a crash hit the same name, so it
is idempotent instead of leaving a duplicate. ARM ids are case-insensitive: inputs are lowercased
before hashing so that two spellings of one scope give one name.
"""

from __future__ import annotations

import re
import uuid

from controller.api import spec

ACR_PULL_ROLE = "7f951dff-4ed2-4b4d-bf4a-a6a37f0c2e1b"
"""The built-in AcrPull role's id (the same in every cloud)."""

ASSIGNMENT_NAMESPACE = uuid.uuid5(
    uuid.NAMESPACE_URL, "https://ade-runner-operator/role-assignments"
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def registry_id(acr: spec.AcrRef) -> str:
    return (
        f"/subscriptions/{acr.subscription_id}/resourceGroups/{acr.resource_group}"
        f"/providers/Microsoft.ContainerRegistry/registries/{acr.name}"
    )


def catalog_id(target: spec.CatalogSync) -> str:
    """The dev center catalog's or the project catalog's resource id."""
    parent = (
        f"devcenters/{target.dev_center}" if target.dev_center else f"projects/{target.project}"
    )
    return (
        f"/subscriptions/{target.subscription_id}/resourceGroups/{target.resource_group}"
        f"/providers/Microsoft.DevCenter/{parent}/catalogs/{target.catalog}"
    )


def role_definition_id(subscription_id: str, role: str = ACR_PULL_ROLE) -> str:
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


def role_of(definition_id: str) -> str:
    """The role's GUID from a role definition id (any scope prefix), lowercased."""
    return definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def assignment_name(scope: str, definition_id: str, principal_id: str) -> str:
    """The role assignment name (a GUID) for `principal_id` holding the role at `scope`."""
    key = "|".join((scope.rstrip("/").lower(), role_of(definition_id), principal_id.lower()))
    return str(uuid.uuid5(ASSIGNMENT_NAMESPACE, key))
