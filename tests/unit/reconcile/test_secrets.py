"""Reading the Secrets a spec names: each failure stalls naming the field, never the value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pytest

from controller import errors, kube
from controller.api import spec as model
from controller.reconcile import secrets, steps
from tests.unit.reconcile import fakes

SPEC: dict[str, Any] = {
    "source": {"inline": {"dockerfile": "FROM scratch\n", "scripts": {}}},
    "image": {
        "registry": "contoso.azurecr.io",
        "repository": "ade/runner",
        "pushSecretRef": {"name": "push"},
    },
}
FIELD = "spec.image.pushSecretRef"


async def docker_config(found: Mapping[str, bytes] | int | None) -> dict[str, Any] | None:
    cluster = fakes.FakeKube({} if found is None else {"push": found})
    return await secrets.docker_config(
        cast(kube.Kube, cluster), namespace="team-a", spec=model.parse(SPEC)
    )


async def test_the_push_secret_is_parsed() -> None:
    found = await docker_config({".dockerconfigjson": b'{"auths": {"r": {"auth": "c2VjcmV0"}}}'})
    assert found == {"auths": {"r": {"auth": "c2VjcmV0"}}}


@pytest.mark.parametrize(
    ("found", "reason", "said"),
    [
        (None, "SecretNotFound", f"{FIELD}: Secret 'push' not found in namespace 'team-a'"),
        (403, "SecretForbidden", f"{FIELD}: the operator may not read Secret 'push'"),
        ({"token": b"s3cr3t-value"}, "SecretInvalid", f"{FIELD}: Secret 'push' has no"),
        ({".dockerconfigjson": b"s3cr3t-value"}, "SecretInvalid", "holds no valid"),
        ({".dockerconfigjson": b'"s3cr3t-value"'}, "SecretInvalid", "holds no valid"),
        # Found by tests/unit/properties/test_docker_config.py: RecursionError escaped.
        ({".dockerconfigjson": b"[" * 100_000 + b"]" * 100_000}, "SecretInvalid", "no valid"),
    ],
)
async def test_a_bad_secret_stalls_naming_the_field_not_the_value(
    found: Mapping[str, bytes] | int | None, reason: str, said: str
) -> None:
    with pytest.raises(errors.StalledError) as raised:
        await docker_config(found)
    assert raised.value.reason == reason
    assert said in raised.value.message
    assert "s3cr3t" not in raised.value.message


async def test_an_unreachable_api_server_is_transient() -> None:
    with pytest.raises(errors.TransientError) as raised:
        await docker_config(503)
    assert raised.value.reason == "KubernetesUnavailable"


async def test_no_secret_named_is_anonymous() -> None:
    cluster = cast(kube.Kube, fakes.FakeKube())
    anonymous = model.parse({**SPEC, "image": {**SPEC["image"], "pushSecretRef": None}})
    assert await secrets.docker_config(cluster, namespace="a", spec=anonymous) is None
    assert (
        await secrets.git_credentials_at(cluster, namespace="a", ref=None, field="spec.x") is None
    )


async def test_the_push_secret_is_read_once_per_reconcile() -> None:
    """Every step that reaches the registry asks for the push Secret; a reconcile reads it once
    (a new reconcile, a new context: read again), and a failed read is not remembered."""
    cluster = fakes.FakeKube({"push": 403})
    spec = model.parse(SPEC)
    ctx = steps.Context(
        name="r", namespace="team-a", generation=1, spec=spec, status={}, now=fakes.NOW
    )
    with pytest.raises(errors.StalledError):
        await secrets.push_config(cast(kube.Kube, cluster), ctx)
    cluster.secrets["push"] = {".dockerconfigjson": b'{"auths": {}}'}
    for _ in range(3):
        assert await secrets.push_config(cast(kube.Kube, cluster), ctx) == {"auths": {}}
    assert cluster.read == ["push", "push"]
    again = steps.Context(
        name="r", namespace="team-a", generation=1, spec=spec, status={}, now=fakes.NOW
    )
    await secrets.push_config(cast(kube.Kube, cluster), again)
    assert cluster.read == ["push", "push", "push"]
