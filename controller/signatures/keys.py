"""Signing keys and trusted certificates from a Secret's PEM (pure), held to Notation's rules.

`load_signing_key` reads a Kubernetes TLS Secret's `tls.key` (unencrypted PEM: PKCS#1, PKCS#8 or
SEC1), `tls.crt` (the signing certificate first, then any intermediates) and optional `ca.crt`
(issuers the chain lacks, up to its root, are taken from it), and refuses with `KeyInvalid` what
`notation sign` would refuse: a key type or size the Notary Project has no algorithm for, a key
that is not the first certificate's, and a chain that breaks `chain.check`. `load_trusted` reads
the certificates a verifier trusts; `thumbprint` is a certificate's SHA-256, as Notation lists it.
Messages name the Secret key and never hold key material.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from controller.signatures import chain as certchain

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class KeyInvalid(Exception):
    """The key or certificates cannot sign Notary Project signatures; the message says why."""


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """A private key and its certificate chain: the signing certificate first, the root last."""

    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def algorithm(self) -> str:
        """The JWS `alg` this key signs with (PS256 ... ES512)."""
        return certchain.algorithm(self.private_key)

    @property
    def thumbprints(self) -> list[str]:
        """Lowercase hex SHA-256 of each certificate's DER, leaf first: Notation's
        `io.cncf.notary.x509chain.thumbprint#S256` annotation."""
        return [thumbprint(cert) for cert in self.chain]

    def __repr__(self) -> str:
        return (
            f"SigningKey({self.algorithm}, {certchain.name(self.leaf)}, "
            f"{len(self.chain)} certificate(s), leaf SHA-256 {self.thumbprints[0]})"
        )


def thumbprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER (one entry of Notation's thumbprints)."""
    return certchain.fingerprint(cert)


def load_signing_key(tls_key: bytes, tls_crt: bytes, ca_crt: bytes | None) -> SigningKey:
    """The signing key of a TLS Secret's `tls.key`, `tls.crt` and optional `ca.crt`."""
    key = _private_key(tls_key)
    try:
        certchain.algorithm(key)
    except certchain.ChainProblem as problem:
        raise KeyInvalid(f"tls.key: {problem}") from None
    certs = _certificates(tls_crt, where="tls.crt")
    extra = _certificates(ca_crt, where="ca.crt") if ca_crt and ca_crt.strip() else []
    if _public(key.public_key()) != _public(certs[0].public_key()):
        raise KeyInvalid(
            "tls.key does not match the first certificate of tls.crt "
            f"({certchain.name(certs[0])}): tls.crt must start with the signing certificate"
        )
    full = _complete(certs, extra)
    last = full[-1]
    if not certchain.self_signed(last):
        raise KeyInvalid(
            "the certificate chain does not end in a self-signed root: add the root to tls.crt "
            f"or ca.crt (the last certificate, {certchain.name(last)}, was issued by "
            f"{last.issuer.rfc4514_string()})"
        )
    try:
        certchain.check(full)
    except certchain.ChainProblem as problem:
        where = "tls.crt and ca.crt" if len(full) > len(certs) else "tls.crt"
        raise KeyInvalid(f"{where}: {problem}") from None
    return SigningKey(key, tuple(full))


def load_trusted(pem: bytes, *, where: str) -> list[x509.Certificate]:
    """One or more PEM certificates a verifier trusts; `where` names their source in errors."""
    return _certificates(pem, where=where)


def _private_key(pem: bytes) -> PrivateKey:
    if b"-----BEGIN" not in pem or b"PRIVATE KEY-----" not in pem:
        raise KeyInvalid("tls.key is not a PEM private key")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise KeyInvalid(
            "tls.key is encrypted: the Secret must hold an unencrypted PEM private key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyInvalid(
            "tls.key is not a PEM private key (or not one this operator reads)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey") or "unknown"
        raise KeyInvalid(
            f"tls.key is an {kind} key: Notary Project signatures take {certchain.SUPPORTED}"
        )
    return key


def _certificates(pem: bytes | None, *, where: str) -> list[x509.Certificate]:
    if not pem or b"-----BEGIN CERTIFICATE-----" not in pem:
        raise KeyInvalid(f"{where} holds no PEM certificate")
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise KeyInvalid(f"{where} holds a PEM certificate that cannot be read") from None


def _public(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _complete(
    certs: list[x509.Certificate], extra: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """`certs`, then the issuers from `extra` its last certificate lacks, up to a self-signed
    one."""
    out = list(certs)
    while not certchain.self_signed(out[-1]):
        issuer = next((c for c in extra if c not in out and certchain.issued_by(out[-1], c)), None)
        if issuer is None:
            break
        out.append(issuer)
    return out
