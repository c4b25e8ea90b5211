"""Every example in examples/ parses into the model and passes the operator's own validation."""

from __future__ import annotations

import pathlib

import pytest
from ruamel.yaml import YAML

from controller.api import identity
from controller.api import spec as model
from controller.reconcile import validate
from tests.env import controlplane

EXAMPLES = sorted((controlplane.REPO / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(path: pathlib.Path) -> None:
    for document in YAML(typ="safe").load_all(path.read_text()):
        if document.get("kind") != identity.KIND:
            continue
        assert document["apiVersion"] == identity.API_VERSION
        spec = model.parse(document["spec"])
        assert validate.problems(spec) == []
