"""The registry access step's own logic, with Azure replaced by a recorded fake.

What ARM answers is tested with the real SDKs against the emulator (tests/e2e); here: which
Event a change deserves (first set-up or drift), that a check is shared by RunnerImages on the
same registry for the check interval, the status it writes, and the errors for bad credentials.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import pathlib
from typing import Any

import pytest

from controller import errors, kube
from controller.api import spec as model
from controller.azure import access as azure_access
from controller.azure import cache as azure_cache
from controller.reconcile import access, limits, memory, services, steps

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
SUB = "4c0ffee0-0000-4000-8000-0000000000c3"
REGISTRY_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/acr"
)
TENANT, CLIENT = "6d1f3c2e-8a4b-4f7e-9c0d-a11e5e7e57ed", "0b7c4f62-3e1a-4d9b-8f25-0a1de0a7e001"


class FakeKube:
    def __init__(self, secrets: dict[str, dict[str, bytes]]) -> None:
        self.secrets = secrets

    async def read_secret(self, *, namespace: str, name: str) -> kube.Secret | None:
        data = self.secrets.get(name)
        return None if data is None else kube.Secret(name=name, type="Opaque", data=data)


class FakeAzure:
    """Stands in for `AzureClients`: records who asked for clients."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    async def get(self, *, subscription_id: str, client_secret: Any = None) -> object:
        self.asked.append((subscription_id, client_secret))
        return object()


@dataclasses.dataclass
class Registry:
    """What `_ensure` would find, in turn; counts the checks."""

    drifted: list[bool]
    checks: int = 0

    async def ensure(
        self, _clients: object, spec: model.RegistryAccess, _login_server: str
    ) -> azure_access.AccessResult:
        self.checks += 1
        drifted = self.drifted.pop(0) if self.drifted else False
        if spec.mode is model.RegistryAccessMode.PRIVATE_PULL:
            return azure_access.AccessResult(
                REGISTRY_ID, drifted, granted=spec.principal_ids[:1], present=spec.principal_ids[1:]
            )
        return azure_access.AccessResult(
            REGISTRY_ID,
            drifted,
            anonymous_pull_was=not drifted,
            public_network_access_was="Enabled",
        )


def _spec(**access: Any) -> model.RunnerImageSpec:
    return model.parse(
        {
            "source": {"inline": {"dockerfile": "FROM scratch\n"}},
            "image": {"registry": "acr.azurecr.io", "repository": "ade/runner"},
            "registryAccess": {
                "acr": {"subscriptionId": SUB, "resourceGroup": "rg", "name": "acr"},
                **access,
            },
        }
    )


def _services(
    interval: float, secrets: dict[str, dict[str, bytes]] | None = None
) -> services.Services:
    return services.Services(
        kube=FakeKube(secrets or {}),  # type: ignore[arg-type]
        backends={},
        slots=limits.BuildSlots(limit=1),
        workdir=pathlib.Path("/nonexistent"),
        azure=FakeAzure(),  # type: ignore[arg-type]
        access_cache=azure_cache.AccessCache(interval=interval),
    )


def _run(
    step: access.EnsureRegistryAccess, spec: model.RunnerImageSpec, status: dict[str, Any]
) -> steps.Context:
    ctx = steps.Context(
        name="runner", namespace="ns", generation=1, spec=spec, status=status, now=NOW
    )
    outcome = asyncio.run(step(ctx))
    assert outcome.kind is steps.Kind.DONE
    return ctx


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    fake = Registry(drifted=[])
    monkeypatch.setattr(access, "_ensure", fake.ensure)
    return fake


def test_first_set_up_is_a_normal_event_and_drift_later_a_warning_with_repaired_at(
    registry: Registry,
) -> None:
    registry.drifted = [True, False, True]
    step = access.EnsureRegistryAccess(_services(interval=0.0), memory.ObjectMemory())
    first = _run(step, _spec(), {})
    assert [(e.type, e.reason) for e in first.events] == [("Normal", "RegistryAccessEnabled")]
    status = first.updates["registry"]
    assert status == {
        "resourceId": REGISTRY_ID,
        "mode": "AnonymousPull",
        "anonymousPull": True,
        "publicNetworkAccess": "Enabled",
        "principals": None,
        "repairedAt": None,
    }
    steady = _run(step, _spec(), {"registry": status})
    assert steady.events == []
    assert steady.updates["registry"] == status
    drifted = _run(step, _spec(), {"registry": status})
    assert [(e.type, e.reason) for e in drifted.events] == [("Warning", "RegistryAccessDrifted")]
    assert "anonymous pull was off" in drifted.events[0].message
    assert drifted.updates["registry"]["repairedAt"] == "2026-11-27T12:00:00Z"
    assert registry.checks == 3


def test_one_check_is_shared_by_runner_images_on_the_same_registry(registry: Registry) -> None:
    shared = _services(interval=600.0)
    registry.drifted = [True]
    memories = [memory.ObjectMemory() for _ in range(5)]

    async def all_at_once() -> list[steps.Context]:
        contexts = [
            steps.Context(
                name=f"r{i}", namespace="ns", generation=1, spec=_spec(), status={}, now=NOW
            )
            for i in range(5)
        ]
        await asyncio.gather(
            *(
                access.EnsureRegistryAccess(shared, m)(c)
                for m, c in zip(memories, contexts, strict=True)
            )
        )
        return contexts

    contexts = asyncio.run(all_at_once())
    assert registry.checks == 1
    assert all(c.updates["registry"]["anonymousPull"] is True for c in contexts)
    # each RunnerImage hears of the set-up once; a later pass within the interval is silent
    assert all([e.reason for e in c.events] == ["RegistryAccessEnabled"] for c in contexts)
    again = _run(access.EnsureRegistryAccess(shared, memories[0]), _spec(), contexts[0].updates)
    assert again.events == []
    assert registry.checks == 1


def test_private_pull_lists_the_principals_and_never_claims_anonymous_pull(
    registry: Registry,
) -> None:
    principals = ["2b2b2b2b-0000-4000-8000-000000000002", "1a1a1a1a-0000-4000-8000-000000000001"]
    step = access.EnsureRegistryAccess(_services(interval=60.0), memory.ObjectMemory())
    ctx = _run(step, _spec(mode="PrivatePull", principalIds=principals), {})
    status = ctx.updates["registry"]
    assert status["mode"] == "PrivatePull"
    assert status["principals"] == sorted(principals)
    assert status["anonymousPull"] is None


def test_credentials_secret_is_read_and_a_bad_one_stalls_naming_the_key(registry: Registry) -> None:
    ref = {"credentialsSecretRef": {"name": "azure"}}
    acr = {"subscriptionId": SUB, "resourceGroup": "rg", "name": "acr", **ref}
    spec = _spec(acr=acr)
    missing = access.EnsureRegistryAccess(_services(60.0), memory.ObjectMemory())
    with pytest.raises(errors.StalledError) as absent:
        _run(missing, spec, {})
    assert absent.value.reason == "SecretNotFound"
    assert absent.value.message.startswith("spec.registryAccess.acr.credentialsSecretRef")

    bad = {
        "azure": {"tenantId": TENANT.encode(), "clientId": b"not-a-guid", "clientSecret": b"s3cr3t"}
    }
    with pytest.raises(errors.StalledError) as invalid:
        _run(access.EnsureRegistryAccess(_services(60.0, bad), memory.ObjectMemory()), spec, {})
    assert invalid.value.reason == "AzureCredentialsInvalid"
    assert "clientId" in invalid.value.message
    assert "s3cr3t" not in invalid.value.message

    good = {
        "azure": {
            "tenantId": TENANT.encode(),
            "clientId": CLIENT.encode(),
            "clientSecret": b"s3cr3t",
        }
    }
    services_ = _services(60.0, good)
    _run(access.EnsureRegistryAccess(services_, memory.ObjectMemory()), spec, {})
    (asked,) = services_.azure.asked  # type: ignore[union-attr]
    assert asked[0] == SUB
    assert asked[1].client_id == CLIENT
    assert registry.checks == 1
