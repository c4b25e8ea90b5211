"""Signing keys from a TLS Secret's PEM (controller.signatures.keys): what loads, what not."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from controller.signatures import keys
from tests.env import signing_certs
from tests.env.signing_certs import SERVER_AUTH, SigningAuthority


@pytest.fixture(scope="module")
def authority() -> SigningAuthority:
    return SigningAuthority()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_loads_leaf_intermediate_and_root_with_thumbprints(authority: SigningAuthority) -> None:
    signer = authority.issue()
    key = keys.load_signing_key(signer.tls_key, signer.tls_crt, signer.ca_crt)
    assert [c.subject for c in key.chain] == [
        key.leaf.subject,
        authority.intermediate.subject if authority.intermediate else None,
        authority.root.subject,
    ]
    assert key.thumbprints == [hashlib.sha256(_der(c)).hexdigest() for c in key.chain]
    assert key.algorithm == "ES256"


def test_ca_crt_is_not_appended_twice(authority: SigningAuthority) -> None:
    signer = authority.issue()
    key = keys.load_signing_key(signer.tls_key, signer.tls_crt + signer.ca_crt, signer.ca_crt)
    assert len(key.chain) == 3


def test_ca_crt_bundle_contributes_only_the_missing_issuers() -> None:
    authority = SigningAuthority()
    stranger = SigningAuthority("another-root")
    signer = authority.issue()
    leaf_only = x509.load_pem_x509_certificates(signer.tls_crt)[0]
    assert authority.intermediate is not None
    bundle = stranger.root_pem + signing_certs.pem(authority.intermediate) + authority.root_pem
    key = keys.load_signing_key(signer.tls_key, signing_certs.pem(leaf_only), bundle)
    assert [c.subject for c in key.chain] == [
        leaf_only.subject,
        authority.intermediate.subject,
        authority.root.subject,
    ]


def test_pkcs1_and_sec1_keys_load() -> None:
    for kind, fmt in (
        ("rsa2048", serialization.PrivateFormat.TraditionalOpenSSL),
        ("p384", serialization.PrivateFormat.TraditionalOpenSSL),
    ):
        signer = SigningAuthority(intermediate=False).issue(key=kind)
        private = serialization.load_pem_private_key(signer.tls_key, None)
        traditional = private.private_bytes(
            serialization.Encoding.PEM, fmt, serialization.NoEncryption()
        )
        assert b"BEGIN RSA PRIVATE KEY" in traditional or b"BEGIN EC PRIVATE KEY" in traditional
        key = keys.load_signing_key(traditional, signer.tls_crt, signer.ca_crt)
        assert key.algorithm == {"rsa2048": "PS256", "p384": "ES384"}[kind]
        assert len(key.chain) == 2


def test_repr_shows_no_key_material(authority: SigningAuthority) -> None:
    signer = authority.issue(key="rsa2048")
    key = keys.load_signing_key(signer.tls_key, signer.tls_crt, signer.ca_crt)
    text = repr(key)
    assert text.startswith("SigningKey(PS256, ")
    assert "PRIVATE" not in text
    private = key.private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    numbers = private.private_numbers()
    for secret in (numbers.d, numbers.p, numbers.q):
        assert str(secret) not in text
        assert f"{secret:x}" not in text


def _error(tls_key: bytes, tls_crt: bytes, ca_crt: bytes | None) -> str:
    with pytest.raises(keys.KeyInvalid) as caught:
        keys.load_signing_key(tls_key, tls_crt, ca_crt)
    message = str(caught.value)
    body = b"".join(tls_key.splitlines()[1:-1]).decode()
    assert not body or body[:40] not in message
    return message


def test_refuses_what_is_not_a_pem_private_key(authority: SigningAuthority) -> None:
    signer = authority.issue()
    assert _error(b"not a key", signer.tls_crt, None) == "tls.key is not a PEM private key"
    assert "tls.key is not a PEM private key" in _error(
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", signer.tls_crt, None
    )


def test_refuses_an_encrypted_key(authority: SigningAuthority) -> None:
    signer = authority.issue()
    private = serialization.load_pem_private_key(signer.tls_key, None)
    encrypted = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    assert "tls.key is encrypted" in _error(encrypted, signer.tls_crt, signer.ca_crt)


def test_refuses_key_types_and_sizes_notation_has_no_algorithm_for(
    authority: SigningAuthority,
) -> None:
    signer = authority.issue()
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert "tls.key is an Ed25519 key" in _error(ed, signer.tls_crt, signer.ca_crt)
    k1 = ec.generate_private_key(ec.SECP256K1())
    assert "P-256, P-384 or P-521 (this one is secp256k1)" in _error(
        signing_certs.key_pem(k1), signer.tls_crt, signer.ca_crt
    )


def test_refuses_a_short_rsa_key(authority: SigningAuthority) -> None:
    signer = authority.issue(key="rsa1024")
    message = _error(signer.tls_key, signer.tls_crt, signer.ca_crt)
    assert message == "tls.key: RSA keys need at least 2048 bits (this one has 1024)"


def test_refuses_a_key_that_is_not_the_first_certificates(authority: SigningAuthority) -> None:
    signer, other = authority.issue(), authority.issue()
    message = _error(other.tls_key, signer.tls_crt, signer.ca_crt)
    assert message.startswith("tls.key does not match the first certificate of tls.crt")


def test_refuses_a_chain_without_its_root(authority: SigningAuthority) -> None:
    signer = authority.issue()
    message = _error(signer.tls_key, signer.tls_crt, None)
    assert message.startswith(
        "the certificate chain does not end in a self-signed root: add the root to tls.crt or "
        "ca.crt"
    )
    assert _error(signer.tls_key, signer.tls_crt, SigningAuthority("other").root_pem) == message


def test_refuses_a_leaf_without_digital_signature(authority: SigningAuthority) -> None:
    signer = authority.issue(digital_signature=False)
    message = _error(signer.tls_key, signer.tls_crt, signer.ca_crt)
    assert message.startswith("tls.crt and ca.crt: the signing certificate ")
    assert message.endswith("lacks the digitalSignature key usage")


def test_refuses_a_tls_server_certificate(authority: SigningAuthority) -> None:
    signer = authority.issue(eku=(SERVER_AUTH,))
    message = _error(signer.tls_key, signer.tls_crt, signer.ca_crt)
    assert "has an extended key usage for serverAuth" in message
    assert "issue it for codeSigning only" in message


def test_accepts_a_leaf_without_extended_key_usage_as_notation_does(
    authority: SigningAuthority,
) -> None:
    signer = authority.issue(eku=None)
    assert keys.load_signing_key(signer.tls_key, signer.tls_crt, signer.ca_crt).leaf


def test_refuses_a_ca_certificate_as_the_signing_certificate(authority: SigningAuthority) -> None:
    signer = authority.issue(ca=True)
    message = _error(signer.tls_key, signer.tls_crt, signer.ca_crt)
    assert "is a CA certificate (CA:TRUE)" in message


def test_refuses_unreadable_certificates(authority: SigningAuthority) -> None:
    signer = authority.issue()
    assert _error(signer.tls_key, b"", None) == "tls.crt holds no PEM certificate"
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert _error(signer.tls_key, signer.tls_crt, broken) == (
        "ca.crt holds a PEM certificate that cannot be read"
    )


def test_load_trusted_names_the_source() -> None:
    roots = SigningAuthority().root_pem + SigningAuthority("second").root_pem
    assert len(keys.load_trusted(roots, where="ConfigMap trust/ca.crt")) == 2
    with pytest.raises(keys.KeyInvalid, match=r"^ConfigMap trust/ca.crt holds no PEM certificate$"):
        keys.load_trusted(b"nothing", where="ConfigMap trust/ca.crt")
