"""The Notary Project's rules for a signing certificate chain (pure), for signing and verifying.

`algorithm` names the JWS algorithm a signing key's type and size dictate (RSA 2048/3072/4096 ->
PS256/PS384/PS512, ECDSA P-256/P-384/P-521 -> ES256/ES384/ES512; nothing else). `check` holds a
chain (leaf first, root last) to what notation-core-go's `ValidateCodeSigningCertChain` requires:
each certificate issued by the next, a self-signed root at the end (or one self-signed leaf), a
leaf that is no CA, with a critical key usage of digitalSignature (no encipherment, agreement or
certificate signing) and no TLS, e-mail, timestamping or OCSP extended key usage; CA certificates
with CA:TRUE, room in their path length and a critical keyCertSign key usage; no SHA-1 or MD5
certificate signatures. `check_validity` holds each certificate's validity period to an instant.
Failures are `ChainProblem`s with a message naming the certificate; callers say what it was about.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

RSA_ALGORITHMS = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
SUPPORTED = "RSA keys of 2048, 3072 or 4096 bits or ECDSA keys on P-256, P-384 or P-521"

# Extended key usages notation refuses in a signing certificate (notation-core-go's excludedEkus).
_FORBIDDEN_EKUS = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
_WEAK_HASHES = (hashes.SHA1, hashes.MD5)
_E = TypeVar("_E", bound=x509.ExtensionType)


class ChainProblem(Exception):
    """The chain breaks a rule; the message says which, naming the certificate."""


def name(cert: x509.Certificate) -> str:
    """The certificate's subject as RFC 4514 text (`CN=signer,O=Example`)."""
    return cert.subject.rfc4514_string() or "(empty subject)"


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER (notation's thumbprint)."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def algorithm(public_key: object) -> str:
    """The JWS `alg` a key of this type and size signs with (the spec's table)."""
    if isinstance(public_key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        size = public_key.key_size
        if size < 2048:
            raise ChainProblem(f"RSA keys need at least 2048 bits (this one has {size})")
        if size not in RSA_ALGORITHMS:
            raise ChainProblem(f"RSA keys must have 2048, 3072 or 4096 bits (this one has {size})")
        return RSA_ALGORITHMS[size]
    if isinstance(public_key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        curve = public_key.curve.name
        if curve not in EC_ALGORITHMS:
            raise ChainProblem(f"ECDSA keys must be on P-256, P-384 or P-521 (this one is {curve})")
        return EC_ALGORITHMS[curve]
    kind = type(public_key).__name__.removeprefix("_")
    raise ChainProblem(f"a {kind} is not a key Notary Project signatures use: {SUPPORTED}")


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` directly issued `cert` (names match and its key verifies the signature)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def self_signed(cert: x509.Certificate) -> bool:
    return issued_by(cert, cert)


def check(chain: Sequence[x509.Certificate]) -> None:
    """Raises `ChainProblem` unless `chain` is a Notary Project code-signing chain."""
    if not chain:
        raise ChainProblem("the certificate chain is empty")
    for cert in chain:
        _check_signature_hash(cert)
    leaf = chain[0]
    if len(chain) == 1:
        if not self_signed(leaf):
            raise ChainProblem(
                f"the signing certificate {name(leaf)} is not self-signed and the chain holds "
                "no certificate that issued it: the chain must end in a self-signed root"
            )
        _check_leaf(leaf)
        return
    for index, cert in enumerate(chain):
        if index == len(chain) - 1:
            if not self_signed(cert):
                raise ChainProblem(
                    "the certificate chain does not end in a self-signed root (its last "
                    f"certificate, {name(cert)}, was issued by {cert.issuer.rfc4514_string()})"
                )
        else:
            if self_signed(cert):
                role = "signing" if index == 0 else "intermediate"
                raise ChainProblem(
                    f"the {role} certificate {name(cert)} is self-signed but is not the last "
                    "of the chain"
                )
            parent = chain[index + 1]
            if not issued_by(cert, parent):
                raise ChainProblem(
                    f"the certificate {name(cert)} was not issued by the next one in the chain, "
                    f"{name(parent)}: order the chain leaf first, then each issuer up to the root"
                )
        if index == 0:
            _check_leaf(cert)
        else:
            _check_ca(cert, below=index - 1)


def check_validity(chain: Sequence[x509.Certificate], at: datetime.datetime, *, what: str) -> None:
    """Raises `ChainProblem` unless every certificate is valid at `at` (`what` names that time,
    e.g. "the signing time")."""
    for cert in chain:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if at > end:
            raise ChainProblem(
                f"the certificate {name(cert)} expired on {_time(end)}, before {what} ({_time(at)})"
            )
        if at < start:
            raise ChainProblem(
                f"the certificate {name(cert)} is valid only from {_time(start)}, "
                f"after {what} ({_time(at)})"
            )


def _time(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_signature_hash(cert: x509.Certificate) -> None:
    try:
        digest = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise ChainProblem(
            f"the certificate {name(cert)} is signed with an unsupported algorithm"
        ) from None
    if isinstance(digest, _WEAK_HASHES):
        raise ChainProblem(
            f"the certificate {name(cert)} is signed with {digest.name.upper()}, "
            "which is not allowed"
        )


def _extension(cert: x509.Certificate, kind: type[_E]) -> x509.Extension[_E] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _key_usage(cert: x509.Certificate, role: str) -> x509.KeyUsage:
    usage = _extension(cert, x509.KeyUsage)
    if usage is None:
        raise ChainProblem(f"the {role} certificate {name(cert)} has no key usage extension")
    if not usage.critical:
        raise ChainProblem(
            f"the {role} certificate {name(cert)} has a key usage extension not marked critical"
        )
    return usage.value


def _check_leaf(cert: x509.Certificate) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        raise ChainProblem(
            f"the signing certificate {name(cert)} is a CA certificate (CA:TRUE): "
            "sign with a leaf certificate the CA issued"
        )
    usage = _key_usage(cert, "signing")
    if not usage.digital_signature:
        raise ChainProblem(
            f"the signing certificate {name(cert)} lacks the digitalSignature key usage"
        )
    extra = [
        label
        for label, present in (
            ("keyEncipherment", usage.key_encipherment),
            ("dataEncipherment", usage.data_encipherment),
            ("keyAgreement", usage.key_agreement),
            ("keyCertSign", usage.key_cert_sign),
            ("cRLSign", usage.crl_sign),
            ("encipherOnly", usage.key_agreement and usage.encipher_only),
            ("decipherOnly", usage.key_agreement and usage.decipher_only),
        )
        if present
    ]
    if extra:
        raise ChainProblem(
            f"the signing certificate {name(cert)} has key usages a signing certificate must not "
            f"have: {', '.join(extra)} (digitalSignature only)"
        )
    ekus = _extension(cert, x509.ExtendedKeyUsage)
    if ekus is not None:
        forbidden = [label for oid, label in _FORBIDDEN_EKUS.items() if oid in ekus.value]
        if forbidden:
            raise ChainProblem(
                f"the signing certificate {name(cert)} has an extended key usage for "
                f"{' and '.join(forbidden)}, which notation refuses in a signing certificate: "
                "issue it for codeSigning only"
            )
    try:
        algorithm(cert.public_key())
    except ChainProblem as problem:
        raise ChainProblem(f"the signing certificate {name(cert)}: {problem}") from None


def _check_ca(cert: x509.Certificate, *, below: int) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.value.ca:
        raise ChainProblem(
            f"the CA certificate {name(cert)} lacks the basic constraints extension with CA:TRUE"
        )
    limit = constraints.value.path_length
    if limit is not None and limit < below:
        raise ChainProblem(
            f"the CA certificate {name(cert)} allows {limit} intermediate CA certificate(s) below "
            f"it (pathLenConstraint) but the chain has {below}"
        )
    if not _key_usage(cert, "CA").key_cert_sign:
        raise ChainProblem(f"the CA certificate {name(cert)} lacks the keyCertSign key usage")
