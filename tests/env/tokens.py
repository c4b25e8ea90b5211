"""Acting as a ServiceAccount on the test API server: a token from the TokenRequest API, a
kubeconfig that carries it, and raw API requests with it (the HTTP status is the answer).
"""

from __future__ import annotations

import json
import pathlib
import ssl
import urllib.error
import urllib.request
from typing import Any

from tests.env import controlplane


def certificate_authority(plane: controlplane.ControlPlane) -> str:
    """The API server's CA file, as the admin kubeconfig names it."""
    config = json.loads(plane.kubeconfig.read_text())
    path: str = config["clusters"][0]["cluster"]["certificate-authority"]
    return path


def request_token(
    plane: controlplane.ControlPlane, *, namespace: str, account: str, seconds: int = 3600
) -> str:
    """A bound token for `namespace/account`, from the TokenRequest API (as the admin)."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    request = urllib.request.Request(
        f"{plane.server}/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, context=plane.ssl_context(), timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    token: str = answer["status"]["token"]
    return token


def write_kubeconfig(
    plane: controlplane.ControlPlane, path: pathlib.Path, *, token: str, user: str
) -> pathlib.Path:
    """A kubeconfig for the test API server that authenticates with `token` only."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ade-test",
                "cluster": {
                    "server": plane.server,
                    "certificate-authority": certificate_authority(plane),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "ade-test", "user": user}}],
        "current-context": user,
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


class TokenClient:
    """Raw requests to the API server with a bearer token; answers (status, body)."""

    def __init__(self, plane: controlplane.ControlPlane, token: str) -> None:
        self.server = plane.server
        self.token = token
        self.context = ssl.create_default_context(cafile=certificate_authority(plane))

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.server}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            method=method,
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return int(response.status), json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code), json.loads(error.read() or b"{}")
