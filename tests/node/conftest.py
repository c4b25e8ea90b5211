"""The real node and its images, up for this package only (`tests.env.node`): started by its
first test, stopped after its last, so the node's background work (the kubelet's housekeeping,
its heartbeats) never runs beside the timing-sensitive tests elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.releases import chart, release_namespace
from tests.env import controlplane, node, node_images

__all__ = ["chart", "node_image_store", "real_node", "release_namespace"]


@pytest.fixture(scope="package")
def node_image_store() -> Iterator[node_images.Served]:
    """The registry of the images the real node runs (built if missing; `hack/test.sh` builds
    them before pytest, so this only starts the registry over the cached storage)."""
    with node_images.serving() as served:
        yield served


@pytest.fixture(scope="package")
def real_node(
    control_plane: controlplane.ControlPlane,
    node_image_store: node_images.Served,
) -> Iterator[node.Node]:
    """A real kubelet with containerd and runc (`tests.env.node`): pods really run."""
    with node.running(control_plane, control_plane.folder / "node", node_image_store[1]) as running:
        yield running
