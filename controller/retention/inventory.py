"""What a repository holds, as retention weighs it: each manifest's tags, when it was made and
which RunnerImage pushed it (its config's `created` and `runners.ade.dev/runner-image` label).

Tags are listed (every page), each resolved to its digest (HEAD), and each digest's config read
once: what a digest holds never changes, so `known` keeps it across passes (a repository of 365
images costs 365 HEADs and, the first time only, 365 manifests and configs). An index is read
through its first image manifest (attestation manifests, platform `unknown/unknown`, skipped).
Referrers-tag-schema tags (`sha256-<hex>`: the index of an image's signatures, OCI distribution
1.1) are not images, and are left out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import re

from controller.registry import client as registry_client
from controller.registry import reference
from controller.retention import policy

READS_AT_ONCE = 8
REFERRERS_TAG = re.compile(r"sha256-[0-9a-f]{64}")
MAX_CONFIG = 1 << 20


@dataclasses.dataclass(frozen=True)
class Made:
    created: datetime.datetime | None
    owner: str | None


async def images(
    client: registry_client.RegistryClient, repository: str, known: dict[str, Made]
) -> list[policy.Image]:
    """The manifests `repository` (`registry/repository`) holds by tag; `known` is read and
    filled (digest -> what its config says)."""
    tags = [
        tag for tag in await client.list_tags(ref=repository) if not REFERRERS_TAG.fullmatch(tag)
    ]
    gate = asyncio.Semaphore(READS_AT_ONCE)

    async def digest_of(tag: str) -> tuple[str, str | None]:
        async with gate:
            try:
                return tag, (await client.resolve(ref=f"{repository}:{tag}")).digest
            except registry_client.ManifestNotFound:  # deleted since it was listed
                return tag, None

    by_digest: dict[str, list[str]] = {}
    for tag, digest in await asyncio.gather(*(digest_of(tag) for tag in tags)):
        if digest is not None:
            by_digest.setdefault(digest, []).append(tag)

    async def made(digest: str) -> None:
        async with gate:
            known[digest] = await _made(client, f"{repository}@{digest}")

    await asyncio.gather(*(made(digest) for digest in by_digest if digest not in known))
    return [
        policy.Image(
            digest=digest,
            tags=tuple(sorted(tags)),
            created=known[digest].created,
            owner=known[digest].owner,
        )
        for digest, tags in sorted(by_digest.items())
    ]


async def _made(client: registry_client.RegistryClient, ref: str) -> Made:
    found = await client.get_manifest(ref=ref)
    if isinstance(found, registry_client.Index):
        images = [
            entry
            for entry in found.manifests
            if entry.platform is None or entry.platform.os != "unknown"
        ]
        if not images:
            return Made(None, None)
        pinned = reference.parse(ref).with_digest(images[0].digest)
        found = await client.get_manifest(ref=pinned)
        if isinstance(found, registry_client.Index):
            return Made(None, None)  # nested indexes: nothing of ours
    raw = await client.get_blob(ref=ref, digest=found.config.digest, max_size=MAX_CONFIG)
    return made_of(raw)


def made_of(raw: bytes) -> Made:
    """When an image config says it was made and who pushed it (None for what it does not say)."""
    try:
        config = json.loads(raw)
    except ValueError:
        return Made(None, None)
    if not isinstance(config, dict):
        return Made(None, None)
    labels = (config.get("config") or {}).get("Labels") or {}
    owner = labels.get(policy.OWNER_LABEL) if isinstance(labels, dict) else None
    return Made(_time(config.get("created")), owner if isinstance(owner, str) else None)


def _time(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # Go writes nanoseconds; Python reads at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)
