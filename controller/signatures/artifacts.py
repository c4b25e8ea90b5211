"""The OCI artifact a Notary Project signature is stored as (pure): its manifest and referrers.

`signature_manifest` builds the image manifest that holds a JWS envelope: `artifactType`
`application/vnd.cncf.notary.signature` with the OCI empty config (the spec's form for OCI 1.1
registries), the envelope as its one layer, the signed manifest as its `subject`, and the
annotations `notation sign` writes (the chain's SHA-256 thumbprints and the creation time, the
signing time). `referrer_descriptor` is its entry in a referrers list; `referrers_tag` and
`add_to_referrers_index` maintain the OCI referrers tag schema for registries without the
referrers API (distribution 2.8, for one), where notation finds signatures then.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from typing import Any

from controller.registry.manifests import OCI_INDEX, OCI_MANIFEST
from controller.signatures.envelope import ARTIFACT_TYPE, MEDIA_TYPE, Target
from controller.signatures.keys import SigningKey

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
THUMBPRINT_ANNOTATION = "io.cncf.notary.x509chain.thumbprint#S256"
CREATED_ANNOTATION = "org.opencontainers.image.created"

_NOT_IN_TAG = re.compile(r"[^a-zA-Z0-9._-]")


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def blob_descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(blob), "size": len(blob)}


def signature_manifest(
    envelope: bytes, subject: Target, key: SigningKey, *, signing_time: datetime.datetime
) -> tuple[bytes, bytes]:
    """(the signature manifest's JSON, the envelope blob it lists): push the blob and
    `EMPTY_CONFIG`, then the manifest by its digest. `signing_time` is the envelope's."""
    if signing_time.tzinfo is None:
        raise ValueError("the signing time must be timezone-aware")
    created = signing_time.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": blob_descriptor(EMPTY_MEDIA_TYPE, EMPTY_CONFIG),
        "layers": [blob_descriptor(MEDIA_TYPE, envelope)],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": {
            THUMBPRINT_ANNOTATION: json.dumps(key.thumbprints, separators=(",", ":")),
            CREATED_ANNOTATION: created,
        },
    }
    return _compact(manifest), envelope


def referrer_descriptor(manifest: bytes) -> dict[str, Any]:
    """A referrers-list entry for `manifest` (an image manifest with a subject): its descriptor
    with its `artifactType` (else its config's media type) and annotations."""
    parsed = json.loads(manifest)
    entry = blob_descriptor(parsed.get("mediaType", OCI_MANIFEST), manifest)
    artifact_type = parsed.get("artifactType") or parsed.get("config", {}).get("mediaType")
    if artifact_type:
        entry["artifactType"] = artifact_type
    if parsed.get("annotations"):
        entry["annotations"] = parsed["annotations"]
    return entry


def referrers_tag(subject_digest: str) -> str:
    """The referrers tag schema's tag for a subject digest (OCI distribution spec): the algorithm
    cut to 32 characters, `-`, the encoded part cut to 64, other characters than a tag's as `-`
    (`sha256:abc...` -> `sha256-abc...`)."""
    algorithm, _, encoded = subject_digest.partition(":")
    if not algorithm or not encoded:
        raise ValueError(f"not a digest: {subject_digest!r}")
    return _NOT_IN_TAG.sub("-", f"{algorithm[:32]}-{encoded[:64]}")


def add_to_referrers_index(existing: bytes | None, descriptor: dict[str, Any]) -> bytes:
    """The referrers index (an OCI image index) of `existing` (None: none yet) with `descriptor`
    (see `referrer_descriptor`) listed, unless one of the same digest already is."""
    manifests: list[dict[str, Any]] = []
    if existing:
        parsed = json.loads(existing)
        if not isinstance(parsed, dict) or parsed.get("mediaType", OCI_INDEX) != OCI_INDEX:
            raise ValueError("the referrers tag does not hold an OCI image index")
        manifests = [m for m in parsed.get("manifests") or [] if isinstance(m, dict)]
    if not any(m.get("digest") == descriptor["digest"] for m in manifests):
        manifests.append(descriptor)
    return _compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
