"""The registry client's errors: one type per failure, each naming the registry and repository,
and `as_reconcile_error`, their meaning for a reconcile step (pure).

The same error can mean different things in different steps, so the step says which it is in:

| error | any step | reading back an image just pushed (`pushed=`) |
|---|---|---|
| `RegistryAuthError` | Stalled(`auth_reason`) | Stalled(`auth_reason`) |
| `PlatformNotFound` | Stalled(`PlatformNotFound`) | Stalled(`PlatformNotFound`) |
| `RegistryUnavailable` | Transient(`RegistryUnavailable`, its `retry_after`) | same |
| `ManifestNotFound` | Transient(`RegistryError`) | Transient(`ImageNotFound`): not visible yet |
| `BlobNotFound` | Transient(`RegistryError`) | Stalled(`ImageNotConformant`) |
| `DigestMismatch` | Transient(`RegistryError`) | Transient(`RegistryError`) |
| `RegistryProtocolError` | Transient(`RegistryError`) | Stalled(`ImageNotConformant`) |

A `DigestMismatch` (bytes that are not the digest asked for or named) is never the image's
fault: content is addressed by its digest, so the registry, or something on the way, damaged
it. It is retried, with the registry and both digests named, never stalled on.

A step for which a missing manifest is not a failure (a base image that may not exist yet)
catches `ManifestNotFound` before mapping the rest.

No message or `repr` carries a credential or a token.
"""

from __future__ import annotations

from typing import Final

from controller import errors


class Reason:
    """The condition reasons `as_reconcile_error` gives (the auth reason is the caller's)."""

    PLATFORM_NOT_FOUND: Final = "PlatformNotFound"
    UNAVAILABLE: Final = "RegistryUnavailable"
    FAILED: Final = "RegistryError"
    IMAGE_NOT_FOUND: Final = "ImageNotFound"
    IMAGE_NOT_CONFORMANT: Final = "ImageNotConformant"


class RegistryError(Exception):
    """Base of the client's errors: names the registry and the repository, never a secret."""

    def __init__(self, message: str, *, registry: str, repository: str) -> None:
        super().__init__(message)
        self.message = message
        self.registry = registry
        self.repository = repository


class RegistryAuthError(RegistryError):
    """401/403 after authenticating (or the token service refused): credentials or grants."""

    def __init__(
        self,
        message: str,
        *,
        registry: str,
        repository: str,
        action: str,
        status: int,
        anonymous: bool,
    ) -> None:
        super().__init__(message, registry=registry, repository=repository)
        self.action = action
        self.status = status
        self.anonymous = anonymous


class ManifestNotFound(RegistryError):
    """404 for a manifest (unknown tag, digest or repository)."""

    def __init__(self, message: str, *, registry: str, repository: str, reference: str) -> None:
        super().__init__(message, registry=registry, repository=repository)
        self.reference = reference


class BlobNotFound(RegistryError):
    """404 for a blob."""

    def __init__(self, message: str, *, registry: str, repository: str, digest: str) -> None:
        super().__init__(message, registry=registry, repository=repository)
        self.digest = digest


class PlatformNotFound(RegistryError):
    """An index has no manifest for the platform asked for; `available` lists what it has."""

    def __init__(
        self,
        message: str,
        *,
        registry: str,
        repository: str,
        platform: str,
        available: tuple[str, ...],
    ) -> None:
        super().__init__(message, registry=registry, repository=repository)
        self.platform = platform
        self.available = available


class RegistryUnavailable(RegistryError):
    """Cannot reach the registry, or it kept failing: `status` is the last HTTP status (None
    for a connection error), `retry_after` what the registry asked for, if anything."""

    def __init__(
        self,
        message: str,
        *,
        registry: str,
        repository: str,
        status: int | None,
        attempts: int,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, registry=registry, repository=repository)
        self.status = status
        self.attempts = attempts
        self.retry_after = retry_after


class RegistryProtocolError(RegistryError):
    """The registry answered something this client cannot accept (digest mismatch, too large,
    malformed or unsupported manifest, an unexpected status)."""

    def __init__(
        self, message: str, *, registry: str, repository: str, status: int | None = None
    ) -> None:
        super().__init__(message, registry=registry, repository=repository)
        self.status = status


class DigestMismatch(RegistryProtocolError):
    """The registry answered bytes whose digest is not the one asked for (or the one it named
    in `Docker-Content-Digest`): damaged in its storage or on the way."""


def as_reconcile_error(
    error: RegistryError, *, auth_reason: str, pushed: str | None = None
) -> errors.ReconcileError:
    """`error` as the reconcile error of the table above. `auth_reason`: the condition reason of
    refused credentials in this step; `pushed`: the reference of an image the operator pushed
    and is reading back (its message names it), None in any other step."""
    if isinstance(error, RegistryAuthError):
        return errors.StalledError(auth_reason, str(error))
    if isinstance(error, PlatformNotFound):
        return errors.StalledError(Reason.PLATFORM_NOT_FOUND, str(error))
    if isinstance(error, RegistryUnavailable):
        return errors.TransientError(
            Reason.UNAVAILABLE, str(error), retry_after=error.retry_after, paced=True
        )
    if isinstance(error, DigestMismatch):
        return errors.TransientError(Reason.FAILED, str(error))
    if pushed is not None:
        if isinstance(error, ManifestNotFound):
            return errors.TransientError(Reason.IMAGE_NOT_FOUND, str(error))
        if isinstance(error, BlobNotFound):
            return errors.StalledError(
                Reason.IMAGE_NOT_CONFORMANT,
                f"{pushed}: a blob of the image is missing from the registry: {error}",
            )
        if isinstance(error, RegistryProtocolError):
            return errors.StalledError(
                Reason.IMAGE_NOT_CONFORMANT, f"{pushed} cannot be read as an image: {error}"
            )
    return errors.TransientError(Reason.FAILED, str(error))
