"""What a verified webhook event says: the sources and images that changed, and the delivery.

A `SourcePush` names a git repository (by every URL the host gives for it), a ref and the commit it
now points at; an `ImagePush` names a registry, a repository, a tag and the manifest's digest.
`Refused` is an event that must not reach a reconcile, with the HTTP status that says why and the
`outcome` the metrics count it under.
"""

from __future__ import annotations

import dataclasses
import datetime

GITHUB, AZURE_REPOS, ACR, GENERIC = "GitHub", "AzureRepos", "ACR", "Generic"
TYPES = (GITHUB, AZURE_REPOS, ACR, GENERIC)

# Outcomes, as counted in `ade_runner_webhook_events_total`.
ACCEPTED = "accepted"  # verified, reconciles requested (or none needed)
IGNORED = "ignored"  # verified, but not an event that changes anything (a ping, a delete)
UNAUTHORIZED = "unauthorized"
MALFORMED = "malformed"
OVERSIZED = "oversized"
REPLAYED = "replayed"
NOT_FOUND = "not_found"
UNAVAILABLE = "unavailable"


@dataclasses.dataclass(frozen=True)
class SourcePush:
    urls: tuple[str, ...]
    """Every URL the host gives for the repository (clone, SSH, web)."""
    ref: str
    """The full ref that moved (`refs/heads/main`, `refs/tags/v1`)."""
    revision: str | None
    """The commit it now points at; None when it was deleted."""
    default_branch: str | None = None
    """The repository's default branch (`main`), when the host says it."""


@dataclasses.dataclass(frozen=True)
class ImagePush:
    registry: str
    repository: str
    tag: str | None
    digest: str | None


Change = SourcePush | ImagePush


@dataclasses.dataclass(frozen=True)
class Event:
    delivery: str | None
    """The host's id of this delivery (a replay carries the same)."""
    sent_at: datetime.datetime | None
    changes: tuple[Change, ...] = ()
    ignored: str | None = None
    """Why a verified event changes nothing (e.g. "ping"); None for a change."""


class Refused(Exception):
    """An event that must not reach a reconcile: `status` is the HTTP answer, `outcome` what the
    metrics count. The message is for the sender and the log: never a secret or a body."""

    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


def malformed(message: str) -> Refused:
    return Refused(400, MALFORMED, message)
