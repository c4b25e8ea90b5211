"""The operator's Kubernetes calls when the API server cannot be reached: a `KubeError` with
status 0 (which the steps report as `KubernetesUnavailable`), never urllib3's own exception."""

from __future__ import annotations

import socket

import pytest
from kubernetes import client

from controller import kube


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port  # closed again once the socket is: nothing listens there


async def test_an_unreachable_api_server_is_a_kube_error_with_status_0() -> None:
    configuration = client.Configuration()
    configuration.host = f"https://127.0.0.1:{_closed_port()}"
    configuration.retries = 0
    api = kube.Kube(client.ApiClient(configuration))
    with pytest.raises(kube.KubeError, match="unreachable") as raised:
        await api.read_secret(namespace="team-a", name="push")
    assert raised.value.status == 0
    assert "team-a/push" in str(raised.value)
