"""The shared fixtures' own promises, on the real API server: a test's namespace goes when the
test ends, even with finalizers left on its objects by an operator stopped before it
(`conftest.namespace`)."""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes import client

from controller.api import identity
from tests.env import controlplane, kube

pytestmark = pytest.mark.e2e


def _runner_image(name: str, finalizers: list[str]) -> dict[str, object]:
    return {
        "apiVersion": identity.API_VERSION,
        "kind": "RunnerImage",
        "metadata": {"name": name, "finalizers": finalizers},
        "spec": {
            "source": {"git": {"url": "https://git.example.com/platform/runners.git"}},
            "image": {"registry": "contoso.azurecr.io", "repository": "ade/bicep"},
            "suspend": True,
        },
    }


def test_a_namespace_left_with_finalized_objects_is_emptied_at_once_and_goes(
    control_plane: controlplane.ControlPlane, admin_objects: client.CustomObjectsApi
) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    objects = [
        _runner_image("kept", [identity.FINALIZER]),
        _runner_image("also-kept", ["example.com/a-test-s-own"]),
        _runner_image("free", []),
    ]
    control_plane.kubectl("apply", "-n", name, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "List", "items": objects,
    }))  # fmt: skip

    assert kube.clear_namespace(admin_objects, name) == 2
    listed = control_plane.kubectl("get", "runnerimages", "-n", name, "-o", "name")
    assert listed.stdout.strip() == ""  # all gone when it returns, not being deleted
    control_plane.kubectl("delete", "namespace", name, "--wait=false")

    def gone() -> bool:
        found = control_plane.kubectl("get", "namespace", name, check=False)
        return found.returncode != 0 and "NotFound" in found.stderr

    kube.wait_for(gone, timeout=30, what=f"namespace {name} deleted")
    assert kube.clear_namespace(admin_objects, name) == 0  # nothing left, nothing to do
