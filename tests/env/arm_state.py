"""What the ARM emulator's parts share (`tests.env.arm`): answers, callers, groups, operations.

Pure, no I/O. A route answers with a `Reply` or raises `ArmError`, whose `body()` is ARM's
error shape `{"error": {"code": ..., "message": ...}}`. `Caller` is who signed in (the app and
its `Principal`, with what ARM lets it do); `forbidden()` and `not_found()` word ARM's 403 and
404 as ARM does. `Groups` knows which subscriptions and resource groups exist. `Operations` runs
the long-running operations of the resources (`arm_resources`): `InProgress` for a number of
polls, then `Succeeded` (the change becomes visible) or, when a test injected it, `Failed`.

All parts share one re-entrant lock, so that an operation's end changes a resource atomically.
Names are case-insensitive, as in Azure.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

After = Callable[[], None]
"""Something to do once the lock is released (tell a hook)."""


class ArmError(Exception):
    """An ARM error answer: status, `error.code`, `error.message` (and extra headers)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclasses.dataclass(frozen=True)
class Reply:
    """A success answer to one request."""

    status: int
    body: Any
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Principal:
    """A service principal (app registration) that can sign in, and what ARM lets it do."""

    secret: str = dataclasses.field(repr=False)
    object_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    can_read: bool = True
    can_write_registry: bool = True
    """`Microsoft.ContainerRegistry/registries/write` (the PATCH of `begin_update`)."""
    can_assign_roles: bool = True
    """`Microsoft.Authorization/roleAssignments/write` and `/delete`."""
    can_sync_catalogs: bool = True
    """`Microsoft.DevCenter/{devcenters,projects}/catalogs/sync/action`."""


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who sent an ARM request: the app (client) id and its principal."""

    client_id: str
    principal: Principal


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def iso(moment: datetime.datetime) -> str:
    """ARM's timestamps: ISO 8601, UTC, `Z`."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def forbidden(caller: Caller, action: str, scope: str) -> ArmError:
    """ARM's 403 for a caller missing an action over a scope."""
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{caller.client_id}' with object id '{caller.principal.object_id}' does not "
        f"have authorization to perform action '{action}' over scope '{scope}' or the scope is "
        "invalid. If access was recently granted, please refresh your credentials.",
    )


def not_found(resource: str, resource_group: str) -> ArmError:
    """ARM's 404 for a resource (`Provider/type/name`) missing from an existing group."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource}' under resource group '{resource_group}' was not found. For "
        "more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def bad_content(message: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent", message)


class Groups:
    """The subscriptions and resource groups that exist (made by adding resources to them)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._groups: dict[str, set[str]] = {}

    def add(self, subscription_id: str, resource_group: str) -> None:
        with self._lock:
            self._groups.setdefault(subscription_id.lower(), set()).add(resource_group.lower())

    def check(self, subscription_id: str, resource_group: str | None) -> None:
        """404 `SubscriptionNotFound` / `ResourceGroupNotFound`, as ARM answers them."""
        with self._lock:
            groups = self._groups.get(subscription_id.lower())
        if groups is None:
            raise ArmError(
                404,
                "SubscriptionNotFound",
                f"The subscription '{subscription_id}' could not be found.",
            )
        if resource_group is not None and resource_group.lower() not in groups:
            raise ArmError(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{resource_group}' could not be found.",
            )


@dataclasses.dataclass
class _Operation:
    id: str
    resource_id: str
    path: str
    """The status resource's id: the path of `url`."""
    url: str
    polls_left: int
    failure: tuple[str, str] | None
    finish: Callable[[bool], list[After]]
    """Called once, under the lock, with whether it succeeded; returns what to do after."""
    started: datetime.datetime
    status: str = "InProgress"
    ended: datetime.datetime | None = None


@dataclasses.dataclass
class _Failure:
    path_contains: str
    code: str
    message: str
    times: int


class Operations:
    """Long-running operations, polled at their `Azure-AsyncOperation` URL."""

    def __init__(self, lock: threading.RLock, *, polls: int, retry_after: float | None) -> None:
        self._lock = lock
        self.polls = polls
        """How many polls answer `InProgress` before the one that ends the operation."""
        self.retry_after = retry_after
        self._operations: dict[str, _Operation] = {}
        self._failures: list[_Failure] = []

    def headers(self) -> dict[str, str]:
        """The delay to poll after: whole seconds in `Retry-After` as ARM sends it (the SDKs
        parse the first answer's as an int); a fraction in `retry-after-ms`, which azure-core
        honours too, so that tests poll fast. None: no header (the SDK's `polling_interval`)."""
        delay = self.retry_after
        if delay is None:
            return {}
        if float(delay).is_integer():
            return {"Retry-After": str(int(delay))}
        return {"retry-after-ms": str(round(delay * 1000))}

    def inject_failure(self, path_contains: str, *, code: str, message: str, times: int) -> None:
        with self._lock:
            self._failures.append(_Failure(path_contains.lower(), code, message, times))

    def url_of(self, op_id: str) -> str:
        with self._lock:
            return self._operations[op_id].url

    def start(
        self,
        *,
        op_id: str,
        resource_id: str,
        path: str,
        url: str,
        finish: Callable[[bool], list[After]],
    ) -> None:
        """Register an operation on a resource; an injected failure may claim it."""
        with self._lock:
            failure = None
            for injected in self._failures:
                if injected.path_contains in resource_id.lower():
                    injected.times -= 1
                    failure = (injected.code, injected.message)
                    break
            self._failures = [f for f in self._failures if f.times > 0]
            self._operations[op_id] = _Operation(
                id=op_id,
                resource_id=resource_id,
                path=path,
                url=url,
                polls_left=self.polls,
                failure=failure,
                finish=finish,
                started=now(),
            )

    def _end(self, op: _Operation) -> list[After]:
        ok = op.failure is None
        op.status = "Succeeded" if ok else "Failed"
        op.ended = now()
        return op.finish(ok)

    def finish_all(self) -> int:
        """End every operation still in progress, as ARM does on its own whether anyone polls or
        not (a client killed mid-operation never polls again); how many ended."""
        after: list[After] = []
        with self._lock:
            pending = [op for op in self._operations.values() if op.status == "InProgress"]
            for op in pending:
                after.extend(self._end(op))
        for action in after:
            action()
        return len(pending)

    def poll(self, op_id: str, *, resource_id: str | None = None) -> Reply:
        """One poll of an operation's status; the poll after the last `InProgress` ends it."""
        after: list[After] = []
        with self._lock:
            op = self._operations.get(op_id)
            if op is None or (
                resource_id is not None and op.resource_id.lower() != resource_id.lower()
            ):
                raise ArmError(
                    404, "OperationNotFound", f"The operation '{op_id}' could not be found."
                )
            if op.status == "InProgress":
                if op.polls_left > 0:
                    op.polls_left -= 1
                else:
                    after = self._end(op)
            body: dict[str, Any] = {
                "id": op.path,
                "name": op.id,
                "resourceId": op.resource_id,
                "status": op.status,
                "startTime": iso(op.started),
            }
            if op.ended is not None:
                body["endTime"] = iso(op.ended)
                body["percentComplete"] = 100.0
            if op.status == "Failed" and op.failure is not None:
                body["error"] = {"code": op.failure[0], "message": op.failure[1]}
            headers = self.headers() if op.status == "InProgress" else {}
        for action in after:
            action()
        return Reply(200, body, headers)
