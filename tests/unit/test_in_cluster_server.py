"""The API server address a pod signs in to: the variables every Kubernetes client reads."""

from __future__ import annotations

import pytest

from controller import kube


@pytest.mark.parametrize(
    ("env", "server"),
    [
        ({}, "https://kubernetes.default.svc"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "https://10.0.0.1"),
        ({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}, "https://127.0.0.1:6443"),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}, "https://[fd00::1]:6443"),
        ({"KUBERNETES_SERVICE_HOST": "api.internal"}, "https://api.internal"),
        ({"KUBERNETES_SERVICE_PORT": "6443"}, "https://kubernetes.default.svc"),
    ],
)  # fmt: skip
def test_in_cluster_server_follows_the_service_variables(env: dict[str, str], server: str) -> None:
    assert kube.in_cluster_server(env) == server
