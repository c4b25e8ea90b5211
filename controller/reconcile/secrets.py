"""The Secrets a RunnerImage names, read and parsed for the steps, with errors naming the field.

Every reader takes the cluster client and the object's namespace and returns the parsed
credentials (None when the spec names no Secret). A Secret that is missing, unreadable or
malformed stalls with a reason and a message naming the spec field; the Secret's values never
appear in a message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cryptography import x509

from controller import errors
from controller import kube as kube_
from controller.api import spec as model
from controller.azure import credentials as azure_credentials
from controller.git import credentials as git_credentials
from controller.git import signing
from controller.reconcile import steps
from controller.signatures import keys as signature_keys


class SecretMissing(errors.StalledError):
    def __init__(self, field: str, namespace: str, name: str) -> None:
        super().__init__(
            "SecretNotFound", f"{field}: Secret {name!r} not found in namespace {namespace!r}"
        )


async def read(kube: kube_.Kube, *, namespace: str, name: str, field: str) -> kube_.Secret:
    """The Secret `name` that the spec names at `field`."""
    try:
        secret = await kube.read_secret(namespace=namespace, name=name)
    except kube_.KubeError as error:
        if error.status == 403:
            raise errors.StalledError(
                "SecretForbidden", f"{field}: the operator may not read Secret {name!r}"
            ) from None
        raise errors.TransientError("KubernetesUnavailable", str(error)) from None
    if secret is None:
        raise SecretMissing(field, namespace, name)
    return secret


async def docker_config(
    kube: kube_.Kube, *, namespace: str, spec: model.RunnerImageSpec
) -> dict[str, Any] | None:
    """The push Secret's `.dockerconfigjson`, parsed (None when the spec names no Secret)."""
    ref = spec.image.push_secret_ref
    if ref is None:
        return None
    field = "spec.image.pushSecretRef"
    secret = await read(kube, namespace=namespace, name=ref.name, field=field)
    raw = secret.data.get(".dockerconfigjson") or secret.data.get("config.json")
    if raw is None:
        raise errors.StalledError(
            "SecretInvalid",
            f"{field}: Secret {ref.name!r} has no .dockerconfigjson key "
            "(create it with kubectl create secret docker-registry)",
        )
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        parsed = None
    if not isinstance(parsed, dict):
        raise errors.StalledError(
            "SecretInvalid", f"{field}: Secret {ref.name!r} holds no valid .dockerconfigjson"
        )
    return parsed


PUSH_CONFIG = "push-config"


async def push_config(kube: kube_.Kube, ctx: steps.Context) -> dict[str, Any] | None:
    """`docker_config` of the reconciled spec, read once per reconcile: building, verifying,
    signing and retention all reach the registry with it."""
    if PUSH_CONFIG not in ctx.reads:
        ctx.reads[PUSH_CONFIG] = await docker_config(kube, namespace=ctx.namespace, spec=ctx.spec)
    config: dict[str, Any] | None = ctx.reads[PUSH_CONFIG]
    return config


async def azure_client_secret(
    kube: kube_.Kube, *, namespace: str, ref: model.SecretRef | None, field: str
) -> azure_credentials.ClientSecret | None:
    """The Azure client secret a spec names at `field`; None: the operator's own identity."""
    if ref is None:
        return None
    secret = await read(kube, namespace=namespace, name=ref.name, field=field)
    return azure_credentials.client_secret_from_secret(secret.data, field=field)


async def git_credentials_at(
    kube: kube_.Kube, *, namespace: str, ref: model.SecretRef | None, field: str
) -> git_credentials.Credentials | None:
    """The git credentials (HTTP or SSH) a spec names at `field`; None: anonymous."""
    if ref is None:
        return None
    secret = await read(kube, namespace=namespace, name=ref.name, field=field)
    return git_credentials.credentials_from_secret(secret.data, secret=secret.name)


async def signing_key_at(
    kube: kube_.Kube, *, namespace: str, ref: model.SecretRef | None, field: str
) -> signing.SigningKey | None:
    """The commit signing key a spec names at `field` (SSH or OpenPGP); None: unsigned."""
    if ref is None:
        return None
    secret = await read(kube, namespace=namespace, name=ref.name, field=field)
    # In a thread: a passphrase-protected OpenSSH key is decrypted with bcrypt (CPU-bound).
    return await asyncio.to_thread(
        signing.signing_key_from_secret, secret.data, secret=secret.name, field=field
    )


async def image_signing_key(
    kube: kube_.Kube, *, namespace: str, ref: model.SecretRef, field: str
) -> signature_keys.SigningKey:
    """The image signing key and certificate chain of the TLS Secret at `field`."""
    secret = await read(kube, namespace=namespace, name=ref.name, field=field)
    key, certificate = secret.data.get("tls.key"), secret.data.get("tls.crt")
    if key is None or certificate is None:
        raise errors.StalledError(
            "SigningKeyInvalid",
            f"{field}: Secret {ref.name!r} needs tls.key and tls.crt (a kubernetes.io/tls"
            " Secret, as cert-manager writes it)",
        )
    try:
        return signature_keys.load_signing_key(key, certificate, secret.data.get("ca.crt"))
    except signature_keys.KeyInvalid as error:
        raise errors.StalledError(
            "SigningKeyInvalid", f"{field}: Secret {ref.name!r}: {error}"
        ) from None


async def trusted_certificates(
    kube: kube_.Kube, *, namespace: str, ref: model.SecretRef, field: str
) -> list[x509.Certificate]:
    """The trusted certificates of the Secret at `field`: every `*.crt` and `*.pem` key."""
    secret = await read(kube, namespace=namespace, name=ref.name, field=field)
    found: list[x509.Certificate] = []
    names = sorted(name for name in secret.data if name.endswith((".crt", ".pem")))
    if not names:
        raise errors.StalledError(
            "TrustedCertificatesInvalid",
            f"{field}: Secret {ref.name!r} has no key ending in .crt or .pem",
        )
    for name in names:
        try:
            found += signature_keys.load_trusted(secret.data[name], where=name)
        except signature_keys.KeyInvalid as error:
            raise errors.StalledError(
                "TrustedCertificatesInvalid", f"{field}: Secret {ref.name!r}: {error}"
            ) from None
    return found
