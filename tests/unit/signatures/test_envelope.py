"""Notary Project JWS envelopes in controller.signatures.envelope: sign -> verify, and refusals."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from controller.signatures import envelope, keys
from controller.signatures.envelope import SignatureInvalid, Target
from tests.env.signing_certs import SERVER_AUTH, Signer, SigningAuthority

NOW = datetime.datetime.now(datetime.UTC)
TARGET = Target("application/vnd.oci.image.manifest.v1+json", "sha256:" + "ab" * 32, 1234)


@pytest.fixture(scope="module")
def authority() -> SigningAuthority:
    return SigningAuthority()


@pytest.fixture(scope="module")
def key(authority: SigningAuthority) -> keys.SigningKey:
    signer = authority.issue()
    return keys.load_signing_key(signer.tls_key, signer.tls_crt, signer.ca_crt)


def _b64url_json(text: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return decoded


def _unchecked(signer: Signer) -> keys.SigningKey:
    """A key past the loader's checks, to see what verification says of a bad chain."""
    private = serialization.load_pem_private_key(signer.tls_key, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    chain = x509.load_pem_x509_certificates(signer.tls_crt + signer.ca_crt)
    return keys.SigningKey(private, tuple(chain))


def _resigned(
    signed: bytes, key: keys.SigningKey, change: Callable[[dict[str, Any]], None]
) -> bytes:
    """`signed` with its protected header changed by `change`, signed again (P-256 keys)."""
    document = json.loads(signed)
    header = _b64url_json(document["protected"])
    change(header)
    protected = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    data = f"{protected}.{document['payload']}".encode()
    assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(key.private_key.sign(data, ec.ECDSA(hashes.SHA256())))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    document["protected"] = protected
    document["signature"] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("kind", "alg", "intermediate"),
    [
        ("rsa2048", "PS256", True),
        ("rsa3072", "PS384", False),
        ("p256", "ES256", True),
        ("p384", "ES384", False),
    ],
)
def test_sign_then_verify(kind: str, alg: str, intermediate: bool) -> None:
    authority = SigningAuthority(
        key=kind if kind.startswith("p") else "p256", intermediate=intermediate
    )
    signer = authority.issue(key=kind)
    key = keys.load_signing_key(signer.tls_key, signer.tls_crt, signer.ca_crt)
    signed = envelope.sign(TARGET, key, signing_time=NOW)
    assert envelope.verify(signed, [authority.root], now=NOW) == TARGET
    assert _b64url_json(json.loads(signed)["protected"])["alg"] == alg


def test_the_envelope_is_what_notation_writes(key: keys.SigningKey) -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    at = (NOW - datetime.timedelta(hours=1)).replace(microsecond=890).astimezone(plus_two)
    signed = envelope.sign(TARGET, key, signing_time=at)
    document = json.loads(signed)
    assert list(document) == ["payload", "protected", "header", "signature"]
    assert _b64url_json(document["protected"]) == {
        "alg": "ES256",
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert _b64url_json(document["payload"]) == {
        "targetArtifact": {"mediaType": TARGET.media_type, "digest": TARGET.digest, "size": 1234}
    }
    header = document["header"]
    assert header["io.cncf.notary.signingAgent"] == "ade-runner-operator"
    assert [base64.b64decode(c) for c in header["x5c"]] == [
        c.public_bytes(serialization.Encoding.DER) for c in key.chain
    ]
    assert "=" not in document["signature"]
    assert len(base64.urlsafe_b64decode(document["signature"] + "=" * 2)) == 64


def test_tampered_payload_is_refused(authority: SigningAuthority, key: keys.SigningKey) -> None:
    document = json.loads(envelope.sign(TARGET, key, signing_time=NOW))
    payload = _b64url_json(document["payload"])
    payload["targetArtifact"]["digest"] = "sha256:" + "cd" * 32
    document["payload"] = (
        base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    )
    with pytest.raises(SignatureInvalid, match=r"^the signature does not match its content$"):
        envelope.verify(json.dumps(document).encode(), [authority.root], now=NOW)


def test_untrusted_signer_is_refused(key: keys.SigningKey) -> None:
    signed = envelope.sign(TARGET, key, signing_time=NOW)
    stranger = SigningAuthority("stranger")
    with pytest.raises(SignatureInvalid) as caught:
        envelope.verify(signed, [stranger.root], now=NOW)
    message = str(caught.value)
    assert message.startswith("signed by a certificate no trusted certificate issued (subject ")
    assert "CN=ade-runner-operator signer" in message
    assert key.thumbprints[-1] in message


def test_trusting_the_intermediate_is_enough_as_for_notation(
    authority: SigningAuthority, key: keys.SigningKey
) -> None:
    signed = envelope.sign(TARGET, key, signing_time=NOW)
    assert authority.intermediate is not None
    assert envelope.verify(signed, [authority.intermediate], now=NOW) == TARGET


def test_expired_certificate(authority: SigningAuthority) -> None:
    # The test authority's CAs are valid from a day before NOW; the leaf expired 10 hours ago.
    signer = authority.issue(
        not_before=NOW - datetime.timedelta(hours=20), not_after=NOW - datetime.timedelta(hours=10)
    )
    key = keys.load_signing_key(signer.tls_key, signer.tls_crt, signer.ca_crt)
    with pytest.raises(keys.KeyInvalid, match=r"expired on .*, before the signing time"):
        envelope.sign(TARGET, key, signing_time=NOW)
    signed = envelope.sign(TARGET, key, signing_time=NOW - datetime.timedelta(hours=15))
    with pytest.raises(SignatureInvalid, match=r"expired on .*, before the time of verification"):
        envelope.verify(signed, [authority.root], now=NOW)


def test_signing_certificate_with_tls_extended_key_usage(authority: SigningAuthority) -> None:
    key = _unchecked(authority.issue(eku=(SERVER_AUTH,)))
    signed = envelope.sign(TARGET, key, signing_time=NOW)
    with pytest.raises(SignatureInvalid, match=r"extended key usage for serverAuth"):
        envelope.verify(signed, [authority.root], now=NOW)


def test_ca_certificate_as_signing_certificate(authority: SigningAuthority) -> None:
    key = _unchecked(authority.issue(ca=True))
    signed = envelope.sign(TARGET, key, signing_time=NOW)
    with pytest.raises(SignatureInvalid, match=r"is a CA certificate \(CA:TRUE\)"):
        envelope.verify(signed, [authority.root], now=NOW)


def test_chain_without_root_is_refused(authority: SigningAuthority, key: keys.SigningKey) -> None:
    partial = keys.SigningKey(key.private_key, key.chain[:2])
    signed = envelope.sign(TARGET, partial, signing_time=NOW)
    with pytest.raises(SignatureInvalid, match=r"does not end in a self-signed root"):
        envelope.verify(signed, [authority.root], now=NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h.update(alg="ES384"), r"algorithm ES384 does not match .* signs with ES256"),
        (lambda h: h.update(alg="none"), r"algorithm 'none' is not one"),
        (lambda h: h.pop("crit"), r"has no `crit` list"),
        (lambda h: h.update(crit=[]), r"does not mark io.cncf.notary.signingScheme critical"),
        (
            lambda h: h.update(crit=["io.cncf.notary.signingScheme", "x"], x=1),
            r"marks x critical, which this verifier does not understand",
        ),
        (lambda h: h.update(cty="application/json"), r"payload type is 'application/json'"),
        (
            lambda h: h.update({"io.cncf.notary.signingScheme": "notary.x509.signingAuthority"}),
            r"signing scheme 'notary.x509.signingAuthority' is not supported",
        ),
        (
            lambda h: h.update({"io.cncf.notary.signingTime": "2026-01-01 10:00:00"}),
            r"signingTime is not an RFC 3339 time",
        ),
        (
            lambda h: h.update({"io.cncf.notary.expiry": "2030-01-01T00:00:00Z"}),
            r"does not mark io.cncf.notary.expiry critical",
        ),
    ],
)
def test_protected_header_rules(
    authority: SigningAuthority,
    key: keys.SigningKey,
    change: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    signed = _resigned(envelope.sign(TARGET, key, signing_time=NOW), key, change)
    with pytest.raises(SignatureInvalid, match=message):
        envelope.verify(signed, [authority.root], now=NOW)


def test_expiry(authority: SigningAuthority, key: keys.SigningKey) -> None:
    def expires(at: datetime.datetime) -> Callable[[dict[str, Any]], None]:
        def change(header: dict[str, Any]) -> None:
            header["io.cncf.notary.expiry"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            header["crit"] = ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]

        return change

    signed = envelope.sign(TARGET, key, signing_time=NOW)
    fresh = _resigned(signed, key, expires(NOW + datetime.timedelta(hours=1)))
    assert envelope.verify(fresh, [authority.root], now=NOW) == TARGET
    with pytest.raises(SignatureInvalid, match=r"^the signature expired on "):
        envelope.verify(fresh, [authority.root], now=NOW + datetime.timedelta(hours=2))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"not json", r"not a JSON object"),
        (b"[]", r"not a JSON object"),
        (b'{"payload": "a", "protected": "b"}', r"lacks a base64url `signature`"),
        (b'{"payload": "a", "protected": "b", "signature": "c"}', r"no certificate chain"),
        (
            b'{"payload": "a", "protected": "b", "signature": "c", "header": {"x5c": ["!"]}}',
            r"certificate 1 of the signature's chain \(`x5c`\) is not a base64 DER certificate",
        ),
    ],
)
def test_malformed_envelopes(authority: SigningAuthority, blob: bytes, message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        envelope.verify(blob, [authority.root], now=NOW)


def test_naive_times_are_refused(authority: SigningAuthority, key: keys.SigningKey) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        envelope.sign(TARGET, key, signing_time=datetime.datetime(2026, 1, 1))
    signed = envelope.sign(TARGET, key, signing_time=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        envelope.verify(signed, [authority.root], now=datetime.datetime(2026, 1, 1))


def test_no_trusted_certificates(key: keys.SigningKey) -> None:
    signed = envelope.sign(TARGET, key, signing_time=NOW)
    with pytest.raises(SignatureInvalid, match="no trusted certificates"):
        envelope.verify(signed, [], now=NOW)
