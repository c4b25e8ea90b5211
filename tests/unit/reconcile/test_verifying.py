"""The verify step's decisions with the registry replaced by a table: nothing to verify, a tag
overwritten behind the operator's back, an anonymous pull refused, a proof remembered."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from controller import errors
from controller.api import status
from controller.reconcile import memory, verifying
from tests.unit.reconcile import fakes

REFERENCE = "contoso.azurecr.io/ade/runner:v1"
BUILT = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
SPEC: dict[str, Any] = {
    "source": {"inline": {"dockerfile": "FROM scratch\n", "scripts": {}}},
    "image": {"registry": "contoso.azurecr.io", "repository": "ade/runner"},
}
ANONYMOUS = {
    **SPEC,
    "image": {**SPEC["image"], "pushSecretRef": {"name": "push"}},
    "registryAccess": {
        "mode": "AnonymousPull",
        "acr": {
            "subscriptionId": "4c0ffee0-0000-4000-8000-0000000000c3",
            "resourceGroup": "rg",
            "name": "contoso",
        },
    },
}


def built(spec: dict[str, Any]) -> Any:
    ctx = fakes.context(spec)
    ctx.built = status.LatestImage(reference=REFERENCE, digest=BUILT)
    return ctx


async def test_no_image_yet_is_skipped(tmp_path: pathlib.Path) -> None:
    step = verifying.Verify(fakes.make_services(tmp_path), memory.ObjectMemory())
    outcome = await step(fakes.context(SPEC))
    assert outcome.kind.value == "skipped"


async def test_a_tag_that_moved_elsewhere_stalls(tmp_path: pathlib.Path) -> None:
    registry = fakes.FakeRegistry(digests={REFERENCE: OTHER})
    step = verifying.Verify(fakes.make_services(tmp_path, registry=registry), memory.ObjectMemory())
    with pytest.raises(errors.StalledError) as raised:
        await step(built(SPEC))
    assert raised.value.reason == "DigestMismatch"
    assert f"resolves to {OTHER}, not to the built {BUILT}" in raised.value.message


async def test_a_tag_not_there_yet_is_transient(tmp_path: pathlib.Path) -> None:
    step = verifying.Verify(fakes.make_services(tmp_path), memory.ObjectMemory())
    with pytest.raises(errors.TransientError) as raised:
        await step(built(SPEC))
    assert raised.value.reason == "ImageNotFound"


async def test_an_anonymous_pull_refused_is_retried_and_leaves_the_catalog(
    tmp_path: pathlib.Path,
) -> None:
    registry = fakes.FakeRegistry(digests={REFERENCE: BUILT}, refuse_anonymous=True)
    kube = fakes.FakeKube({"push": {".dockerconfigjson": b'{"auths": {}}'}})
    services = fakes.make_services(tmp_path, kube_=kube, registry=registry)
    step = verifying.Verify(services, memory.ObjectMemory())
    with pytest.raises(errors.TransientError) as raised:
        await step(built(ANONYMOUS))
    assert raised.value.reason == "AnonymousPullFailed"
    assert raised.value.retry_after == verifying.ANONYMOUS_RETRY_SECONDS
    assert "the catalog is left as it is" in raised.value.message
    # the tag with the push credentials, then the pull with none at all
    assert registry.lookups == [(REFERENCE, True), (REFERENCE, False)]
    assert [client.closed for client in registry.clients] == [True]  # closed though it failed


async def test_a_verified_image_is_not_fetched_again(tmp_path: pathlib.Path) -> None:
    registry = fakes.FakeRegistry()
    remembered = memory.ObjectMemory()
    remembered.part(verifying.Verified).proof = (REFERENCE, BUILT, False)
    remembered.part(verifying.Verified).conformance = "ADE runner conformant (read 1 of 3 layer(s))"
    kube = fakes.FakeKube({"push": {".dockerconfigjson": b'{"auths": {}}'}})
    step = verifying.Verify(
        fakes.make_services(tmp_path, kube_=kube, registry=registry), remembered
    )
    outcome = await step(built(SPEC))
    assert registry.lookups == []
    assert (
        outcome.message
        == f"{REFERENCE} resolves to {BUILT}; ADE runner conformant (read 1 of 3 layer(s))"
    )
    # the same digest with anonymous pull asked for is a new proof: looked up again
    with pytest.raises(errors.TransientError):
        await step(built(ANONYMOUS))
    assert registry.lookups


@pytest.mark.parametrize(
    ("platforms", "checked"),
    [
        ([], "linux/amd64"),
        (["linux/arm64", "linux/amd64"], "linux/amd64"),
        (["linux/arm64"], "linux/arm64"),
    ],
)
def test_the_platform_checked_is_ades_unless_the_image_has_none(
    platforms: list[str], checked: str
) -> None:
    assert verifying.platform(fakes.context({**SPEC, "platforms": platforms}).spec) == checked
