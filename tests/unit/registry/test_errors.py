"""controller.registry.errors.as_reconcile_error: what each registry failure means to a step."""

from __future__ import annotations

import pytest

from controller import errors
from controller.registry import errors as registry_errors

R, REPO = "registry.example.com", "ade/runner"
PUSHED = "registry.example.com/ade/runner:v1"

AUTH = registry_errors.RegistryAuthError(
    "denied", registry=R, repository=REPO, action="pull", status=401, anonymous=False
)
PLATFORM = registry_errors.PlatformNotFound(
    "no linux/arm64",
    registry=R,
    repository=REPO,
    platform="linux/arm64",
    available=("linux/amd64",),
)
THROTTLED = registry_errors.RegistryUnavailable(
    "429", registry=R, repository=REPO, status=429, attempts=1, retry_after=120.0
)
DOWN = registry_errors.RegistryUnavailable(
    "refused", registry=R, repository=REPO, status=None, attempts=5
)
MANIFEST = registry_errors.ManifestNotFound("no v1", registry=R, repository=REPO, reference="v1")
BLOB = registry_errors.BlobNotFound(
    "no blob", registry=R, repository=REPO, digest="sha256:" + "a" * 64
)
PROTOCOL = registry_errors.RegistryProtocolError("not JSON", registry=R, repository=REPO)
DIGEST = registry_errors.DigestMismatch("has digest sha256:b", registry=R, repository=REPO)
OTHER = registry_errors.RegistryError("odd", registry=R, repository=REPO)

Stalled, Transient = errors.StalledError, errors.TransientError


@pytest.mark.parametrize(
    ("error", "pushed", "kind", "reason", "retry_after"),
    [
        (AUTH, None, Stalled, "PushAuthFailed", None),
        (AUTH, PUSHED, Stalled, "PushAuthFailed", None),
        (PLATFORM, None, Stalled, "PlatformNotFound", None),
        (PLATFORM, PUSHED, Stalled, "PlatformNotFound", None),
        (THROTTLED, None, Transient, "RegistryUnavailable", 120.0),
        (THROTTLED, PUSHED, Transient, "RegistryUnavailable", 120.0),
        (DOWN, None, Transient, "RegistryUnavailable", None),
        (MANIFEST, None, Transient, "RegistryError", None),
        (MANIFEST, PUSHED, Transient, "ImageNotFound", None),
        (BLOB, None, Transient, "RegistryError", None),
        (BLOB, PUSHED, Stalled, "ImageNotConformant", None),
        (PROTOCOL, None, Transient, "RegistryError", None),
        (PROTOCOL, PUSHED, Stalled, "ImageNotConformant", None),
        # Bytes that are not their digest: the registry's fault, not the image's; retried.
        (DIGEST, None, Transient, "RegistryError", None),
        (DIGEST, PUSHED, Transient, "RegistryError", None),
        (OTHER, None, Transient, "RegistryError", None),
        (OTHER, PUSHED, Transient, "RegistryError", None),
    ],
)
def test_as_reconcile_error(
    error: registry_errors.RegistryError,
    pushed: str | None,
    kind: type[errors.ReconcileError],
    reason: str,
    retry_after: float | None,
) -> None:
    mapped = registry_errors.as_reconcile_error(error, auth_reason="PushAuthFailed", pushed=pushed)
    assert type(mapped) is kind
    assert mapped.reason == reason
    assert str(error) in mapped.message
    assert getattr(mapped, "retry_after", None) == retry_after
    # The registry's own Retry-After is owed by every cause of a reconcile (cycle's hold).
    assert getattr(mapped, "paced", False) == (retry_after is not None)


def test_an_image_read_back_is_named_in_the_message() -> None:
    blob = registry_errors.as_reconcile_error(BLOB, auth_reason="x", pushed=PUSHED)
    assert blob.message == f"{PUSHED}: a blob of the image is missing from the registry: no blob"
    protocol = registry_errors.as_reconcile_error(PROTOCOL, auth_reason="x", pushed=PUSHED)
    assert protocol.message == f"{PUSHED} cannot be read as an image: not JSON"
