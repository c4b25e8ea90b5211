"""The Notary Project JWS signature envelope (pure): signing a manifest descriptor, verifying one.

`sign` writes what `notation sign --signature-format jws` writes (notation-core-go's
`signature/jws`): the flattened JWS JSON serialization of the payload
`{"targetArtifact": descriptor}`, with the protected header `alg` (from the key: PS256/PS384/
PS512, ES256/ES384/ES512), `cty` (the Notary payload type), `crit`
[`io.cncf.notary.signingScheme`], the signing scheme `notary.x509` and the signing time (RFC 3339,
whole seconds, UTC), and the unprotected header `x5c` (the chain, leaf first) and
`io.cncf.notary.signingAgent`. RSA signs with PSS (salt as long as the hash), ECDSA with the JWS
`r || s` encoding.

`verify` does what `notation verify` does at the strict level without a timestamp authority:
parses the envelope, checks the protected header and the signature against the leaf certificate,
the chain (`chain.check`), each certificate's validity at the signing time and now, that some
certificate of the chain is a trusted one (by DER, as notation's `VerifyAuthenticity`), and any
expiry; it returns the signed descriptor, which the caller compares with the manifest it verifies
(notation refuses a descriptor mismatch). Every failure is a `SignatureInvalid`.
`signing_certificate` names who signed an envelope.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import json
import re
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding

from controller.signatures import chain
from controller.signatures.keys import KeyInvalid, SigningKey

MEDIA_TYPE = "application/jose+json"
ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SIGNING_SCHEME = "notary.x509"
SIGNING_AGENT = "ade-runner-operator"

SCHEME_HEADER = "io.cncf.notary.signingScheme"
TIME_HEADER = "io.cncf.notary.signingTime"
EXPIRY_HEADER = "io.cncf.notary.expiry"
AUTHENTIC_TIME_HEADER = "io.cncf.notary.authenticSigningTime"
AGENT_HEADER = "io.cncf.notary.signingAgent"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "PS256": hashes.SHA256,
    "PS384": hashes.SHA384,
    "PS512": hashes.SHA512,
    "ES256": hashes.SHA256,
    "ES384": hashes.SHA384,
    "ES512": hashes.SHA512,
}
_EC_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


class SignatureInvalid(Exception):
    """The signature is not a valid, trusted Notary Project signature; the message says why."""


@dataclasses.dataclass(frozen=True)
class Target:
    """The descriptor of the signed manifest."""

    media_type: str
    digest: str
    size: int


def sign(target: Target, key: SigningKey, *, signing_time: datetime.datetime) -> bytes:
    """The JWS envelope signing `target` with `key` at `signing_time` (timezone-aware).

    Raises `KeyInvalid` when a certificate of the key's chain is not valid at the signing time
    (notation refuses to sign then), `ValueError` for a malformed descriptor or a naive time."""
    if not _DIGEST.match(target.digest) or not target.media_type or target.size < 0:
        raise ValueError(f"not a manifest descriptor: {target}")
    at = _whole_seconds(signing_time)
    try:
        chain.check_validity(key.chain, at, what="the signing time")
    except chain.ChainProblem as problem:
        raise KeyInvalid(str(problem)) from None
    alg = key.algorithm
    protected = {
        "alg": alg,
        "crit": [SCHEME_HEADER],
        "cty": PAYLOAD_TYPE,
        SCHEME_HEADER: SIGNING_SCHEME,
        TIME_HEADER: _rfc3339(at),
    }
    payload = {
        "targetArtifact": {
            "mediaType": target.media_type,
            "digest": target.digest,
            "size": target.size,
        }
    }
    protected_b64 = _b64url(_compact(protected, sort_keys=True))
    payload_b64 = _b64url(_compact(payload))
    signature = _sign(key, alg, f"{protected_b64}.{payload_b64}".encode("ascii"))
    envelope = {
        "payload": payload_b64,
        "protected": protected_b64,
        "header": {
            "x5c": [
                base64.b64encode(cert.public_bytes(Encoding.DER)).decode("ascii")
                for cert in key.chain
            ],
            AGENT_HEADER: SIGNING_AGENT,
        },
        "signature": _b64url(signature),
    }
    return _compact(envelope)


def verify(
    envelope: bytes, trusted: Sequence[x509.Certificate], *, now: datetime.datetime
) -> Target:
    """The descriptor `envelope` signs, once it is checked to be a valid signature by a chain that
    holds one of the `trusted` certificates; `SignatureInvalid` otherwise. `now` is aware."""
    if now.tzinfo is None:
        raise ValueError("the time of verification must be timezone-aware")
    document = _json_object(envelope, "the signature envelope is not a JSON object")
    fields = {}
    for field in ("payload", "protected", "signature"):
        value = document.get(field)
        if not isinstance(value, str) or not _BASE64URL.match(value):
            raise SignatureInvalid(f"the signature envelope lacks a base64url `{field}`")
        fields[field] = value
    certs = _certificates(document.get("header"))
    header = _json_object(
        _b64url_decode(fields["protected"]), "the signature's protected header is not JSON"
    )
    alg, signing_time, expiry = _protected(header)
    leaf = certs[0]
    try:
        expected = chain.algorithm(leaf.public_key())
    except chain.ChainProblem as problem:
        raise SignatureInvalid(f"the signing certificate {chain.name(leaf)}: {problem}") from None
    if alg != expected:
        raise SignatureInvalid(
            f"the signature's algorithm {alg} does not match the signing certificate's key, "
            f"which signs with {expected}"
        )
    signed = f"{fields['protected']}.{fields['payload']}".encode("ascii")
    if not _valid(leaf, alg, signed, _b64url_decode(fields["signature"])):
        raise SignatureInvalid("the signature does not match its content")
    try:
        chain.check(certs)
        chain.check_validity(certs, signing_time, what="the signing time")
        chain.check_validity(certs, now, what="the time of verification")
    except chain.ChainProblem as problem:
        raise SignatureInvalid(f"the signature's certificate chain is invalid: {problem}") from None
    _check_trusted(certs, trusted)
    if expiry is not None and now >= expiry:
        raise SignatureInvalid(f"the signature expired on {_rfc3339(expiry)}")
    payload = _json_object(_b64url_decode(fields["payload"]), "the signed payload is not JSON")
    return _target(payload.get("targetArtifact"))


def signing_certificate(envelope: bytes) -> x509.Certificate:
    """The signing certificate (the first of `x5c`) of an envelope: who signed, once `verify`
    accepted it; `SignatureInvalid` if the envelope carries none."""
    document = _json_object(envelope, "the signature envelope is not a JSON object")
    return _certificates(document.get("header"))[0]


def _whole_seconds(at: datetime.datetime) -> datetime.datetime:
    if at.tzinfo is None:
        raise ValueError("the signing time must be timezone-aware")
    return at.astimezone(datetime.UTC).replace(microsecond=0)


def _rfc3339(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(value: Any, *, sort_keys: bool = False) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: SigningKey, alg: str, data: bytes) -> bytes:
    digest = _HASHES[alg]()
    private = key.private_key
    if isinstance(private, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        return private.sign(data, pss, digest)
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(digest)))
    size = _EC_SIZES[alg]
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _valid(leaf: x509.Certificate, alg: str, data: bytes, signature: bytes) -> bool:
    digest = _HASHES[alg]()
    public = leaf.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
            public.verify(signature, data, pss, digest)
            return True
        if isinstance(public, ec.EllipticCurvePublicKey):
            size = _EC_SIZES[alg]
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            public.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
            return True
    except InvalidSignature:
        return False
    return False


def _json_object(data: bytes, message: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise SignatureInvalid(message) from None
    if not isinstance(value, dict):
        raise SignatureInvalid(message)
    return value


def _certificates(header: object) -> list[x509.Certificate]:
    x5c = header.get("x5c") if isinstance(header, dict) else None
    if not isinstance(x5c, list) or not x5c:
        raise SignatureInvalid("the signature carries no certificate chain (`x5c`)")
    certs = []
    for index, item in enumerate(x5c, start=1):
        try:
            if not isinstance(item, str):
                raise ValueError(item)
            certs.append(x509.load_der_x509_certificate(base64.b64decode(item, validate=True)))
        except (ValueError, binascii.Error):
            raise SignatureInvalid(
                f"certificate {index} of the signature's chain (`x5c`) is not a base64 DER "
                "certificate"
            ) from None
    return certs


def _protected(
    header: dict[str, Any],
) -> tuple[str, datetime.datetime, datetime.datetime | None]:
    alg = header.get("alg")
    if alg not in _HASHES:
        raise SignatureInvalid(
            f"the signature's algorithm {alg!r} is not one Notary Project signatures use "
            f"({', '.join(_HASHES)})"
        )
    if header.get("cty") != PAYLOAD_TYPE:
        raise SignatureInvalid(
            f"the signature's payload type is {header.get('cty')!r}, not {PAYLOAD_TYPE}"
        )
    scheme = header.get(SCHEME_HEADER)
    if scheme != SIGNING_SCHEME:
        raise SignatureInvalid(
            f"the signing scheme {scheme!r} is not supported (only {SIGNING_SCHEME})"
        )
    if AUTHENTIC_TIME_HEADER in header:
        raise SignatureInvalid(f"{AUTHENTIC_TIME_HEADER} must not be present for {SIGNING_SCHEME}")
    crit = header.get("crit")
    if not isinstance(crit, list) or not all(isinstance(name, str) for name in crit):
        raise SignatureInvalid("the signature's protected header has no `crit` list")
    required = {SCHEME_HEADER} | ({EXPIRY_HEADER} if EXPIRY_HEADER in header else set())
    missing = required - set(crit)
    if missing:
        raise SignatureInvalid(f"the signature does not mark {', '.join(sorted(missing))} critical")
    unknown = set(crit) - required
    if unknown:
        raise SignatureInvalid(
            f"the signature marks {', '.join(sorted(unknown))} critical, which this verifier "
            "does not understand"
        )
    signing_time = _time(header.get(TIME_HEADER), TIME_HEADER)
    expiry = None
    if EXPIRY_HEADER in header:
        expiry = _time(header[EXPIRY_HEADER], EXPIRY_HEADER)
        if expiry <= signing_time:
            raise SignatureInvalid("the signature's expiry is not after its signing time")
    return alg, signing_time, expiry


def _time(value: object, header: str) -> datetime.datetime:
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise SignatureInvalid(f"the signature's {header} is not an RFC 3339 time")
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in "Zz" else zone
    micro = f".{fraction[:6]:0<6}" if fraction else ""
    try:
        return datetime.datetime.fromisoformat(f"{day}T{clock}{micro}{zone}")
    except ValueError:
        raise SignatureInvalid(f"the signature's {header} is not an RFC 3339 time") from None


def _check_trusted(certs: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate]) -> None:
    if not trusted:
        raise SignatureInvalid("no trusted certificates were given to verify the signature with")
    anchors = {cert.public_bytes(Encoding.DER) for cert in trusted}
    if any(cert.public_bytes(Encoding.DER) in anchors for cert in certs):
        return
    root = certs[-1]
    raise SignatureInvalid(
        f"signed by a certificate no trusted certificate issued (subject {chain.name(certs[0])}; "
        f"its chain's root {chain.name(root)}, SHA-256 fingerprint {chain.fingerprint(root)})"
    )


def _target(value: object) -> Target:
    if isinstance(value, dict):
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if (
            isinstance(media_type, str)
            and media_type
            and isinstance(digest, str)
            and _DIGEST.match(digest)
            and isinstance(size, int)
            and not isinstance(size, bool)
            and size >= 0
        ):
            return Target(media_type, digest, size)
    raise SignatureInvalid("the signed payload has no targetArtifact descriptor")
