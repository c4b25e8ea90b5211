"""Role assignments and built-in role definitions of the ARM emulator (`tests.env.arm`).

Pure, no I/O; api-version 2022-04-01 shapes. `PUT {scope}/providers/Microsoft.Authorization/
roleAssignments/{guid}` with `roleDefinitionId` and `principalId` creates one (201); the same
name again with the same content is answered as created, with other content it is 400
`RoleAssignmentUpdateNotPermitted`; the same (scope, role, principal) under another name is
409 `RoleAssignmentExists`, as ARM answers. Listing for a scope takes `$filter` as the SDK sends
it: `atScope()` (at and above the scope), `principalId eq '{id}'` / `assignedTo('{id}')`
(that principal's, at, above and below), or both joined by `and`; without a filter, at, above
and below. The scope must exist (subscription, group, and the registry when it names one).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from tests.env.arm_resources import Registries
from tests.env.arm_state import ArmError, Caller, Groups, Reply, bad_content, forbidden, iso, now

ACR_PULL = "7f951dff-4ed2-4b4d-bf4a-a6a37f0c2e1b"
"""The built-in AcrPull role definition id (the same in every tenant)."""

BUILTIN_ROLES: Mapping[str, tuple[str, str]] = {
    ACR_PULL: ("AcrPull", "Microsoft.ContainerRegistry/registries/pull/read"),
    "8311e382-0749-4cb8-b61a-304f252e45ec": ("AcrPush", "Microsoft.ContainerRegistry/registries/*"),
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": ("Reader", "*/read"),
    "b24988ac-6180-42a0-ab88-20f7382dd24c": ("Contributor", "*"),
    "8e3af657-a8ff-443c-a75f-2fe8c4bcb635": ("Owner", "*"),
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": (
        "User Access Administrator",
        "Microsoft.Authorization/*",
    ),
    "331c37c6-af14-46d9-b9f4-e1909e1b95a0": ("DevCenter Project Admin", "Microsoft.DevCenter/*"),
    "18e40d4e-8d2e-438d-97e1-9528336e149c": (
        "Deployment Environments User",
        "Microsoft.DevCenter/projects/read",
    ),
}
"""The built-in roles the emulator knows: id -> (roleName, one representative action)."""

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_ROLE_DEFINITION_ID = re.compile(
    r"^(?:/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/"
    r"(?P<guid>[^/]+)$",
    re.I,
)


@dataclasses.dataclass(frozen=True)
class RoleAssignment:
    """One role assignment, created through ARM or seeded by a test."""

    name: str
    scope: str
    role: str
    """The role definition GUID (lower case)."""
    principal_id: str
    principal_type: str
    created_by: str | None
    """The object id of the principal that created it (None: seeded)."""
    created: datetime.datetime

    @property
    def id(self) -> str:
        return f"{self.scope}/providers/Microsoft.Authorization/roleAssignments/{self.name}"

    @property
    def role_definition_id(self) -> str:
        return _role_definition_id(self.scope, self.role)

    def to_json(self) -> dict[str, Any]:
        """The resource as api-version 2022-04-01 answers it."""
        return {
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": None,
                "conditionVersion": None,
                "createdOn": iso(self.created),
                "updatedOn": iso(self.created),
                "createdBy": self.created_by,
                "updatedBy": self.created_by,
                "delegatedManagedIdentityResourceId": None,
                "description": None,
            },
            "id": self.id,
            "type": "Microsoft.Authorization/roleAssignments",
            "name": self.name,
        }


class RoleAssignments:
    """`Microsoft.Authorization/roleAssignments`, and the role definitions they name."""

    def __init__(self, lock: threading.RLock, groups: Groups, registries: Registries) -> None:
        self._lock = lock
        self._groups = groups
        self._registries = registries
        self._assignments: dict[str, RoleAssignment] = {}

    # -- the test's side -----------------------------------------------------------------------

    def add(
        self,
        scope: str,
        role: str,
        principal_id: str,
        *,
        name: str | None = None,
        principal_type: str = "ServicePrincipal",
    ) -> RoleAssignment:
        """Seed an assignment that exists already (made by someone else)."""
        assignment = RoleAssignment(
            name=name or str(uuid.uuid4()),
            scope=scope,
            role=role.lower(),
            principal_id=principal_id,
            principal_type=principal_type,
            created_by=None,
            created=now(),
        )
        with self._lock:
            self._assignments[assignment.id.lower()] = assignment
        return assignment

    def all(self, scope: str | None = None) -> list[RoleAssignment]:
        """Every assignment, or those made exactly at `scope`."""
        with self._lock:
            found = list(self._assignments.values())
        if scope is None:
            return found
        return [a for a in found if _same_scope(a.scope, scope)]

    # -- the routes ----------------------------------------------------------------------------

    def check_scope(self, scope: str) -> None:
        """A scope must exist: its subscription, its group, and the registry it may name."""
        parts = [p for p in scope.split("/") if p]
        if len(parts) < 2 or parts[0].lower() != "subscriptions":
            raise ArmError(
                400,
                "InvalidScope",
                f"The scope '{scope}' is not valid for this emulator: use a subscription, a "
                "resource group or a resource.",
            )
        group = parts[3] if len(parts) >= 4 and parts[2].lower() == "resourcegroups" else None
        self._groups.check(parts[1], group)
        if (
            group is not None
            and len(parts) >= 8
            and parts[5].lower() == "microsoft.containerregistry"
            and parts[6].lower() == "registries"
        ):
            self._registries.find(parts[1], group, parts[7])

    def put(self, caller: Caller, scope: str, name: str, body: Any) -> Reply:
        self.check_scope(scope)
        target = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        if not caller.principal.can_assign_roles:
            raise forbidden(caller, "Microsoft.Authorization/roleAssignments/write", target)
        if not _GUID.match(name):
            raise ArmError(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a "
                "GUID.",
            )
        properties = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(properties, dict):
            raise bad_content("The request content was invalid: 'properties' is required.")
        definition = str(properties.get("roleDefinitionId") or "")
        principal_id = str(properties.get("principalId") or "")
        match = _ROLE_DEFINITION_ID.match(definition)
        if match is None:
            raise ArmError(
                400,
                "InvalidRoleDefinitionId",
                f"The role definition ID '{definition}' is not valid.",
            )
        role = match["guid"].lower()
        if role not in BUILTIN_ROLES:
            raise ArmError(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{match['guid']}' does not exist.",
            )
        if not _GUID.match(principal_id):
            raise ArmError(
                400,
                "InvalidPrincipalId",
                "A valid principal ID must be provided for role assignment.",
            )
        assignment = RoleAssignment(
            name=name,
            scope=scope,
            role=role,
            principal_id=principal_id,
            principal_type=str(properties.get("principalType") or "ServicePrincipal"),
            created_by=caller.principal.object_id,
            created=now(),
        )
        with self._lock:
            existing = self._assignments.get(assignment.id.lower())
            if existing is not None:
                if (existing.role, existing.principal_id.lower()) != (role, principal_id.lower()):
                    raise ArmError(
                        400,
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be "
                        "updated.",
                    )
                return Reply(201, existing.to_json())
            for other in self._assignments.values():
                if (
                    _same_scope(other.scope, scope)
                    and other.role == role
                    and other.principal_id.lower() == principal_id.lower()
                ):
                    raise ArmError(
                        409, "RoleAssignmentExists", "The role assignment already exists."
                    )
            self._assignments[assignment.id.lower()] = assignment
        return Reply(201, assignment.to_json())

    def read(self, caller: Caller, scope: str, name: str) -> Reply:
        self.check_scope(scope)
        if not caller.principal.can_read:
            raise forbidden(caller, "Microsoft.Authorization/roleAssignments/read", scope)
        key = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}".lower()
        with self._lock:
            found = self._assignments.get(key)
        if found is None:
            raise ArmError(
                404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found."
            )
        return Reply(200, found.to_json())

    def delete(self, caller: Caller, scope: str, name: str) -> Reply:
        """200 with the deleted assignment, or 204 when there was none."""
        self.check_scope(scope)
        target = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        if not caller.principal.can_assign_roles:
            raise forbidden(caller, "Microsoft.Authorization/roleAssignments/delete", target)
        with self._lock:
            found = self._assignments.pop(target.lower(), None)
        if found is None:
            return Reply(204, None)
        return Reply(200, found.to_json())

    def list(self, caller: Caller, scope: str, query: str | None) -> Reply:
        self.check_scope(scope)
        if not caller.principal.can_read:
            raise forbidden(caller, "Microsoft.Authorization/roleAssignments/read", scope)
        at_scope, principal = _parse_assignment_filter(query)
        chosen = []
        for assignment in self.all():
            above = _within(scope, assignment.scope)
            below = _within(assignment.scope, scope)
            if not (above or (below and not at_scope)):
                continue
            if principal is not None and assignment.principal_id.lower() != principal.lower():
                continue
            chosen.append(assignment.to_json())
        return Reply(200, {"value": chosen})

    @staticmethod
    def read_definition(caller: Caller, scope: str, role: str) -> Reply:
        if not caller.principal.can_read:
            raise forbidden(caller, "Microsoft.Authorization/roleDefinitions/read", scope)
        if role.lower() not in BUILTIN_ROLES:
            raise ArmError(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{role}' does not exist.",
            )
        return Reply(200, _role_definition(scope, role.lower()))

    @staticmethod
    def list_definitions(caller: Caller, scope: str, query: str | None) -> Reply:
        """`$filter=roleName eq '...'`, or none."""
        if not caller.principal.can_read:
            raise forbidden(caller, "Microsoft.Authorization/roleDefinitions/read", scope)
        wanted: str | None = None
        if query:
            match = re.fullmatch(r"\s*roleName\s+eq\s+'([^']*)'\s*", query, re.I)
            if match is None:
                raise ArmError(400, "UnsupportedQuery", f"The filter '{query}' is not supported.")
            wanted = match[1].lower()
        roles = [
            _role_definition(scope, guid)
            for guid, (role_name, _) in BUILTIN_ROLES.items()
            if wanted is None or role_name.lower() == wanted
        ]
        return Reply(200, {"value": roles})


def _same_scope(one: str, other: str) -> bool:
    return one.rstrip("/").lower() == other.rstrip("/").lower()


def _within(scope: str, ancestor: str) -> bool:
    """Whether `scope` is `ancestor` or below it."""
    scope, ancestor = scope.rstrip("/").lower(), ancestor.rstrip("/").lower()
    return scope == ancestor or scope.startswith(ancestor + "/")


def _subscription_of(scope: str) -> str | None:
    parts = [p for p in scope.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return parts[1]
    return None


def _role_definition_id(scope: str, guid: str) -> str:
    """ARM names a role definition under the scope's subscription, if any."""
    sub = _subscription_of(scope)
    prefix = f"/subscriptions/{sub}" if sub else ""
    return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def _parse_assignment_filter(query: str | None) -> tuple[bool, str | None]:
    """A role assignment list's `$filter` -> (atScope, the principal id or None)."""
    if not query:
        return False, None
    at_scope = False
    principal: str | None = None
    for clause in re.split(r"\s+and\s+", query.strip(), flags=re.I):
        if re.fullmatch(r"atScope\(\)", clause, re.I):
            at_scope = True
            continue
        match = re.fullmatch(r"principalId\s+eq\s+'([^']+)'|assignedTo\('([^']+)'\)", clause, re.I)
        if match is None:
            raise ArmError(
                400,
                "UnsupportedQuery",
                f"The filter '{query}' is not supported. Supported filters are either "
                "'atScope()' or 'principalId eq '{value}' or assignedTo('{value}')'.",
            )
        principal = match[1] or match[2]
    return at_scope, principal


def _role_definition(scope: str, guid: str) -> dict[str, Any]:
    role_name, action = BUILTIN_ROLES[guid]
    return {
        "properties": {
            "roleName": role_name,
            "type": "BuiltInRole",
            "description": f"{role_name} (emulated built-in role)",
            "assignableScopes": ["/"],
            "permissions": [
                {"actions": [action], "notActions": [], "dataActions": [], "notDataActions": []}
            ],
            "createdOn": "2018-10-29T17:52:32.5201177Z",
            "updatedOn": "2021-11-11T20:13:07.6670151Z",
            "createdBy": None,
            "updatedBy": None,
        },
        "id": _role_definition_id(scope, guid),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": guid,
    }
