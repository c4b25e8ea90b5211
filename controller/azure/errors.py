"""Azure SDK exceptions turned into the operator's errors, with messages safe to show.

Pure: no I/O; it only reads exceptions azure-core has already built (status, headers, ARM's error
body `{"error": {"code", "message"}}`). What each failure means for the reconcile:

| failure | error | reason |
| --- | --- | --- |
| the credential cannot get a token (`CredentialRejected`) | Stalled | `AzureCredentialsInvalid` |
| 401 from ARM | Stalled | `RegistryAccessDenied` / `CatalogSyncDenied` |
| 403 (`AuthorizationFailed`: the action and principal are named) | Stalled | as for 401 |
| 404 | Stalled | `RegistryNotFound` / `CatalogNotFound` |
| 400 `PrincipalNotFound` (a new identity not replicated yet) | Transient | `PrincipalNotFound` |
| other 400 and 4xx | Stalled | `AzureRequestInvalid` |
| 409 (not `RoleAssignmentExists`, which callers treat as success) | Transient | `AzureConflict` |
| 429 | Transient, `retry_after` kept | `AzureThrottled` |
| 408, 5xx, time-outs, connection errors | Transient, `retry_after` kept | `AzureUnavailable` |
| an LRO that ended Failed or Canceled | Transient | `RegistryUpdateFailed` / `CatalogSyncFailed` |

Every message goes through `scrub`: literal secrets are replaced, and anything shaped like a JWT or
a bearer token is cut, so no token or client secret reaches a condition, an Event or a log.
ARM's messages carry object ids and scopes; those are kept, they say who lacks what.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from typing import Final, Literal

from azure.core import exceptions as azure_exceptions
from azure.core.polling import base_polling

from controller import errors


class Reason:
    CREDENTIALS_INVALID: Final = "AzureCredentialsInvalid"
    REGISTRY_ACCESS_DENIED: Final = "RegistryAccessDenied"
    REGISTRY_NOT_FOUND: Final = "RegistryNotFound"
    REGISTRY_SKU_UNSUPPORTED: Final = "RegistrySkuUnsupported"
    REGISTRY_UPDATE_FAILED: Final = "RegistryUpdateFailed"
    CATALOG_SYNC_DENIED: Final = "CatalogSyncDenied"
    CATALOG_NOT_FOUND: Final = "CatalogNotFound"
    CATALOG_SYNC_FAILED: Final = "CatalogSyncFailed"
    PRINCIPAL_NOT_FOUND: Final = "PrincipalNotFound"
    REQUEST_INVALID: Final = "AzureRequestInvalid"
    CONFLICT: Final = "AzureConflict"
    THROTTLED: Final = "AzureThrottled"
    UNAVAILABLE: Final = "AzureUnavailable"


ROLE_ASSIGNMENT_EXISTS: Final = "RoleAssignmentExists"

MAX_MESSAGE = 600


class CredentialRejected(azure_exceptions.ClientAuthenticationError):
    """The credential could not get a token: Entra ID refused it, or no identity is available.

    Raised by the operator's credential wrapper (`controller.azure.credentials`) in place of
    azure-identity's error, so that it is told apart from a 401 of Resource Manager. Its message
    is already scrubbed.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message=message)


Kind = Literal["registry", "catalog"]


@dataclasses.dataclass(frozen=True)
class Target:
    """What an operation acted on and as whom: the words of every message about it."""

    operation: str
    """`registries.get`, `registries.update`, `roleAssignments.create`, `catalogs.sync`..."""
    resource_id: str
    kind: Kind = "registry"
    identity: str = "the operator's Azure identity"
    secrets: tuple[str, ...] = dataclasses.field(default=(), repr=False)

    @property
    def denied_reason(self) -> str:
        if self.kind == "catalog":
            return Reason.CATALOG_SYNC_DENIED
        return Reason.REGISTRY_ACCESS_DENIED

    @property
    def not_found_reason(self) -> str:
        if self.kind == "catalog":
            return Reason.CATALOG_NOT_FOUND
        return Reason.REGISTRY_NOT_FOUND

    @property
    def failed_reason(self) -> str:
        if self.kind == "catalog":
            return Reason.CATALOG_SYNC_FAILED
        return Reason.REGISTRY_UPDATE_FAILED


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|access_token|client_secret|assertion)([\"'=:\s]+)[^\s\"'&,;]+")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` on one line, with every literal of `secrets`, JWT and bearer value replaced by ***."""
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, "***")
    text = _JWT.sub("***", text)
    text = _BEARER.sub(r"\1\2***", text)
    text = " ".join(errors.redact(text).split())  # one line: conditions and Events
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return text


def arm_error(error: azure_exceptions.HttpResponseError) -> tuple[str, str]:
    """ARM's error `(code, message)`, parsed by azure-core from the body; empty when absent."""
    parsed = error.error
    if parsed is not None and (parsed.code or parsed.message):
        return str(parsed.code or ""), str(parsed.message or "")
    return "", str(error.reason or "")


def lro_failed(error: azure_exceptions.HttpResponseError) -> bool:
    """Whether a long-running operation ended Failed/Canceled (not an HTTP error status)."""
    for cause in (error.__cause__, error.inner_exception):
        if isinstance(cause, base_polling.OperationFailed):
            return True
    return error.status_code is not None and error.status_code < 400


_ACTION = re.compile(r"perform action '([^']+)'")
_OBJECT_ID = re.compile(r"object id '([^']+)'")
_CLIENT = re.compile(r"client '([^']+)'")


def denied_action(message: str) -> tuple[str | None, str | None]:
    """`(action, principal)` named by an ARM AuthorizationFailed message, when present."""
    action = _ACTION.search(message)
    principal = _OBJECT_ID.search(message) or _CLIENT.search(message)
    return (action.group(1) if action else None), (principal.group(1) if principal else None)


def role_hint(action: str) -> str:
    """A built-in role that grants `action`, to say what to grant."""
    lowered = action.lower()
    if lowered.startswith("microsoft.authorization/roleassignments/write"):
        return "User Access Administrator or Role Based Access Control Administrator"
    if lowered.endswith("/read"):
        return "Reader"
    return "Contributor"


def retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds from `Retry-After` (seconds or an HTTP date) or `retry-after-ms`; None if absent."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    raw = lowered.get("retry-after", "").strip()
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = lowered.get(name, "").strip()
        if raw:
            try:
                return max(0.0, float(raw) / 1000.0)
            except ValueError:
                return None
    return None


def _headers(error: azure_exceptions.HttpResponseError) -> Mapping[str, str] | None:
    headers = getattr(error.response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def status_of(error: BaseException) -> int | str:
    """What a metric records for a failed operation: the HTTP status, or a word."""
    if isinstance(error, CredentialRejected):
        return "credentials"
    if isinstance(error, azure_exceptions.HttpResponseError):
        if lro_failed(error):
            return "failed"
        return error.status_code or "error"
    timeouts = (
        TimeoutError,
        azure_exceptions.ServiceRequestTimeoutError,
        azure_exceptions.ServiceResponseTimeoutError,
    )
    if isinstance(error, timeouts):
        return "timeout"
    if isinstance(
        error, azure_exceptions.ServiceRequestError | azure_exceptions.ServiceResponseError
    ):
        return "unreachable"
    if isinstance(error, errors.ReconcileError):
        return error.reason
    return "error"


def to_reconcile_error(error: BaseException, target: Target) -> errors.ReconcileError | None:
    """The operator's error for `error` raised by an SDK call on `target`; None: not Azure's."""
    if isinstance(error, errors.ReconcileError):
        return error
    op = target.operation
    if isinstance(error, CredentialRejected):
        text = scrub(str(error.message), target.secrets)
        return errors.StalledError(
            Reason.CREDENTIALS_INVALID,
            f"{op}: {target.identity} could not get a token for Azure Resource Manager: {text}",
        )
    if isinstance(error, azure_exceptions.HttpResponseError):
        return _from_response(error, target)
    if isinstance(error, TimeoutError):
        return errors.TransientError(Reason.UNAVAILABLE, f"{op}: Azure did not answer in time")
    if isinstance(error, azure_exceptions.AzureError):
        # ServiceRequestError (connection, TLS, DNS), ServiceResponseError (read), time-outs.
        text = scrub(str(error.message), target.secrets)
        return errors.TransientError(
            Reason.UNAVAILABLE, f"{op}: cannot reach Azure Resource Manager: {text}"
        )
    return None


def _from_response(
    error: azure_exceptions.HttpResponseError, target: Target
) -> errors.ReconcileError:
    op = target.operation
    code, raw_message = arm_error(error)
    message = scrub(raw_message, target.secrets)
    said = f"{code}: {message}" if code else message
    status = error.status_code
    after = retry_after(_headers(error))
    if lro_failed(error):
        return errors.TransientError(
            target.failed_reason,
            f"{op} on {target.resource_id} did not succeed: {said}",
            retry_after=after,
            paced=True,
        )
    if status == 401:
        return errors.StalledError(
            target.denied_reason,
            f"{op}: authentication to Azure Resource Manager failed for {target.identity}: {said}",
        )
    if status == 403:
        action, principal = denied_action(raw_message)
        who = f"principal {principal}" if principal else target.identity
        if action:
            text = (
                f"{op}: {who} lacks permission {action} on {target.resource_id}: "
                f"grant it {role_hint(action)} there ({code or 'Forbidden'})"
            )
        else:
            text = f"{op}: {who} is not allowed to act on {target.resource_id}: {said}"
        return errors.StalledError(target.denied_reason, text)
    if status == 404:
        noun = "catalog" if target.kind == "catalog" else "registry"
        return errors.StalledError(
            target.not_found_reason, f"{op}: {noun} {target.resource_id} was not found ({said})"
        )
    if status == 400 and code == "PrincipalNotFound":
        return errors.TransientError(
            Reason.PRINCIPAL_NOT_FOUND,
            f"{op}: {said} (a new identity can take minutes to replicate)",
            retry_after=after,
            paced=True,
        )
    if status == 409:
        return errors.TransientError(
            Reason.CONFLICT,
            f"{op} on {target.resource_id}: conflict: {said}",
            retry_after=after,
            paced=True,
        )
    if status == 429:
        return errors.TransientError(
            Reason.THROTTLED,
            f"{op}: Azure Resource Manager is throttling: {said}",
            retry_after=after,
            paced=True,
        )
    if status is not None and (status == 408 or status >= 500):
        return errors.TransientError(
            Reason.UNAVAILABLE,
            f"{op}: Azure Resource Manager answered {status}: {said}",
            retry_after=after,
            paced=True,
        )
    return errors.StalledError(
        Reason.REQUEST_INVALID, f"{op} on {target.resource_id} was refused ({status}): {said}"
    )
