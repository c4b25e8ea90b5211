"""A WebhookReceiver's path and status (pure).

The path is `/hook/` and the SHA-256 of the token, the name and the namespace (as Flux's
`Receiver`): unguessable without the token, and different for two receivers sharing a Secret. It
changes with the token. The status says Ready with the path, or Stalled with what to fix in the
Secret; it is written only when it changes (an idle operator writes nothing).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from controller.api import conditions as types
from controller.observe import conditions
from controller.observe import status as status_
from controller.receivers import authentication

PREFIX = "/hook/"


class SecretProblem(Exception):
    """The receiver's Secret cannot verify events: `reason` for the condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def webhook_path(token: str, *, name: str, namespace: str) -> str:
    return PREFIX + hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()


def credentials(
    data: Mapping[str, bytes] | None, *, secret_name: str
) -> authentication.Credentials:
    """The receiver's credentials from its Secret's `data` (None: there is no such Secret), or
    `SecretProblem` naming the field and the key."""
    field = f"spec.secretRef.name ({secret_name!r})"
    if data is None:
        raise SecretProblem("SecretNotFound", f"{field}: the Secret does not exist")
    raw = data.get("token")
    if raw is None:
        raise SecretProblem("TokenMissing", f"{field}: the Secret has no key 'token'")
    try:
        token = raw.decode().strip()
        username = data["username"].decode().strip() if "username" in data else None
    except UnicodeDecodeError:
        raise SecretProblem(
            "TokenInvalid", f"{field}: 'token' or 'username' is not UTF-8"
        ) from None
    if len(token) < authentication.MIN_TOKEN_LENGTH:
        raise SecretProblem(
            "TokenTooShort",
            f"{field}: 'token' must have at least {authentication.MIN_TOKEN_LENGTH} characters "
            "(e.g. `head -c 24 /dev/urandom | base64`)",
        )
    return authentication.Credentials(token=token, username=username or None)


@dataclasses.dataclass(frozen=True)
class Observed:
    kind: str
    path: str | None
    problem: SecretProblem | None
    listening: bool
    """Whether the operator serves receivers at all (`ADE_RECEIVER_PORT` not 0)."""


def status_patch(
    old: Mapping[str, Any], observed: Observed, *, generation: int, now: str
) -> dict[str, Any]:
    """The merge patch that brings the status `old` to what is `observed` ({} if none)."""
    if observed.problem is not None:
        ready = conditions.Condition.false(
            types.READY, observed.problem.reason, str(observed.problem)
        )
        stalled: conditions.Condition | None = conditions.Condition.true(
            types.STALLED, observed.problem.reason, str(observed.problem)
        )
    elif not observed.listening:
        ready = conditions.Condition.false(
            types.READY,
            "ReceiverDisabled",
            "the operator serves no receivers (ADE_RECEIVER_PORT is 0; the chart's ports.receiver)",
        )
        stalled = None
    else:
        ready = conditions.Condition.true(
            types.READY,
            "Listening",
            f"POST {observed.kind} events to {observed.path} on the operator's receiver port",
        )
        stalled = None
    new = {
        "observedGeneration": generation,
        "webhookPath": observed.path,
        "conditions": conditions.merge(
            old.get("conditions") or [],
            {types.READY: ready, types.STALLED: stalled},
            generation=generation,
            now=now,
        ),
    }
    return status_.merge_patch(old, new)
