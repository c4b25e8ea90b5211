"""Image signatures through the operator (issue 13), checked with the real `notation` CLI.

`spec.signing`: the operator signs every image it pushes with a Notary Project signature from a
`kubernetes.io/tls` Secret (a root CA, an intermediate, a code-signing leaf), attached in the
real registry (distribution 2.8: the referrers tag schema) before the catalog names the image.
`notation verify` v1.3.2, compiled from the Go module proxy, accepts it with the root trusted;
it refuses an unsigned image, a signature moved onto another image (tampered) and the right
signature under a trust store that does not hold its root.

`spec.baseImageVerification`: nothing is built on an unsigned base image (Stalled,
`BaseImageNotTrusted`, no build record); once the base image's publisher signs it, the next pass
builds.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import pathlib
from typing import Any

import pytest

from controller.registry import auth
from controller.registry.client import RegistryClient, as_reference
from controller.registry.errors import ManifestNotFound
from controller.registry.manifests import OCI_MANIFEST
from controller.retention import inventory
from controller.signatures import artifacts, envelope, keys, referrers, trust
from tests.conftest import PUSH_PASSWORD, PUSH_USER, StartOperator
from tests.e2e.daemon_builds import inline_runner, operator_env, push_secret, registry_client
from tests.env import buildkitd, kube, notation, oci, registry, signing_certs, tokenserver

pytestmark = pytest.mark.e2e

NAME = "signed"
DELETER_PASSWORD = "d3lete-s3cret-Pa55"


def _runner(namespace: str, host: str, core: str, **spec: Any) -> dict[str, Any]:
    return inline_runner(NAME, host=host, repository=f"{namespace}/signed", core=core, **spec)


def _tls_secret(cluster: kube.Cluster, namespace: str, name: str, signer: Any) -> None:
    data = {
        "tls.key": signer.tls_key.decode(),
        "tls.crt": signer.tls_crt.decode(),
        "ca.crt": signer.ca_crt.decode(),
    }
    _secret(cluster, namespace, name, data, kind="kubernetes.io/tls")


def _secret(
    cluster: kube.Cluster, namespace: str, name: str, data: dict[str, str], kind: str = "Opaque"
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": kind,
        "metadata": {"name": name},
        "stringData": data,
    }
    cluster.apply(namespace, json.dumps(body))


def _verify(reference: str, trusted: list[bytes], folder: pathlib.Path) -> tuple[int, str]:
    done = notation.verify(
        reference,
        trusted,
        insecure_registry=True,
        folder=folder,
        username=PUSH_USER,
        password=PUSH_PASSWORD,
    )
    return done.returncode, done.stdout + done.stderr


async def _digest(host: str, image: str) -> str:
    async with registry_client(host) as client:
        return (await client.resolve(ref=image)).digest


async def _sign(host: str, image: str, signer: signing_certs.Signer) -> trust.Signature:
    """Sign `image` (by digest) as the operator does, with `signer`'s key and chain."""
    key = keys.load_signing_key(signer.tls_key, signer.tls_crt, signer.ca_crt)
    async with registry_client(host) as client:
        now = datetime.datetime.now(datetime.UTC)
        return await trust.sign_image(client, image=as_reference(image), key=key, now=now)


async def _signatures(host: str, image: str) -> list[referrers.Referrer]:
    async with registry_client(host) as client:
        return await referrers.list_referrers(
            client, image=as_reference(image), artifact_type=envelope.ARTIFACT_TYPE
        )


async def _move_signature(host: str, signed: str, other: str) -> None:
    """Tamper: attach `signed`'s signature envelope to `other`, as if it were `other`'s."""
    async with registry_client(host) as client:
        found = await referrers.list_referrers(
            client, image=as_reference(signed), artifact_type=envelope.ARTIFACT_TYPE
        )
        manifest = await client.get_manifest(ref=as_reference(signed).with_digest(found[0].digest))
        layer = next(x for x in manifest.layers if x.media_type == envelope.MEDIA_TYPE)  # type: ignore[union-attr]
        blob = await client.get_blob(ref=signed, digest=layer.digest)
        subject = await client.resolve(ref=other)
        document = json.loads(manifest.raw)
        document["subject"] = {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        }
        await referrers.attach(
            client,
            image=as_reference(other),
            manifest=json.dumps(document).encode(),
            media_type=OCI_MANIFEST,
            artifact_type=envelope.ARTIFACT_TYPE,
            blobs=[artifacts.EMPTY_CONFIG, blob],
        )


@pytest.mark.timeout(600)
def test_pushed_images_are_signed_and_notation_verifies_them(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    core: str,
    tmp_path: pathlib.Path,
) -> None:
    host = oci_registry.host
    authority = signing_certs.SigningAuthority("ade test signing root")
    signer = authority.issue("runner-images.contoso.test")
    push_secret(cluster, namespace, host, PUSH_PASSWORD)
    _tls_secret(cluster, namespace, "signing", signer)
    operator = start_operator(**operator_env(buildkit))
    spec = _runner(namespace, host, core, signing={"secretRef": {"name": "signing"}})
    cluster.apply(namespace, json.dumps(spec))
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=300)
    image = ready["status"]["latestImage"]
    pinned = f"{image['reference'].rpartition(':')[0]}@{image['digest']}"
    signature = ready["status"]["signature"]
    assert signature["digest"] == image["digest"]
    assert "CN=runner-images.contoso.test" in signature["signer"]
    signed = kube.condition(ready, "Signed")
    assert signed is not None
    assert signed["status"] == "True"

    code, said = _verify(pinned, [authority.root_pem], tmp_path / "trusted")
    assert code == 0, said
    assert "Successfully verified signature" in said

    # A stranger's root: the same signature is not trusted.
    stranger = signing_certs.SigningAuthority("stranger root")
    code, said = _verify(pinned, [stranger.root_pem], tmp_path / "stranger")
    assert code != 0, said

    # An unsigned image (the base image), and a signature moved onto it: both refused.
    base = f"{core}@{asyncio.run(_digest(host, f'{core}:4.0'))}"
    code, said = _verify(base, [authority.root_pem], tmp_path / "unsigned")
    assert code != 0, said
    assert "no signature" in said
    asyncio.run(_move_signature(host, pinned, base))
    code, said = _verify(base, [authority.root_pem], tmp_path / "tampered")
    assert code != 0, said

    # Signing again with the same certificate (a restart, another replica, a rebuild to the same
    # digest) finds the signature there: one signature, not one per pass.
    again = asyncio.run(_sign(host, pinned, signer))
    assert not again.created
    assert again.signature == signature["signature"]
    assert len(asyncio.run(_signatures(host, pinned))) == 1
    assert signer.tls_key.decode().splitlines()[1] not in operator.logs()


@pytest.mark.timeout(600)
def test_an_unsigned_base_image_is_not_built_on_until_it_is_signed(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    core: str,
) -> None:
    host = oci_registry.host
    publisher = signing_certs.SigningAuthority("base image publisher root")
    push_secret(cluster, namespace, host, PUSH_PASSWORD)
    _secret(cluster, namespace, "base-trust", {"publisher.crt": publisher.root_pem.decode()})
    start_operator(**operator_env(buildkit))
    spec = _runner(
        namespace, host, core, baseImageVerification={"secretRef": {"name": "base-trust"}}
    )
    cluster.apply(namespace, json.dumps(spec))
    stalled = cluster.wait_condition(namespace, NAME, "Stalled", status="True", timeout=120)
    trusted = kube.condition(stalled, "BaseImageTrusted")
    assert trusted is not None
    assert trusted["reason"] == "BaseImageNotTrusted"
    assert "has no Notary Project signature" in trusted["message"]
    assert not stalled.get("status", {}).get("builds")

    # The publisher signs the base image; the next pass trusts it and builds.
    base_digest = asyncio.run(_digest(host, f"{core}:4.0"))
    asyncio.run(_sign(host, f"{core}@{base_digest}", publisher.issue("base-images.contoso.test")))
    cluster.plane.kubectl(
        "annotate", "ri", NAME, "-n", namespace, "--overwrite",
        "runners.ade.dev/reconcile-requested-at=signed",
    )  # fmt: skip
    ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=300)
    assert ready["status"]["baseImageSignature"]["digest"] == base_digest
    assert "CN=base-images.contoso.test" in ready["status"]["baseImageSignature"]["signer"]
    assert ready["status"]["builds"][0]["result"] == "Succeeded"


def test_a_deleted_images_signatures_go_with_it_and_are_never_counted_as_images(
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    namespace: str,
    token_server: tokenserver.TokenServer,
) -> None:
    """Retention deletes an image's referrers after the image (distribution 2.8 keeps them, and
    their `sha256-<hex>` tag index, otherwise), and its inventory skips that tag."""
    host = oci_registry.host
    repository = f"{namespace}/kept-and-gone"
    built = pusher.push_image(repository, oci.Image(labels={"x": "1"}), tag="v1")
    image = f"{host}/{repository}@{built.digest}"
    authority = signing_certs.SigningAuthority("retention root")
    issued = authority.issue("signer.contoso.test")
    key = keys.load_signing_key(issued.tls_key, issued.tls_crt, issued.ca_crt)
    deleter = f"deleter-{namespace}"
    token_server.users[deleter] = tokenserver.User(
        password=DELETER_PASSWORD, actions=frozenset({"pull", "push", "delete"})
    )

    async def run() -> tuple[list[str], int, list[str], int]:
        credentials = {host: auth.Credentials(deleter, DELETER_PASSWORD)}
        async with RegistryClient(credentials=credentials, insecure_hosts=[host]) as client:
            now = datetime.datetime.now(datetime.UTC)
            signature = await trust.sign_image(client, image=as_reference(image), key=key, now=now)
            listed = await inventory.images(client, f"{host}/{repository}", {})
            tags_before = await client.list_tags(ref=f"{host}/{repository}")
            assert await client.delete_manifest(ref=image)
            gone = await referrers.delete_referrers(client, image=as_reference(image))
            tags_after = await client.list_tags(ref=f"{host}/{repository}")
            try:
                await client.get_manifest(ref=as_reference(image).with_digest(signature.signature))
                left = 1
            except ManifestNotFound:
                left = 0
            return [i.digest for i in listed] + tags_before, gone, tags_after, left

    try:
        listed_and_tags, gone, tags_after, left = asyncio.run(run())
    finally:
        del token_server.users[deleter]
    assert listed_and_tags[0] == built.digest
    assert len(listed_and_tags) == 1 + 2  # one image; tags v1 and the referrers tag
    assert artifacts.referrers_tag(built.digest) in listed_and_tags
    assert gone == 2  # the signature manifest and the tag index
    assert tags_after == []
    assert left == 0
