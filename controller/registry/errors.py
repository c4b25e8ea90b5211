"""The registry client's errors: one type per failure, each naming the registry and repository.

They are deliberately not `ReconcileError`s: the same error means different things in different
reconcile steps, which should map them like this:

- `RegistryUnavailable` -> `TransientError` with `retry_after=e.retry_after` (None: own backoff).
- `RegistryAuthError` -> `StalledError` (the user must fix credentials or grants), except when
  proving anonymous pull right after enabling it, where it is transient (propagation delay).
- `ManifestNotFound` -> for a base image or a user-given reference, `StalledError`; for the image
  just pushed, `TransientError`. `BlobNotFound` -> `TransientError`.
- `PlatformNotFound` -> `StalledError` (the spec's platforms are not in the base image).
- `RegistryProtocolError` (digest mismatch, size cap, malformed or unsupported manifest) ->
  `TransientError`; it names what was wrong.

No message or `repr` carries a credential or a token.
"""

from __future__ import annotations


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
