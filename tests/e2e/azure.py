"""What the end-to-end tests that reach Azure (through the ARM emulator) share: the operator's
settings for the emulator and the Secret with the service principal it signs in as."""

from __future__ import annotations

import base64
import json

from tests.conftest import ARM_CLIENT_ID, ARM_CLIENT_SECRET, ARM_TENANT_ID
from tests.env import arm as arm_
from tests.env import kube


def azure_env(arm: arm_.ArmEmulator, **extra: str) -> dict[str, str]:
    """The operator's settings for the emulator (its endpoints, CA and token scope)."""
    return {
        "ADE_AZURE_RESOURCE_MANAGER": arm.base_url,
        "ADE_AZURE_AUTHORITY_HOST": arm.authority,
        "ADE_AZURE_CA_BUNDLE": str(arm.ca_file),
        "ADE_AZURE_CREDENTIAL_SCOPE": arm_.ARM_SCOPE,
        **extra,
    }


def azure_secret(
    cluster: kube.Cluster,
    namespace: str,
    *,
    client_id: str = ARM_CLIENT_ID,
    secret: str = ARM_CLIENT_SECRET,
    name: str = "azure",
) -> None:
    """The Secret `name` holding a service principal's tenant, client id and secret."""
    data = {"tenantId": ARM_TENANT_ID, "clientId": client_id, "clientSecret": secret}
    secret_object = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    cluster.apply(namespace, json.dumps(secret_object))
