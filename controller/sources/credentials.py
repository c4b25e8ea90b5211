"""The git credentials of a build source, under the names the reconcile steps import.

They live in `controller.git.credentials` (the catalog writer uses them too); this module keeps
`controller.sources.credentials` working for its callers.
"""

from __future__ import annotations

from controller.git.credentials import (
    Credentials,
    CredentialsInvalid,
    Transport,
    credentials_from_secret,
    scrub,
)

__all__ = ["Credentials", "CredentialsInvalid", "Transport", "credentials_from_secret", "scrub"]
