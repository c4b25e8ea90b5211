"""JSON Schema checks for `tests.env.azure_repos_spec`: the published Swagger 2.0 definitions of
the Azure DevOps Git description turned into JSON Schema (draft 4), with the service's
corrections, plus the schemas of what the description leaves out (error bodies, discovery).

`Schemas(definitions)` checks a body against a schema that may reference the definitions
(`#/definitions/X`). On the way: `allOf` inheritance is flattened (so that `strict` can forbid
members no schema defines without `allOf` tripping over it); the `date-time`, `uuid`, `uri`,
`int32` and `int64` formats are checked; and `corrected` applies the departures from the
description that `tests.env.azure_repos_spec.CORRECTIONS` explains (`ReferenceLinks`,
`Change.item`, `changeType`).
"""

from __future__ import annotations

import copy
import datetime
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import referencing
import referencing.jsonschema

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
_DOCUMENTATION = frozenset({"description", "readOnly", "discriminator", "example", "externalDocs"})


class SchemaMismatch(AssertionError):
    """A body that does not match the description; `errors` lists every violation found."""

    def __init__(self, what: str, schema: str, errors: Sequence[str]) -> None:
        self.what = what
        self.schema = schema
        self.errors = list(errors)
        listed = "\n  ".join(self.errors[:20])
        super().__init__(f"{what} does not match {schema}:\n  {listed}")


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


def json_schema(node: Any, *, strict: bool, in_properties: bool = False) -> Any:
    """Swagger 2.0 schema -> JSON Schema draft 4: references made absolute, documentation
    dropped; `strict`: no members beyond those defined."""
    if isinstance(node, list):
        return [json_schema(item, strict=strict) for item in node]
    if not isinstance(node, dict):
        return node
    if in_properties:  # property names, not keywords
        return {key: json_schema(value, strict=strict) for key, value in node.items()}
    if "$ref" in node:  # draft 4 ignores a reference's siblings (descriptions, here)
        return {"$ref": f"{_URI}{node['$ref']}"}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DOCUMENTATION or key.startswith("x-"):
            continue
        out[key] = json_schema(value, strict=strict, in_properties=key == "properties")
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    def is_datetime(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?(Z|[+-]\d\d:\d\d)", value):
            raise ValueError(f"{value!r} is not an ISO 8601 date-time with a zone")
        datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d", r"\1", value))
        return True

    def is_uuid(value: object) -> bool:
        if isinstance(value, str) and not re.fullmatch(
            r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value
        ):
            raise ValueError(f"{value!r} is not a GUID")
        return True

    def is_uri(value: object) -> bool:
        if isinstance(value, str) and not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", value):
            raise ValueError(f"{value!r} is not an absolute URI")
        return True

    def bounded(bits: int) -> Any:
        def check(value: object) -> bool:
            if isinstance(value, int) and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                raise ValueError(f"{value} is out of the int{bits} range")
            return True

        return check

    checker.checks("date-time", raises=ValueError)(is_datetime)
    checker.checks("uuid", raises=ValueError)(is_uuid)
    checker.checks("uri", raises=ValueError)(is_uri)
    checker.checks("int32", raises=ValueError)(bounded(32))
    checker.checks("int64", raises=ValueError)(bounded(64))
    return checker


FORMATS = _format_checker()


class Schemas:
    """Checks bodies against schemas that may reference `definitions` (published ones)."""

    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = corrected(definitions)

    @functools.cache  # noqa: B019 - one instance per subset, kept for the session
    def _registry(self, strict: bool) -> referencing.Registry[Any]:
        document = {
            "definitions": {
                name: json_schema(schema, strict=strict)
                for name, schema in self.definitions.items()
            }
        }
        resource = referencing.jsonschema.DRAFT4.create_resource(document)
        registry: referencing.Registry[Any] = referencing.Registry().with_resource(_URI, resource)
        return registry

    def check(self, what: str, name: str, schema: Any, body: Any, *, strict: bool) -> None:
        """Raise `SchemaMismatch` (`what` does not match `name`) listing every violation."""
        validator = jsonschema.Draft4Validator(
            json_schema(schema, strict=strict),
            registry=self._registry(strict),
            format_checker=FORMATS,
        )
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            raise SchemaMismatch(
                what,
                name,
                [f"at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors],
            )

    @staticmethod
    def format_problem(value: str, format_name: str) -> str | None:
        """Why `value` is not of the format `format_name`; None if it is (or is unknown)."""
        try:
            FORMATS.check(value, format_name)
        except jsonschema.FormatError as error:
            return str(error.message)
        return None
