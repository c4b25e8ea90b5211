"""Microsoft's published Azure DevOps Git REST description (api-version 7.1), cut down to the pull
request calls the operator makes, and a validator of requests and responses against it (for
`tests.env.azure_repos`'s emulator).

The subset, `azure_repos_spec.json` beside this file, holds the operations of `OPERATIONS` and
the definitions and parameters they reference, recursively, exactly as published (Swagger 2.0),
less `x-ms-examples` (pointers to example files not kept). `GitItem` is kept too: the
description's generic `Change.item` stands for it (see below).

Where it comes from: MicrosoftDocs/vsts-rest-api-specs, `specification/git/7.1/git.json`,
commit `SOURCE["commit"]` (the file itself last changed at `SOURCE["file_commit"]`). To
regenerate from a newer copy (the file starts with a UTF-8 BOM, which `extract` accepts)::

    git clone --filter=blob:none https://github.com/MicrosoftDocs/vsts-rest-api-specs specs
    file=specification/git/7.1/git.json
    git -C specs show "<commit>:$file" > git.json
    .venv/bin/python -m tests.env.azure_repos_spec extract git.json --commit <commit> \\
        --file-commit "$(git -C specs log -1 --format=%H <commit> -- "$file")"

How bodies are checked (JSON Schema draft 4, which Swagger 2.0 schemas are a subset of):
`$ref`s resolve inside the subset; `allOf` inheritance is flattened; the `date-time`, `uuid`,
`int32` and `int64` formats are checked; and, stricter than the description, an object may hold
no member its schema does not define (`strict=True`, the default): the emulator must not invent
fields. Where the description and the service (and its own clients and examples) disagree, the
validator follows the service, each time for a reason written in `CORRECTIONS`:

- arrays travel in a `VssJsonCollectionWrapper` (`{"count": n, "value": [...]}`): the
  operations list the bare array;
- `POST .../pullrequests` answers 201 (so says the operation's own published example), not the
  200 the operation lists;
- `ReferenceLinks` (`_links`) is sent as `{name: {"href": url}}`, not `{"links": {...}}`;
- `Change.item` is typed `string` with format `T` (a generic parameter): for git it is a
  `GitItem` object;
- `changeType` is a flags enumeration: the service joins several names (`"edit, rename"`);
- `api-version`, a required query parameter in the description, may instead come in the
  `Accept` header (`application/json;api-version=7.1-preview.1`), as every VSS client sends it.

The description lists no error response at all. Error bodies are checked against
`tests.env.azure_repos_schema.WRAPPED_EXCEPTION`, the shape every Azure DevOps error has (the
client's `WrappedException` model; the published example
`specification/graph/4.1/httpExamples/Descriptors/GetDescriptorById.json`). The discovery calls
(`OPTIONS {org}/_apis`, `GET {org}/_apis/ResourceAreas`) are in no published description:
`validate_discovery` checks them against the client's `ApiResourceLocation` and
`ResourceAreaInfo` models. The machinery (extraction, the conversion to JSON Schema, checking
and reporting) is shared with the GitHub validator: `tests.env.api_schema`.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from tests.env import api_schema
from tests.env.api_schema import SchemaMismatch, UnknownOperation, refs, schema_name
from tests.env.azure_repos_schema import AREA, LOCATION, Schemas

__all__ = [
    "CHANGES",
    "COMMITS",
    "CORRECTIONS",
    "DIFFS",
    "DISCOVERY",
    "ITERATIONS",
    "OPERATIONS",
    "PULL",
    "PULLS",
    "REPOSITORY",
    "SOURCE",
    "SchemaMismatch",
    "UnknownOperation",
    "extract",
    "response_schema",
    "subset",
    "validate_discovery",
    "validate_query",
    "validate_request",
    "validate_response",
    "validate_schema",
]

SUBSET_FILE = pathlib.Path(__file__).with_suffix(".json")

SOURCE: Mapping[str, str] = {
    "repository": "MicrosoftDocs/vsts-rest-api-specs",
    "path": "specification/git/7.1/git.json",
    "commit": "adb28786a3e9349d5b3deb43eb2134b682c33bb2",
    "file_commit": "3f48b30420980dac96213f84cebf62449695e97c",
}
"""Where the committed subset was extracted from (recorded in its `x-subset` member)."""

_PREFIX = "/{organization}/{project}/_apis/git/repositories/{repositoryId}"
REPOSITORY = _PREFIX
PULLS = f"{_PREFIX}/pullrequests"
PULL = f"{_PREFIX}/pullrequests/{{pullRequestId}}"
COMMITS = f"{_PREFIX}/pullRequests/{{pullRequestId}}/commits"
ITERATIONS = f"{_PREFIX}/pullRequests/{{pullRequestId}}/iterations"
CHANGES = f"{_PREFIX}/pullRequests/{{pullRequestId}}/iterations/{{iterationId}}/changes"
DIFFS = f"{_PREFIX}/diffs/commits"

OPERATIONS: Mapping[str, tuple[str, ...]] = {
    REPOSITORY: ("get",),
    PULLS: ("get", "post"),
    PULL: ("get", "patch"),
    COMMITS: ("get",),
    ITERATIONS: ("get",),
    CHANGES: ("get",),
    DIFFS: ("get",),
}
"""The operations kept: path template (as the description spells it) -> methods."""

EXTRA_DEFINITIONS = ("GitItem",)
"""Definitions kept although no operation references them (the binding of `Change.item`)."""

CORRECTIONS: Mapping[str, str] = {
    "collection": "Arrays are sent wrapped: {count, value} (VssJsonCollectionWrapper), as in "
    "every published example (pullRequests/GET__git_repositories__repositoryId__pullRequests"
    ".json) and as the client unwraps them (Client._unwrap_collection).",
    "201": "POST .../pullrequests answers 201 Created: the published example "
    "(pullRequests/POST__git_repositories__repositoryId__pullRequests.json) says 201; the "
    "operation lists only 200.",
    "ReferenceLinks": "_links is a map of link name -> {href} on the wire (every example); the "
    "description's single `links` member is the .NET property the serializer flattens.",
    "Change.item": "Change.item is declared string/format T, a generic type parameter; in "
    "git changes it is a GitItem (example pullRequestIterationChanges/GET_...changes.json).",
    "changeType": "VersionControlChangeType is a [Flags] enumeration: several names are sent "
    "joined by ', ' (\"edit, rename\").",
    "api-version": "api-version may be sent in the Accept header instead of the query; the "
    "service says so in its VssVersionNotSpecifiedException message and VSS clients do.",
}
"""Where the validator departs from the description, and why."""

DISCOVERY: Mapping[str, Mapping[str, Any]] = {
    "/{organization}/_apis": LOCATION,
    "/{organization}/_apis/ResourceAreas": AREA,
}
"""Discovery path templates -> the item schema of their wrapped list (the client's models)."""

_STATUS_ALIASES: Mapping[tuple[str, str, int], str] = {("post", PULLS, 201): "200"}
_NO_JSON_ERRORS = frozenset({401, 502, 504})
"""Error statuses the emulator answers without a JSON body (see `tests.env.azure_repos`)."""


def _examples(key: str) -> bool:
    """`x-ms-examples` (pointers to example files not kept): dropped from the subset."""
    return key == "x-ms-examples"


def extract(
    full: Mapping[str, Any],
    operations: Mapping[str, Sequence[str]] = OPERATIONS,
    source: Mapping[str, str] = SOURCE,
) -> dict[str, Any]:
    """The subset of the full description `full`: the operations asked for and, recursively, the
    definitions and parameters they reference (and `EXTRA_DEFINITIONS`)."""
    paths = api_schema.kept_paths(full, operations, _examples)
    found: dict[str, dict[str, Any]] = {"definitions": {}, "parameters": {}}
    pending = [*refs(paths), *(f"#/definitions/{name}" for name in EXTRA_DEFINITIONS)]
    while pending:
        ref = pending.pop()
        match = re.fullmatch(r"#/(definitions|parameters)/([^/]+)", ref)
        if match is None:
            raise ValueError(f"unexpected reference {ref}")
        kind, name = match.groups()
        if name in found[kind]:
            continue
        value = api_schema.strip(full[kind][name], _examples)
        found[kind][name] = value
        pending.extend(refs(value))
    head = ("swagger", "info", "host", "x-ms-vss-area", "x-ms-vss-resource-area-id", "basePath")
    return {
        **{key: full[key] for key in head if key in full},
        "schemes": full.get("schemes", []),
        "x-subset": {
            **source,
            "operations": {t: list(m) for t, m in operations.items()},
            "extra_definitions": list(EXTRA_DEFINITIONS),
        },
        "paths": paths,
        "definitions": dict(sorted(found["definitions"].items())),
        "parameters": dict(sorted(found["parameters"].items())),
        "securityDefinitions": full.get("securityDefinitions", {}),
        "security": full.get("security", []),
    }


# -- validation: schemas -----------------------------------------------------------------------


@functools.cache
def subset() -> dict[str, Any]:
    """The committed subset, as published (Swagger 2.0)."""
    loaded: dict[str, Any] = json.loads(SUBSET_FILE.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _schemas() -> Schemas:
    return Schemas(subset()["definitions"])


def _check(what: str, name: str, schema: Any, body: Any, *, strict: bool) -> None:
    _schemas().check(what, name, schema, body, strict=strict)


# -- validation: operations --------------------------------------------------------------------


def _operation(method: str, path_template: str) -> Mapping[str, Any]:
    return api_schema.operation(subset(), method, path_template)


def _parameters(method: str, path_template: str) -> list[Mapping[str, Any]]:
    resolved = []
    for parameter in _operation(method, path_template).get("parameters", []):
        if "$ref" in parameter:
            name = parameter["$ref"].rsplit("/", 1)[1]
            resolved.append(subset()["parameters"][name])
        else:
            resolved.append(parameter)
    return resolved


def response_schema(method: str, path_template: str, status: int) -> tuple[Any, str]:
    """The schema a response body must match (None: no JSON body) and its name."""
    responses = _operation(method, path_template)["responses"]
    listed = responses.get(_STATUS_ALIASES.get((method.lower(), path_template, status), ""))
    listed = listed or responses.get(str(status))
    if listed is None:
        if status in _NO_JSON_ERRORS:
            return None, f"no JSON body (status {status})"
        if status >= 400:
            return {"$ref": "#/definitions/WrappedException"}, f"WrappedException ({status})"
        raise UnknownOperation(f"{method.upper()} {path_template} does not list {status}")
    schema = listed.get("schema")
    if schema is None:
        return None, "no body"
    name = schema_name(schema, f"inline {method.upper()} {path_template} {status}")
    if schema.get("type") == "array":
        wrapper = {
            "type": "object",
            "properties": {"count": {"type": "integer", "minimum": 0}, "value": schema},
            "required": ["count", "value"],
        }
        return wrapper, f"VssJsonCollectionWrapper of {name}"
    return schema, name


def validate_response(
    method: str, path_template: str, status: int, body: Any, *, strict: bool = True
) -> str:
    """Check a response body (parsed JSON, None for none) against the description; the name of
    the schema used. Raises `SchemaMismatch` or `UnknownOperation`."""
    schema, name = response_schema(method, path_template, status)
    what = f"response {status} to {method.upper()} {path_template}"
    none = "a JSON body where none is expected"
    _schemas().check_response(what, name, schema, body, strict=strict, none=none)
    if name.startswith("VssJsonCollectionWrapper") and body["count"] != len(body["value"]):
        raise SchemaMismatch(what, name, [f"count {body['count']} != {len(body['value'])} items"])
    return name


def validate_request(method: str, path_template: str, body: Any, *, strict: bool = True) -> str:
    """Check a request body (parsed JSON, None for none) against the description; the name of
    the schema used. Raises `SchemaMismatch` or `UnknownOperation`."""
    what = f"request {method.upper()} {path_template}"
    bodies = [p for p in _parameters(method, path_template) if p.get("in") == "body"]
    if not bodies:
        _schemas().check_request(what, "no body", None, body, required=False)
        return "no body"
    schema = bodies[0]["schema"]
    name = schema_name(schema, f"inline {what}")
    required = bool(bodies[0].get("required", False))
    _schemas().check_request(what, name, schema, body, required=required, strict=strict)
    return name


def validate_query(
    method: str, path_template: str, query: Mapping[str, str], *, accept: str | None = None
) -> list[str]:
    """Check the query parameters of a request: each one declared by the operation, of its type
    (enumerations, integers, booleans, GUIDs, date-times), every required one present
    (`api-version` may come in the `Accept` header instead); the names checked."""
    what = f"query of {method.upper()} {path_template}"
    declared = {p["name"]: p for p in _parameters(method, path_template) if p.get("in") == "query"}
    errors = [f"{name}: not a parameter of the operation" for name in query if name not in declared]
    for name, parameter in declared.items():
        value = query.get(name)
        if value is None:
            in_header = name == "api-version" and "api-version=" in (accept or "")
            if parameter.get("required") and not in_header:
                errors.append(f"{name}: required, missing")
            continue
        errors.extend(f"{name}: {problem}" for problem in _query_problems(parameter, value))
    if errors:
        raise SchemaMismatch(what, "the operation's query parameters", errors)
    return sorted(query)


def _query_problems(parameter: Mapping[str, Any], value: str) -> list[str]:
    kind = parameter.get("type")
    if "enum" in parameter and value not in parameter["enum"]:
        return [f"{value!r} is not one of {parameter['enum']}"]
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return [f"{value!r} is not an integer"]
    if kind == "boolean" and value.lower() not in ("true", "false"):
        return [f"{value!r} is not a boolean"]
    if kind == "string" and "format" in parameter:
        problem = _schemas().format_problem(value, parameter["format"])
        return [] if problem is None else [problem]
    return []


def validate_schema(name: str, body: Any, *, strict: bool = True) -> str:
    """Check `body` against the definition `name` (`GitPullRequest`, `WrappedException`...)."""
    if name not in _schemas().definitions:
        raise UnknownOperation(f"no definition {name} in the subset")
    ref = f"#/definitions/{name}"
    _check(f"body as {name}", ref, {"$ref": ref}, body, strict=strict)
    return ref


def validate_discovery(path_template: str, status: int, body: Any) -> str:
    """Check an answer to a discovery call (`DISCOVERY`) against the client's models."""
    if status >= 400:
        return validate_response("get", REPOSITORY, status, body)
    item = DISCOVERY[path_template]
    wrapper = {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "value": {"type": "array", "items": item}},
        "required": ["count", "value"],
        "additionalProperties": False,
    }
    name = f"VssJsonCollectionWrapper of the client's model for {path_template}"
    _check(f"response {status} to {path_template}", name, wrapper, body, strict=True)
    return name


# -- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    options = {"--file-commit": "the commit that last changed it"}
    return api_schema.extract_command(
        argv, __doc__, "git.json (7.1)", SUBSET_FILE, SOURCE, options, extract, "definitions"
    )


if __name__ == "__main__":
    sys.exit(main())
