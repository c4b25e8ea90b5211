"""Throw-away code-signing PKIs for Notary Project signatures: root CA -> intermediate -> leaf.

`SigningAuthority()` makes a root CA (and by default an intermediate CA under it); `issue()` makes
a leaf certificate and key as a Kubernetes TLS Secret holds them (`Signer`: `tls_key` PKCS#8 PEM,
`tls_crt` the leaf then the intermediate, `ca_crt` the root, which is also what a verifier
trusts). By default the leaf is what Notation wants (critical digitalSignature key usage, the
codeSigning extended key usage, not a CA); the keyword arguments break one rule at a time for
the negative tests. Keys: "p256", "p384", "p521", "rsa2048", "rsa3072", "rsa4096", "rsa1024".
"""

from __future__ import annotations

import dataclasses
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
_CURVES: dict[str, ec.EllipticCurve] = {
    "p256": ec.SECP256R1(),
    "p384": ec.SECP384R1(),
    "p521": ec.SECP521R1(),
}


@dataclasses.dataclass(frozen=True)
class Signer:
    """A signing certificate and key as the Secret's `tls.key`, `tls.crt` and `ca.crt` hold them."""

    tls_key: bytes
    tls_crt: bytes
    ca_crt: bytes


def new_key(kind: str) -> Key:
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    return ec.generate_private_key(_CURVES[kind])


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ade-runner-operator tests"),
        ]
    )


def _usage(*, digital_signature: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(
    common_name: str,
    key: Key,
    *,
    issuer: tuple[x509.Certificate, Key] | None,
    now: datetime.datetime,
) -> x509.Certificate:
    issuer_name = issuer[0].subject if issuer else _name(common_name)
    signing_key = issuer[1] if issuer else key
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=False, cert_sign=True), critical=True)
        .sign(signing_key, hashes.SHA256())
    )


class SigningAuthority:
    """A root CA, and unless `intermediate=False` an intermediate CA that issues the leaves."""

    def __init__(
        self, name: str = "ade-signing-root", *, key: str = "p256", intermediate: bool = True
    ) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.root_key = new_key(key)
        self.root = _ca(name, self.root_key, issuer=None, now=now)
        self.issuer: tuple[x509.Certificate, Key] = (self.root, self.root_key)
        self.intermediate: x509.Certificate | None = None
        if intermediate:
            intermediate_key = new_key(key)
            self.intermediate = _ca(
                f"{name} intermediate", intermediate_key, issuer=self.issuer, now=now
            )
            self.issuer = (self.intermediate, intermediate_key)

    @property
    def root_pem(self) -> bytes:
        """What a verifier trusts (and a Secret's `ca.crt`)."""
        return pem(self.root)

    def issue(
        self,
        common_name: str = "ade-runner-operator signer",
        *,
        key: str = "p256",
        eku: tuple[x509.ObjectIdentifier, ...] | None = (CODE_SIGNING,),
        ca: bool = False,
        digital_signature: bool = True,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> Signer:
        """A leaf certificate: `eku` None leaves out the extended key usage extension; `ca`
        makes it a CA certificate; the validity defaults to a day ago .. in a week."""
        now = datetime.datetime.now(datetime.UTC)
        leaf_key = new_key(key)
        issuer_cert, issuer_key = self.issuer
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(issuer_cert.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(days=1))
            .not_valid_after(not_after or now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_usage(digital_signature=digital_signature, cert_sign=ca), critical=True)
        )
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        leaf = builder.sign(issuer_key, hashes.SHA256())
        chain = pem(leaf) + (pem(self.intermediate) if self.intermediate else b"")
        return Signer(tls_key=key_pem(leaf_key), tls_crt=chain, ca_crt=self.root_pem)
