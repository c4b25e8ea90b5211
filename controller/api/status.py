"""The RunnerImage's status as typed, read-only views, and the one timestamp format. Pure.

Status is what the operator wrote before, read back from the API server: each view's `of` reads
its part of a status mapping leniently (a field of the wrong type reads as absent, so a status
edited by hand never crashes a reconcile), and `to_status` writes it back in the shape the CRD
schema describes, omitting empty optional fields exactly as before (so an unchanged view yields
an empty merge patch and an idle operator writes nothing).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence
from typing import Any

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def timestamp(moment: datetime.datetime) -> str:
    """`moment` as status writes times: RFC 3339 in UTC, to the second (`2026-12-05T10:00:00Z`)."""
    return moment.astimezone(datetime.UTC).strftime(STAMP_FORMAT)


def parse_timestamp(value: object) -> datetime.datetime | None:
    """A status time read back (None when absent or not a time); naive times are UTC."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _int(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(str(item) for item in value)


@dataclasses.dataclass(frozen=True)
class LatestImage:
    """`status.latestImage`: the image the catalog is (to be) pointed at, and why it was built."""

    reference: str
    digest: str
    built_at: str = ""
    reason: str = ""
    changes: tuple[str, ...] = ()
    build_key: str = ""
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """What the build key was made of (`identity.Inputs.key_material`), to explain the next."""

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> LatestImage | None:
        """The latest image `status` records; None until one was built (or adopted)."""
        data = _mapping(status.get("latestImage"))
        reference, digest = _str(data, "reference"), _str(data, "digest")
        if not reference or not digest:
            return None
        return cls(
            reference=reference,
            digest=digest,
            built_at=_str(data, "builtAt"),
            reason=_str(data, "reason"),
            changes=_strings(data.get("changes")),
            build_key=_str(data, "buildKey"),
            inputs=_mapping(data.get("inputs")),
        )

    def to_status(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "builtAt": self.built_at,
            "reason": self.reason,
            "changes": list(self.changes),
            "buildKey": self.build_key,
            "inputs": dict(self.inputs),
        }


class BuildResult(enum.StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self is not BuildResult.RUNNING


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """One entry of `status.builds`: a build of one key, newest first in the list."""

    name: str
    build_key: str
    reason: str
    image: str
    started_at: str
    result: BuildResult
    attempt: int = 1
    finished_at: str = ""
    message: str = ""
    digest: str = ""
    retries: int = 0
    """How many automatic retries after transient failures this attempt is (0: none)."""
    requested_at: str = ""
    """The manual-trigger annotation value this attempt answered (a retry asks for a new one)."""

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> BuildRecord | None:
        """A record read back; None for an entry that is not one (edited by hand)."""
        try:
            result = BuildResult(_str(data, "result"))
        except ValueError:
            return None
        return cls(
            name=_str(data, "name"),
            build_key=_str(data, "buildKey"),
            reason=_str(data, "reason"),
            image=_str(data, "image"),
            started_at=_str(data, "startedAt"),
            result=result,
            attempt=_int(data, "attempt", 1),
            finished_at=_str(data, "finishedAt"),
            message=_str(data, "message"),
            digest=_str(data, "digest"),
            retries=_int(data, "retries", 0),
            requested_at=_str(data, "requestedAt"),
        )

    @classmethod
    def all_of(cls, status: Mapping[str, Any]) -> tuple[BuildRecord, ...]:
        """`status.builds`, newest first (entries that are not records are dropped)."""
        found = status.get("builds")
        if not isinstance(found, Sequence) or isinstance(found, str):
            return ()
        records = (cls.of(entry) for entry in found if isinstance(entry, Mapping))
        return tuple(record for record in records if record is not None)

    def to_status(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "attempt": self.attempt,
            "buildKey": self.build_key,
            "reason": self.reason,
            "image": self.image,
            "startedAt": self.started_at,
            "result": self.result.value,
        }
        optional: tuple[tuple[str, object], ...] = (
            ("finishedAt", self.finished_at),
            ("message", self.message),
            ("digest", self.digest),
            ("retries", self.retries),
            ("requestedAt", self.requested_at),
        )
        entry.update((key, value) for key, value in optional if value)
        return entry


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _optional_strings(value: object) -> tuple[str, ...] | None:
    return None if value is None else _strings(value)


@dataclasses.dataclass(frozen=True)
class PullRequestStatus:
    """`status.catalog.pullRequest`: the pull request that carries the push branch's commits."""

    number: int
    url: str
    state: str
    """open, merged or closed (closed without merging)."""
    head: str
    """This RunnerImage's commit on the push branch that it carries (as last looked at)."""

    @classmethod
    def of(cls, data: Any) -> PullRequestStatus | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("number"), int):
            return None
        return cls(
            number=data["number"],
            url=str(data.get("url") or ""),
            state=str(data.get("state") or ""),
            head=str(data.get("head") or ""),
        )

    def to_status(self) -> dict[str, Any]:
        return {"number": self.number, "url": self.url, "state": self.state, "head": self.head}


@dataclasses.dataclass(frozen=True)
class CatalogStatus:
    """`status.catalog`: the catalog as the write-back step last read and wrote it.

    Every field is written every time (None removes it from status, as a merge patch does).
    """

    revision: str | None = None
    """The branch head the files were last read at (or written in)."""
    ref: str | None = None
    """The branch the commit went to (`spec.catalog.pushBranch` or the branch)."""
    image: str | None = None
    """The value the files point at (a tag or a digest reference)."""
    manifests: tuple[str, ...] = ()
    """The files that point at `image`."""
    changed: tuple[str, ...] | None = None
    """The files the last commit changed."""
    files: tuple[Mapping[str, Any], ...] = ()
    """Each selected file's state (`claims.FileState.to_status`)."""
    pushed_at: str | None = None
    fingerprint: str | None = None
    """What the files were written for (image and catalog settings); None: look again."""
    synced_revision: str | None = None
    """The revision ADE was last asked to sync (`spec.catalog.sync`)."""
    synced_at: str | None = None
    pull_request: PullRequestStatus | None = None
    """The pull request from the push branch (`spec.catalog.pullRequest`)."""

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> CatalogStatus:
        data = _mapping(status.get("catalog"))
        files = data.get("files")
        return cls(
            revision=_optional_str(data, "revision"),
            ref=_optional_str(data, "ref"),
            image=_optional_str(data, "image"),
            manifests=_strings(data.get("manifests")),
            changed=_optional_strings(data.get("changed")),
            files=tuple(entry for entry in files if isinstance(entry, Mapping))
            if isinstance(files, Sequence) and not isinstance(files, str)
            else (),
            pushed_at=_optional_str(data, "pushedAt"),
            fingerprint=_optional_str(data, "fingerprint"),
            synced_revision=_optional_str(data, "syncedRevision"),
            synced_at=_optional_str(data, "syncedAt"),
            pull_request=PullRequestStatus.of(data.get("pullRequest")),
        )

    def to_status(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "ref": self.ref,
            "image": self.image,
            "manifests": list(self.manifests),
            "changed": None if self.changed is None else list(self.changed),
            "files": [dict(entry) for entry in self.files],
            "pushedAt": self.pushed_at,
            "fingerprint": self.fingerprint,
            "syncedRevision": self.synced_revision,
            "syncedAt": self.synced_at,
            "pullRequest": None if self.pull_request is None else self.pull_request.to_status(),
        }


@dataclasses.dataclass(frozen=True)
class RegistryStatus:
    """`status.registry`: the registry access the access step last ensured."""

    resource_id: str
    mode: str
    anonymous_pull: bool | None = None
    public_network_access: str | None = None
    principals: tuple[str, ...] | None = None
    """The principals holding `AcrPull` (PrivatePull)."""
    repaired_at: str | None = None
    """When a drift was last repaired."""

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> RegistryStatus | None:
        data = _mapping(status.get("registry"))
        if not data:
            return None
        anonymous = data.get("anonymousPull")
        return cls(
            resource_id=_str(data, "resourceId"),
            mode=_str(data, "mode"),
            anonymous_pull=anonymous if isinstance(anonymous, bool) else None,
            public_network_access=_optional_str(data, "publicNetworkAccess"),
            principals=_optional_strings(data.get("principals")),
            repaired_at=_optional_str(data, "repairedAt"),
        )

    def to_status(self) -> dict[str, Any]:
        return {
            "resourceId": self.resource_id,
            "mode": self.mode,
            "anonymousPull": self.anonymous_pull,
            "publicNetworkAccess": self.public_network_access,
            "principals": None if self.principals is None else list(self.principals),
            "repairedAt": self.repaired_at,
        }
