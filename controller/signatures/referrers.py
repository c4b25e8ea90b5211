"""An image's referrers in its registry (OCI distribution 1.1): list them, attach one.

A referrer is a manifest whose `subject` is the image (a signature, an SBOM pushed later). A
registry with the referrers API (ACR, distribution 3, zot) indexes them itself and answers
`GET /v2/<name>/referrers/<digest>`; one without it (distribution 2.x, older Harbor) answers that
with 404, and clients keep the list in an image index tagged `sha256-<hex>` instead (the
specification's "referrers tag schema"), as `notation` and `oras` do. Both are read here, and an
attach updates the tag index only when the registry did not take the subject itself
(`OCI-Subject` missing from its answer to the manifest push).

The tag index is read, extended and written back: two writers attaching at the same moment can
lose one entry (the specification has no compare-and-swap for tags); the operator attaches one
signature per image and re-checks on the next pass, so a lost entry is written again.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from controller.registry import client as registry_client
from controller.registry import uploads
from controller.registry.client import RegistryClient
from controller.registry.manifests import OCI_INDEX
from controller.registry.reference import Reference
from controller.signatures import artifacts

MAX_REFERRERS_INDEX = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Referrer:
    digest: str
    media_type: str
    size: int
    artifact_type: str
    annotations: Mapping[str, str]


def _referrers_of(document: Any, artifact_type: str | None) -> list[Referrer]:
    found: list[Referrer] = []
    entries = document.get("manifests") if isinstance(document, Mapping) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        digest, media_type, size = entry.get("digest"), entry.get("mediaType"), entry.get("size")
        kind = entry.get("artifactType") or ""
        if not isinstance(digest, str) or not isinstance(media_type, str):
            continue
        if not isinstance(size, int) or (artifact_type and kind != artifact_type):
            continue
        annotations = entry.get("annotations")
        found.append(
            Referrer(
                digest,
                media_type,
                size,
                str(kind),
                {str(k): str(v) for k, v in annotations.items()}
                if isinstance(annotations, Mapping)
                else {},
            )
        )
    return found


async def list_referrers(
    client: RegistryClient, *, image: Reference, artifact_type: str | None = None
) -> list[Referrer]:
    """The referrers of `image` (pinned by digest), of `artifact_type` if given."""
    if image.digest is None:
        raise ValueError(f"{image}: referrers are listed by digest")
    query = f"?{urllib.parse.urlencode({'artifactType': artifact_type})}" if artifact_type else ""
    answer = await client.call(
        ref=image,
        action="pull",
        method="GET",
        path=f"referrers/{image.digest}{query}",
        kind="manifest",
        headers={"Accept": OCI_INDEX},
    )
    if answer.status_code == 200:
        try:
            return _referrers_of(json.loads(answer.content), artifact_type)
        except ValueError:
            raise client.unexpected(
                ref=image, response=answer, what="GET referrers (not JSON)"
            ) from None
    if answer.status_code not in (400, 404, 405):
        raise client.unexpected(ref=image, response=answer, what="GET referrers")
    index = await _tag_index(client, image)
    return [] if index is None else _referrers_of(json.loads(index), artifact_type)


async def _tag_index(client: RegistryClient, image: Reference) -> bytes | None:
    """The raw referrers tag index of `image`, None when there is none."""
    assert image.digest is not None
    tagged = Reference(image.registry, image.repository, tag=artifacts.referrers_tag(image.digest))
    try:
        index = await client.get_manifest(ref=tagged)
    except registry_client.ManifestNotFound:
        return None
    return index.raw


async def attach(
    client: RegistryClient,
    *,
    image: Reference,
    manifest: bytes,
    media_type: str,
    artifact_type: str,
    blobs: list[bytes],
) -> str:
    """Push `blobs` and the referrer `manifest` (whose subject is `image`) into the image's
    repository; list it in the tag index unless the registry indexes subjects itself. Returns
    the referrer's digest."""
    if image.digest is None:
        raise ValueError(f"{image}: referrers attach to a digest")
    for blob in blobs:
        await uploads.push_blob(client, ref=image, data=blob)
    bare = Reference(image.registry, image.repository)
    pushed = await uploads.put_manifest(client, ref=bare, media_type=media_type, data=manifest)
    if not pushed.subject_processed:
        annotations = json.loads(manifest).get("annotations") or {}
        descriptor: dict[str, Any] = {
            "mediaType": media_type,
            "digest": pushed.digest,
            "size": pushed.size,
            "artifactType": artifact_type,
        }
        if annotations:
            descriptor["annotations"] = annotations
        existing = await _tag_index(client, image)
        index = artifacts.add_to_referrers_index(existing, descriptor)
        if index != existing:
            tagged = Reference(
                image.registry, image.repository, tag=artifacts.referrers_tag(image.digest)
            )
            await uploads.put_manifest(client, ref=tagged, media_type=OCI_INDEX, data=index)
    return pushed.digest


async def delete_referrers(client: RegistryClient, *, image: Reference) -> int:
    """Delete every referrer of `image` (pinned by digest; usually deleted already) and its
    referrers tag index; how many manifests went. A registry that deletes referrers with their
    subject (ACR) lists none by then."""
    if image.digest is None:
        raise ValueError(f"{image}: referrers are deleted by digest")
    gone = 0
    for referrer in await list_referrers(client, image=image):
        gone += await client.delete_manifest(ref=image.with_digest(referrer.digest))
    tagged = Reference(image.registry, image.repository, tag=artifacts.referrers_tag(image.digest))
    try:
        index = await client.resolve(ref=tagged)
    except registry_client.ManifestNotFound:
        return gone
    gone += await client.delete_manifest(ref=image.with_digest(index.digest))
    return gone
