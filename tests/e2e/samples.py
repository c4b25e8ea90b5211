"""RunnerImages for tests of the reconcile itself, which settle without any network.

`offline()` builds from `FROM scratch` (no base image to resolve) and asks for registry access
with Azure credentials from a Secret that does not exist: the reconcile resolves its inputs, then
stalls at `RegistryAccessReady` (Ready=False, SecretNotFound, naming the field) — a settled
state, reached with no registry, Azure, git server or builder, so the tests of status,
validation, restarts and idling stay about those.
"""

from __future__ import annotations

import json
from typing import Any

SETTLED_REASON = "SecretNotFound"
SETTLED_FIELD = "spec.registryAccess.acr.credentialsSecretRef"


def offline(name: str = "bicep-runner", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": name},
        "spec": {
            "source": {
                "inline": {
                    "dockerfile": "FROM scratch\nCOPY scripts/ /scripts/\n",
                    "scripts": {"deploy.sh": "#!/bin/sh\n", "delete.sh": "#!/bin/sh\n"},
                }
            },
            "image": {"registry": "contoso.azurecr.io", "repository": f"ade/{name}"},
            "registryAccess": {
                "acr": {
                    "subscriptionId": "00000000-0000-0000-0000-000000000000",
                    "resourceGroup": "rg",
                    "name": "contoso",
                    "credentialsSecretRef": {"name": "azure-credentials-absent"},
                }
            },
        },
    }
    body["spec"].update(spec)
    return body


def manifest(name: str = "bicep-runner", **spec: Any) -> str:
    return json.dumps(offline(name, **spec))
