"""Step 6, sign (`spec.signing`): the verified image carries the operator's signature before any
catalog names it.

A Notary Project signature of the image's digest, made with the TLS Secret's key and chain and
attached in the registry as a referrer (`controller.signatures`); `status.signature` says which.
An image already signed by the same certificate is not signed again (a rebuild to the same
digest, a restart, another replica). What was signed is kept in memory, so an idle operator
neither reads the Secret nor asks the registry again; a changed key signs the next image.
"""

from __future__ import annotations

import dataclasses

from controller import errors
from controller.api import conditions
from controller.observe import events as events_
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps
from controller.reconcile import services as services_
from controller.registry import client as registry_client
from controller.registry import reference as reference_
from controller.signatures import keys, trust

FIELD = "spec.signing.secretRef"


@dataclasses.dataclass
class Signed:
    """The sign step's memory: the (digest, Secret) last signed and how it was reported."""

    proof: tuple[str, str] | None = None
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Sign:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.SIGNED

    @property
    def signed(self) -> Signed:
        return self.memory.part(Signed)

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        signing = ctx.spec.signing
        if signing is None:
            if ctx.status.get("signature") is not None:
                ctx.updates["signature"] = None
            return steps.Outcome.skipped("spec.signing is not set")
        image = ctx.image()
        if image is None:
            return steps.Outcome.skipped("no image to sign yet")
        proof = (image.digest, signing.secret_ref.name)
        if self.signed.proof == proof:
            return steps.Outcome.done("Signed", self.signed.message)
        key = await secrets.image_signing_key(
            self.services.kube, namespace=ctx.namespace, ref=signing.secret_ref, field=FIELD
        )
        try:
            pinned = reference_.parse(image.reference).with_digest(image.digest)
        except reference_.InvalidReference as error:
            raise errors.StalledError("SigningFailed", str(error)) from None
        config = await secrets.push_config(self.services.kube, ctx)
        registry = self.services.registry.client(config)
        try:
            signature = await trust.sign_image(registry, image=pinned, key=key, now=ctx.now)
        except keys.KeyInvalid as error:  # e.g. the certificate expired since it was loaded
            raise errors.StalledError("SigningKeyInvalid", f"{FIELD}: {error}") from None
        except registry_client.RegistryError as error:
            raise registry_client.as_reconcile_error(
                error, auth_reason="RegistryAuthFailed", pushed=image.reference
            ) from None
        finally:
            await registry.aclose()
        ctx.updates["signature"] = {
            "digest": signature.image,
            "signature": signature.signature,
            "signer": signature.signer,
            "thumbprint": signature.thumbprint,
        }
        message = (
            f"{image.reference}@{image.digest} is signed by {signature.signer}"
            f" (signature {signature.signature})"
        )
        if signature.created:
            ctx.events.append(events_.Event("Normal", "ImageSigned", message))
        self.signed.proof, self.signed.message = proof, message
        return steps.Outcome.done("Signed", message)
