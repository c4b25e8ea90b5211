"""Signing an image in its registry, and telling whether an image is signed by someone trusted.

`sign_image` makes a Notary Project signature of the image's manifest descriptor and attaches it
as a referrer; an image that already carries a signature by the same certificate is left as it
is (a rebuild to the same digest, a restart of the operator, a second replica: one signature, not
one per pass). `verify_image` reads the image's Notary signatures and accepts the first that is
valid, chains to a trusted certificate and signs exactly this digest; otherwise it says why each
failed. Envelope bytes are read with a cap: a signature is a few KiB.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Sequence

from cryptography import x509

from controller.registry import client as registry_client
from controller.registry.client import RegistryClient
from controller.registry.manifests import OCI_MANIFEST, Manifest
from controller.registry.reference import Reference
from controller.signatures import artifacts, envelope, keys, referrers

MAX_ENVELOPE = 1024 * 1024
MAX_SIGNATURES = 20
"""Signatures read per verification at most (a registry could list thousands)."""


@dataclasses.dataclass(frozen=True)
class Signature:
    image: str
    """The signed digest."""
    signature: str
    """The signature manifest's digest."""
    signer: str
    """The signing certificate's subject."""
    thumbprint: str
    """SHA-256 of the signing certificate (lowercase hex)."""
    created: bool = False
    """Made by this call (False: found in the registry)."""


class NotTrusted(Exception):
    """The image has no valid signature from a trusted certificate; the message says why."""


def _leaf_thumbprint(annotations: dict[str, str] | object) -> str | None:
    if not isinstance(annotations, dict):
        return None
    try:
        chain = json.loads(annotations.get(artifacts.THUMBPRINT_ANNOTATION, "[]"))
    except ValueError:
        return None
    return chain[0] if isinstance(chain, list) and chain and isinstance(chain[0], str) else None


async def sign_image(
    client: RegistryClient,
    *,
    image: Reference,
    key: keys.SigningKey,
    now: datetime.datetime,
) -> Signature:
    """Sign `image` (pinned by digest) with `key`, unless a signature by the same certificate is
    attached already (it is verified, not trusted blindly: a broken one is signed anew)."""
    if image.digest is None:
        raise ValueError(f"{image}: an image is signed by digest")
    leaf = key.thumbprints[0]
    signer = key.chain[0].subject.rfc4514_string()
    found = await referrers.list_referrers(
        client, image=image, artifact_type=envelope.ARTIFACT_TYPE
    )
    for referrer in found:
        if _leaf_thumbprint(dict(referrer.annotations)) != leaf:
            continue
        try:
            await _verified(client, image, referrer.digest, key.chain[-1:], now)
        except (NotTrusted, envelope.SignatureInvalid, registry_client.RegistryError):
            continue
        return Signature(image.digest, referrer.digest, signer, leaf)
    descriptor = await client.resolve(ref=image)
    target = envelope.Target(descriptor.media_type, descriptor.digest, descriptor.size)
    signed = envelope.sign(target, key, signing_time=now)
    manifest, blob = artifacts.signature_manifest(signed, target, key, signing_time=now)
    digest = await referrers.attach(
        client,
        image=image,
        manifest=manifest,
        media_type=OCI_MANIFEST,
        artifact_type=envelope.ARTIFACT_TYPE,
        blobs=[artifacts.EMPTY_CONFIG, blob],
    )
    return Signature(image.digest, digest, signer, leaf, created=True)


async def verify_image(
    client: RegistryClient,
    *,
    image: Reference,
    trusted: Sequence[x509.Certificate],
    now: datetime.datetime,
) -> Signature:
    """The first valid signature of `image` (pinned by digest) by a trusted certificate;
    `NotTrusted` naming what was found otherwise."""
    if image.digest is None:
        raise ValueError(f"{image}: signatures are verified by digest")
    found = await referrers.list_referrers(
        client, image=image, artifact_type=envelope.ARTIFACT_TYPE
    )
    if not found:
        raise NotTrusted(f"{image.name}@{image.digest} has no Notary Project signature")
    reasons: list[str] = []
    for referrer in found[:MAX_SIGNATURES]:
        try:
            return await _verified(client, image, referrer.digest, trusted, now)
        except (NotTrusted, envelope.SignatureInvalid) as error:
            reasons.append(f"{referrer.digest[:19]}: {error}")
    listed = "; ".join(reasons)
    raise NotTrusted(
        f"none of the {len(found)} signature(s) of {image.name}@{image.digest} is valid and"
        f" from a trusted certificate ({listed})"
    )


async def _verified(
    client: RegistryClient,
    image: Reference,
    signature: str,
    trusted: Sequence[x509.Certificate],
    now: datetime.datetime,
) -> Signature:
    assert image.digest is not None
    manifest = await client.get_manifest(ref=image.with_digest(signature))
    if not isinstance(manifest, Manifest):
        raise NotTrusted("the signature is an index, not a manifest")
    layers = [layer for layer in manifest.layers if layer.media_type == envelope.MEDIA_TYPE]
    if len(layers) != 1:
        raise NotTrusted(f"the signature manifest holds {len(layers)} JWS envelopes, not one")
    blob = await client.get_blob(ref=image, digest=layers[0].digest, max_size=MAX_ENVELOPE)
    target = envelope.verify(blob, trusted, now=now)
    if target.digest != image.digest:
        raise NotTrusted(f"the signature is of {target.digest}, not of this image")
    leaf = envelope.signing_certificate(blob)
    return Signature(
        image.digest,
        signature,
        leaf.subject.rfc4514_string(),
        keys.thumbprint(leaf),
    )
