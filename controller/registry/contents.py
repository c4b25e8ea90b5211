"""Registry content read by digest, kept for the next read: what never changes under a digest.

A manifest fetched by its digest and a blob are immutable: once their digest was checked, the
same bytes come back on every later read. The verify step reads the same base image's manifest
and config on every build of a RunnerImage (the entrypoint rule); kept here, that is two registry
round trips fewer on each verification's critical path. A caller asks for it per read
(`RegistryClient.get_manifest(..., keep=True)`, `get_blob(..., keep=True)`): content that can be
deleted behind the operator's back while it still needs to know (the image it just built) is
always read from the registry.

An entry is kept per (registry, repository, digest, credentials): `credentials` is the SHA-256
fingerprint of the credentials that read it (`tokens.fingerprint`), so a client with other
credentials, or none, asks the registry itself and is refused as it would be. At most
`MAX_ENTRIES` entries of at most `MAX_ENTRY_BYTES` each are kept; the least recently used go
first.
"""

from __future__ import annotations

import collections

MAX_ENTRIES = 256
"""Entries kept at most (a base image's manifest and config per RunnerImage: a few KiB each)."""
MAX_ENTRY_BYTES = 256 * 1024
"""Larger content is not kept (image configs and manifests are a few KiB)."""

Key = tuple[str, str, str, str]
"""(registry, repository, digest, credentials' fingerprint)."""


class Contents:
    """What clients sharing it read by digest, per `Key`, least recently used dropped first."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._kept: collections.OrderedDict[Key, object] = collections.OrderedDict()
        self._max = max_entries

    def __repr__(self) -> str:
        return f"Contents(entries={len(self._kept)})"

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Key) -> object | None:
        """What was kept for `key`, or None."""
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def put(self, key: Key, value: object, *, size: int) -> None:
        """Keep `value` (`size` bytes read) for `key`, unless it is larger than an entry may be."""
        if size > MAX_ENTRY_BYTES:
            return
        self._kept[key] = value
        self._kept.move_to_end(key)
        while len(self._kept) > self._max:
            self._kept.popitem(last=False)
