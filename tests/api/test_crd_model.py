"""The CRD (crds/runnerimages.yaml) and the typed model (controller.api.spec) describe one API.

Every property of the spec schema is a field of the model and the other way round, at every
level, and every default in the CRD is the model's default. Changing one without the other
fails here.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from typing import Any

import pytest
from ruamel.yaml import YAML

from controller.api import identity
from controller.api import spec as model
from controller.reconcile import validate
from tests.env import controlplane

CRD_PATH = controlplane.REPO / "crds" / "runnerimages.yaml"


def _crd() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(CRD_PATH.read_text())
    return data


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            found = _dataclass_in(arg)
            if found is not None:
                return found
    return None


def _items_dataclass(hint: Any) -> type | None:
    """The dataclass of `tuple[X, ...]` (a list of objects in the CRD), else None."""
    if typing.get_origin(hint) is tuple:
        first, *_ = typing.get_args(hint)
        return _dataclass_in(first)
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _pairs(schema: dict[str, Any], cls: type, path: str) -> list[tuple[str, Any, type | None]]:
    hints = typing.get_type_hints(cls)
    fields = {_camel(f.name): f for f in dataclasses.fields(cls)}
    properties = schema["properties"]
    assert set(fields) == set(properties), (
        f"{path}: only in the model {sorted(set(fields) - set(properties))}, "
        f"only in the CRD {sorted(set(properties) - set(fields))}"
    )
    out: list[tuple[str, Any, type | None]] = []
    for name, field in fields.items():
        sub = properties[name]
        if "default" in sub:
            default: Any = field.default
            if field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            assert _plain(default) == sub["default"], f"{path}.{name}: default differs"
        items = _items_dataclass(hints[field.name])
        if items is not None:
            assert sub["type"] == "array", f"{path}.{name}: a tuple of objects is an array"
            out.append((f"{path}.{name}[]", sub["items"], items))
        else:
            out.append((f"{path}.{name}", sub, _dataclass_in(hints[field.name])))
    return out


def test_spec_schema_and_model_have_the_same_fields_and_defaults() -> None:
    version = _crd()["spec"]["versions"][0]
    pending: list[tuple[str, Any, type | None]] = [
        ("spec", version["schema"]["openAPIV3Schema"]["properties"]["spec"], model.RunnerImageSpec)
    ]
    visited = 0
    while pending:
        path, schema, cls = pending.pop()
        if cls is None:
            continue
        visited += 1
        pending.extend(_pairs(schema, cls, path))
    assert visited >= 23  # every nested object of the spec was compared (tolerations[] too)


def test_crd_identity_matches_the_code() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == f"{identity.PLURAL}.{identity.GROUP}"
    assert crd["spec"]["group"] == identity.GROUP
    assert crd["spec"]["names"]["kind"] == identity.KIND
    assert crd["spec"]["names"]["plural"] == identity.PLURAL
    assert [v["name"] for v in crd["spec"]["versions"]] == [identity.VERSION]


def test_enum_values_match() -> None:
    text = CRD_PATH.read_text()
    for kind in (
        model.RegistryAccessMode,
        model.PinMode,
        model.BuildBackend,
        model.TolerationOperator,
        model.TaintEffect,
    ):
        values = ", ".join(member.value for member in kind)
        assert f"enum: [{values}]" in text, kind


@pytest.mark.parametrize(
    "placeholder", ["revision", "shortRevision", "buildKey", "shortBuildKey", "timestamp"]
)
def test_tag_placeholders_match_validation(placeholder: str) -> None:
    assert placeholder in validate.TAG_PLACEHOLDERS
    pattern = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["image"]["properties"]["tag"]["pattern"]
    assert re.fullmatch(pattern, "{" + placeholder + "}")
