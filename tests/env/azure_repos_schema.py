"""JSON Schema checks for `tests.env.azure_repos_spec`: the published Swagger 2.0 definitions of
the Azure DevOps Git description turned into JSON Schema (draft 4), with the service's
corrections, plus the schemas of what the description leaves out (error bodies, discovery).

`Schemas(definitions)` checks a body against a schema that may reference the definitions
(`#/definitions/X`). On the way: `allOf` inheritance is flattened (so that `strict` can forbid
members no schema defines without `allOf` tripping over it); the `date-time`, `uuid`, `uri`,
`int32` and `int64` formats are checked; and `corrected` applies the departures from the
description that `tests.env.azure_repos_spec.CORRECTIONS` explains (`ReferenceLinks`,
`Change.item`, `changeType`). The conversion to JSON Schema and the checking are shared with the
GitHub validator (`tests.env.api_schema`).
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Mapping
from typing import Any

from tests.env import api_schema
from tests.env.api_schema import SchemaMismatch

__all__ = ["AREA", "LOCATION", "WRAPPED_EXCEPTION", "SchemaMismatch", "Schemas", "corrected"]

WRAPPED_EXCEPTION: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "$id": {"type": "string"},
        "innerException": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/WrappedException"}]},
        "message": {"type": "string", "minLength": 1},
        "typeName": {"type": "string", "pattern": r"^[\w.+`]+, [\w.]+$"},
        "typeKey": {"type": "string", "pattern": r"^\w+$"},
        "errorCode": {"type": "integer"},
        "eventId": {"type": "integer"},
        "customProperties": {"type": "object"},
    },
    "required": ["$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"],
    "additionalProperties": False,
}
"""An Azure DevOps error body: the client's `WrappedException` model, as in the published
example `specification/graph/4.1/httpExamples/Descriptors/GetDescriptorById.json`."""

LOCATION: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "area": {"type": "string"},
        "resourceName": {"type": "string"},
        "routeTemplate": {"type": "string"},
        "resourceVersion": {"type": "integer"},
        "minVersion": {"type": "string", "pattern": r"^\d+\.\d+$"},
        "maxVersion": {"type": "string", "pattern": r"^\d+\.\d+$"},
        "releasedVersion": {"type": "string", "pattern": r"^\d+\.\d+$"},
    },
    "required": [
        *("id", "area", "resourceName", "routeTemplate", "resourceVersion"),
        *("minVersion", "maxVersion", "releasedVersion"),
    ],
    "additionalProperties": False,
}
"""One resource location (the client's `ApiResourceLocation`; no description publishes it)."""

AREA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "locationUrl": {"type": "string", "format": "uri"},
    },
    "required": ["id", "name", "locationUrl"],
    "additionalProperties": False,
}
"""One resource area (the client's `ResourceAreaInfo`; no description publishes it)."""

_URI = "urn:azure-repos-subset"


def corrected(published: Mapping[str, Any]) -> dict[str, Any]:
    """The published definitions with the corrections applied, `WrappedException` added and
    `allOf` parents flattened into their children."""
    definitions: dict[str, Any] = copy.deepcopy(dict(published))
    definitions["ReferenceLinks"] = {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "properties": {"href": {"type": "string"}},
            "required": ["href"],
        },
    }
    change = definitions["Change"]["properties"]
    change["item"] = {"$ref": "#/definitions/GitItem"}
    names = "|".join(re.escape(name) for name in change["changeType"]["enum"])
    change["changeType"] = {"type": "string", "pattern": f"^({names})(, ({names}))*$"}
    definitions["WrappedException"] = copy.deepcopy(dict(WRAPPED_EXCEPTION))

    def flat(name: str) -> dict[str, Any]:
        schema: dict[str, Any] = definitions[name]
        parents = [p for p in schema.get("allOf", []) if "$ref" in p]
        inline = [p for p in schema.pop("allOf", []) if "$ref" not in p]
        if inline:  # a map type (ChangeCountDictionary): kept as published
            schema["allOf"] = inline
        properties: dict[str, Any] = {}
        for parent in parents:
            properties.update(flat(parent["$ref"].rsplit("/", 1)[1]).get("properties", {}))
        properties.update(schema.get("properties", {}))
        if properties:
            schema["properties"] = properties
        return schema

    for name in list(definitions):
        flat(name)
    return definitions


def _datetime(value: str) -> None:
    datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d", r"\1", value))


def _bounded(bits: int) -> api_schema.Check:
    def check(value: object) -> bool:
        if isinstance(value, int) and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError(f"{value} is out of the int{bits} range")
        return True

    return check


FORMATS = api_schema.format_checker(
    {
        "date-time": api_schema.matching(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?(Z|[+-]\d\d:\d\d)",
            "{} is not an ISO 8601 date-time with a zone",
            _datetime,
        ),
        "uuid": api_schema.matching(
            r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", "{} is not a GUID"
        ),
        "uri": api_schema.matching(r"[a-z][a-z0-9+.-]*://\S+", "{} is not an absolute URI"),
        "int32": _bounded(32),
        "int64": _bounded(64),
    }
)


class Schemas(api_schema.Validator):
    """Checks bodies against schemas that may reference `definitions` (published ones, as
    `corrected`)."""

    def __init__(self, definitions: Mapping[str, Any]) -> None:
        super().__init__(_URI, ("definitions",), corrected(definitions), FORMATS)
