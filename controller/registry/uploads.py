"""Pushing small artifacts to a registry: a blob in one upload, a manifest by tag or digest.

For what the operator writes itself (signatures and the referrers index beside an image), never
for image layers: BuildKit pushes those. A blob the repository already has is not sent again
(HEAD first); an upload is the distribution spec's monolithic POST-then-PUT, which every
registry accepts (a single POST with the digest is optional for registries to support).
"""

from __future__ import annotations

import dataclasses
import urllib.parse

from controller.registry.client import RefLike, RegistryClient, as_reference
from controller.registry.manifests import digest_of


@dataclasses.dataclass(frozen=True)
class Pushed:
    """A manifest the registry accepted."""

    digest: str
    size: int
    subject_processed: bool
    """The registry answered `OCI-Subject`: it indexes referrers itself (the referrers API)."""


async def push_blob(client: RegistryClient, *, ref: RefLike, data: bytes) -> str:
    """Put `data` as a blob in `ref`'s repository (unless it is there); returns its digest."""
    ref = as_reference(ref)
    digest = digest_of(data)
    there = await client.call(
        ref=ref, action="push", method="HEAD", path=f"blobs/{digest}", kind="blob"
    )
    if there.status_code == 200:
        return digest
    started = await client.call(
        ref=ref,
        action="push",
        method="POST",
        path="blobs/uploads/",
        kind="blob",
        headers={"Content-Length": "0"},
        content=b"",
    )
    location = started.headers.get("Location")
    if started.status_code != 202 or not location:
        raise client.unexpected(ref=ref, response=started, what="POST blobs/uploads/")
    url = client.absolute(ref=ref, location=location)
    split = urllib.parse.urlsplit(url)
    query = [*urllib.parse.parse_qsl(split.query, keep_blank_values=True), ("digest", digest)]
    url = urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(query)))
    finished = await client.call(
        ref=ref,
        action="push",
        method="PUT",
        path=url,
        kind="blob",
        headers={"Content-Type": "application/octet-stream"},
        content=data,
    )
    if finished.status_code not in (201, 204):
        raise client.unexpected(ref=ref, response=finished, what=f"PUT blob {digest}")
    return digest


async def put_manifest(
    client: RegistryClient, *, ref: RefLike, media_type: str, data: bytes
) -> Pushed:
    """Put a manifest or index at `ref`'s tag, or at its own digest when `ref` has none."""
    ref = as_reference(ref)
    digest = digest_of(data)
    identifier = ref.tag if ref.digest is None and ref.tag else digest
    response = await client.call(
        ref=ref,
        action="push",
        method="PUT",
        path=f"manifests/{identifier}",
        kind="manifest",
        headers={"Content-Type": media_type},
        content=data,
    )
    if response.status_code not in (200, 201, 204):
        raise client.unexpected(ref=ref, response=response, what=f"PUT manifest {identifier}")
    return Pushed(digest, len(data), "OCI-Subject" in response.headers)
