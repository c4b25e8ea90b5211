"""A WebhookReceiver's status kept true: its path from its Secret's token, or what to fix.

Run on each change of the receiver and on the resync timer (a rotated token shows within one
interval); writes only when the status changes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from controller import kube as kube_
from controller.api import identity
from controller.receivers import paths


async def observe(kube: kube_.Kube, body: Mapping[str, Any], *, listening: bool) -> bool:
    """Bring the status of the WebhookReceiver `body` up to date; whether it was written."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    secret_name = str((spec.get("secretRef") or {}).get("name") or "")
    secret = await kube.read_secret(namespace=namespace, name=secret_name)
    path, problem = None, None
    try:
        credentials = paths.credentials(
            None if secret is None else secret.data, secret_name=secret_name
        )
        path = paths.webhook_path(credentials.token, name=name, namespace=namespace)
    except paths.SecretProblem as found:
        problem = found
    observed = paths.Observed(
        kind=str(spec.get("type") or ""), path=path, problem=problem, listening=listening
    )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = paths.status_patch(
        body.get("status") or {},
        observed,
        generation=int(metadata.get("generation") or 0),
        now=now,
    )
    if not patch:
        return False
    await kube.patch_status(
        group=identity.GROUP,
        version=identity.VERSION,
        plural=identity.RECEIVER_PLURAL,
        namespace=namespace,
        name=name,
        patch=patch,
    )
    return True
