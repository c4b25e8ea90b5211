"""Step 3, trust the base image (`spec.baseImageVerification`): build only on a base image that
carries a valid Notary Project signature from a trusted certificate.

Checked by digest (the one the inputs step resolved), before any build: an unsigned base image,
or one signed by nobody the Secret trusts, stalls with `BaseImageNotTrusted` and builds nothing;
the catalog keeps the image it names. Looked at again when the base digest changes (the base
image trigger) or the Secret changes name, and on every pass while it is not trusted (someone
may sign it meanwhile). A verified digest is kept in memory: no registry request while idle.
The final stage's base image only: `FROM scratch` has nothing to verify, and stalls.
"""

from __future__ import annotations

import dataclasses

from controller import errors
from controller.api import conditions
from controller.reconcile import memory as memory_
from controller.reconcile import secrets, steps
from controller.reconcile import services as services_
from controller.registry import client as registry_client
from controller.registry import reference as reference_
from controller.signatures import trust

FIELD = "spec.baseImageVerification.secretRef"
REASON = "BaseImageNotTrusted"


@dataclasses.dataclass
class Trusted:
    """The step's memory: the (base digest, Secret) last verified, and what was found."""

    proof: tuple[str, str] | None = None
    signature: dict[str, str] = dataclasses.field(default_factory=dict)
    message: str = ""


@dataclasses.dataclass(frozen=True)
class TrustBaseImage:
    services: services_.Services
    memory: memory_.ObjectMemory
    condition: str = conditions.BASE_IMAGE_TRUSTED

    @property
    def trusted(self) -> Trusted:
        return self.memory.part(Trusted)

    async def __call__(self, ctx: steps.Context) -> steps.Outcome:
        policy = ctx.spec.base_image_verification
        if policy is None:
            if ctx.status.get("baseImageSignature") is not None:
                ctx.updates["baseImageSignature"] = None
            return steps.Outcome.skipped("spec.baseImageVerification is not set")
        inputs = ctx.resolved().inputs
        if inputs.base_image is None or not inputs.base_digest:
            raise errors.StalledError(
                REASON,
                "spec.baseImageVerification: the Dockerfile's final stage has no base image"
                " (FROM scratch): there is no signature to verify",
            )
        proof = (inputs.base_digest, policy.secret_ref.name)
        if self.trusted.proof == proof:
            ctx.updates["baseImageSignature"] = self.trusted.signature
            return steps.Outcome.done("Verified", self.trusted.message)
        trusted = await secrets.trusted_certificates(
            self.services.kube, namespace=ctx.namespace, ref=policy.secret_ref, field=FIELD
        )
        try:
            base = reference_.parse(inputs.base_image).with_digest(inputs.base_digest)
        except reference_.InvalidReference as error:
            raise errors.StalledError(REASON, str(error)) from None
        config = await secrets.push_config(self.services.kube, ctx)
        registry = self.services.registry.client(config)
        try:
            signature = await trust.verify_image(registry, image=base, trusted=trusted, now=ctx.now)
        except trust.NotTrusted as error:
            self.trusted.proof = None
            raise errors.StalledError(
                REASON, f"spec.baseImageVerification: {error}; nothing is built on it"
            ) from None
        except registry_client.RegistryError as error:
            raise registry_client.as_reconcile_error(
                error, auth_reason="BaseImageAuthFailed"
            ) from None
        finally:
            await registry.aclose()
        message = (
            f"the base image {inputs.base_image}@{inputs.base_digest} is signed by"
            f" {signature.signer}"
        )
        self.trusted.proof, self.trusted.message = proof, message
        self.trusted.signature = {
            "digest": signature.image,
            "signer": signature.signer,
            "signature": signature.signature,
        }
        ctx.updates["baseImageSignature"] = self.trusted.signature
        return steps.Outcome.done("Verified", message)
