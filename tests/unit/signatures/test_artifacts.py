"""The signature's OCI artifact (controller.signatures.artifacts): manifest, referrers, index."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from controller.registry import manifests
from controller.signatures import artifacts, envelope, keys
from tests.env.signing_certs import SigningAuthority

TARGET = envelope.Target("application/vnd.oci.image.manifest.v1+json", "sha256:" + "0f" * 32, 527)
AT = datetime.datetime.now(datetime.UTC).replace(microsecond=123456)


@pytest.fixture(scope="module")
def key() -> keys.SigningKey:
    signer = SigningAuthority().issue()
    return keys.load_signing_key(signer.tls_key, signer.tls_crt, signer.ca_crt)


def test_signature_manifest_shape(key: keys.SigningKey) -> None:
    signed = envelope.sign(TARGET, key, signing_time=AT)
    manifest, blob = artifacts.signature_manifest(signed, TARGET, key, signing_time=AT)
    assert blob == signed
    assert json.loads(manifest) == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.cncf.notary.signature",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/jose+json",
                "digest": "sha256:" + hashlib.sha256(signed).hexdigest(),
                "size": len(signed),
            }
        ],
        "subject": {"mediaType": TARGET.media_type, "digest": TARGET.digest, "size": 527},
        "annotations": {
            "io.cncf.notary.x509chain.thumbprint#S256": json.dumps(
                key.thumbprints, separators=(",", ":")
            ),
            "org.opencontainers.image.created": AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    assert artifacts.digest(artifacts.EMPTY_CONFIG) == json.loads(manifest)["config"]["digest"]
    assert b" " not in manifest


def test_referrer_descriptor(key: keys.SigningKey) -> None:
    signed = envelope.sign(TARGET, key, signing_time=AT)
    manifest, _ = artifacts.signature_manifest(signed, TARGET, key, signing_time=AT)
    entry = artifacts.referrer_descriptor(manifest)
    assert entry == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "size": len(manifest),
        "artifactType": "application/vnd.cncf.notary.signature",
        "annotations": json.loads(manifest)["annotations"],
    }
    legacy = json.dumps(
        {"mediaType": manifests.OCI_MANIFEST, "config": {"mediaType": "application/x.config"}}
    ).encode()
    assert artifacts.referrer_descriptor(legacy)["artifactType"] == "application/x.config"


@pytest.mark.parametrize(
    ("digest", "tag"),
    [
        ("sha256:" + "a" * 64, "sha256-" + "a" * 64),
        ("sha512:" + "b" * 128, "sha512-" + "b" * 64),
        (
            "test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall"
            "+truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOf"
            "CharactersToExcerciseEncodedTruncation",
            "test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacement"
            "AndLotsAndLot",
        ),
    ],
)
def test_referrers_tag(digest: str, tag: str) -> None:
    assert artifacts.referrers_tag(digest) == tag
    assert len(tag) <= 128


def test_referrers_tag_needs_a_digest() -> None:
    with pytest.raises(ValueError, match="not a digest"):
        artifacts.referrers_tag("latest")


def test_referrers_index_adds_each_digest_once() -> None:
    first = {"mediaType": manifests.OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 10}
    second = {**first, "digest": "sha256:" + "2" * 64, "artifactType": "application/x"}
    index = artifacts.add_to_referrers_index(None, first)
    assert json.loads(index) == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [first],
    }
    assert artifacts.add_to_referrers_index(index, first) == index
    both = json.loads(artifacts.add_to_referrers_index(index, second))
    assert both["manifests"] == [first, second]


def test_referrers_index_refuses_something_else() -> None:
    other = json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST}).encode()
    with pytest.raises(ValueError, match="does not hold an OCI image index"):
        artifacts.add_to_referrers_index(other, {"digest": "sha256:" + "1" * 64})
