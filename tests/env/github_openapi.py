"""GitHub's published OpenAPI description, cut down to the pull request calls the operator makes,
and a validator of request and response bodies against it (for `tests.env.github`'s emulator).

The subset, `github_openapi.json` beside this file, holds the operations of `OPERATIONS` and the
components they reference, recursively (schemas, parameters, responses, headers), exactly as
published, less two things that only document: `examples` (and `components/examples`) and the
`x-octokit` extension. Nothing else is edited: the `example`, `description` and
`x-github-breaking-changes` members of the schemas are GitHub's.

Where it comes from: github/rest-api-description, `descriptions/api.github.com/api.github.com.json`
(OpenAPI 3.0.3, api.github.com, API version 2022-11-28), commit `SOURCE["commit"]`. The file was
taken from the npm package @octokit/openapi 23.0.2 (`generated/api.github.com.json`: the same
description plus an `x-octokit` member in each operation and its own `info`, both undone by
`extract`), the repository being too big to clone here. Each part kept was then checked against
GitHub's copy at that commit, read at the same place: the text read matches, and every part spans
the same number of characters in both files between anchor lines read in both.

To regenerate from a newer description (a full `api.github.com.json`, any source)::

    .venv/bin/python tests/env/github_openapi.py extract api.github.com.json \\
        --commit <rest-api-description commit> [--out tests/env/github_openapi.json]

Validation turns the OpenAPI 3.0 schemas into JSON Schema (draft 4, which OpenAPI 3.0 extends):
`nullable: true` becomes "or null", `$ref`s resolve inside the subset, and the `date-time` and
`uri` formats are checked (jsonschema checks neither without optional packages). A response
whose status the operation does not list (GitHub answers 401, 429 and 5xx on every endpoint,
but its description lists them on few) is checked against `basic-error`, the shape of every
GitHub error body, and reported as such by `response_schema`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import functools
import json
import pathlib
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import referencing
import referencing.jsonschema

SUBSET_FILE = pathlib.Path(__file__).with_suffix(".json")

SOURCE: Mapping[str, str] = {
    "repository": "github/rest-api-description",
    "path": "descriptions/api.github.com/api.github.com.json",
    "commit": "0000036e42b5e7121c2b1ac244cb7bba1d2f3914",
    "obtained_via": "npm @octokit/openapi@23.0.2 generated/api.github.com.json (x-octokit removed)",
}
"""Where the committed subset was extracted from (recorded in its `x-subset` member)."""

OPERATIONS: Mapping[str, tuple[str, ...]] = {
    "/repos/{owner}/{repo}": ("get",),
    "/repos/{owner}/{repo}/pulls": ("get", "post"),
    "/repos/{owner}/{repo}/pulls/{pull_number}": ("get", "patch"),
    "/repos/{owner}/{repo}/pulls/{pull_number}/commits": ("get",),
    "/repos/{owner}/{repo}/pulls/{pull_number}/files": ("get",),
    "/repos/{owner}/{repo}/pulls/{pull_number}/merge": ("put",),
}
"""The operations kept: path template (as the description spells it) -> methods."""

UPSTREAM_INFO: Mapping[str, Any] = {
    "version": "1.1.4",
    "title": "GitHub v3 REST API",
    "description": "GitHub's v3 REST API.",
    "license": {"name": "MIT", "url": "https://spdx.org/licenses/MIT"},
    "termsOfService": "https://docs.github.com/articles/github-terms-of-service",
    "contact": {
        "name": "Support",
        "url": "https://support.github.com/contact?tags=dotcom-rest-api",
    },
    "x-github-plan": "api.github.com",
}
"""`info` of api.github.com.json at `SOURCE["commit"]`: @octokit/openapi replaces it with its
own, so `extract` puts this one back when given that package's copy."""

_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_URI = "urn:github-openapi-subset"
_ERROR_SCHEMA = "#/components/schemas/basic-error"


class UnknownOperation(LookupError):
    """The subset has no such operation (path template and method)."""


class SchemaMismatch(AssertionError):
    """A body that does not match the description; `errors` lists every violation found."""

    def __init__(self, what: str, schema: str, errors: Sequence[str]) -> None:
        self.what = what
        self.schema = schema
        self.errors = list(errors)
        listed = "\n  ".join(self.errors[:20])
        super().__init__(f"{what} does not match {schema}:\n  {listed}")


# -- extraction --------------------------------------------------------------------------------


def _strip(node: Any, *, in_properties: bool = False) -> Any:
    """A copy without `examples` and `x-octokit` members (a property so named is kept)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not in_properties and (key == "examples" or key.startswith("x-octokit")):
                continue
            out[key] = _strip(value, in_properties=key == "properties" and not in_properties)
        return out
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def extract(
    full: Mapping[str, Any],
    operations: Mapping[str, Sequence[str]] = OPERATIONS,
    source: Mapping[str, str] = SOURCE,
) -> dict[str, Any]:
    """The subset of the full description `full`: the operations asked for and, recursively, the
    components they reference."""
    paths: dict[str, Any] = {}
    for template, methods in operations.items():
        item = full["paths"][template]
        kept = {key: value for key, value in item.items() if key not in _METHODS}
        for method in methods:
            kept[method] = item[method]
        paths[template] = _strip(kept)
    components: dict[str, dict[str, Any]] = {}
    pending = list(_refs(paths))
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        match = re.fullmatch(r"#/components/([^/]+)/([^/]+)", ref)
        if match is None:
            raise ValueError(f"unexpected reference {ref}")
        kind, name = match.groups()
        value = _strip(full["components"][kind][name])
        components.setdefault(kind, {})[name] = value
        pending.extend(_refs(value))
    ordered = {
        kind: {name: components[kind][name] for name in sorted(components[kind])}
        for kind in sorted(components)
    }
    info = full.get("info", {})
    if "octokit" in str(info.get("title", "")).lower():
        info = UPSTREAM_INFO
    return {
        "openapi": full["openapi"],
        "info": info,
        "x-subset": {**source, "operations": {t: list(m) for t, m in operations.items()}},
        "servers": full.get("servers", []),
        "paths": paths,
        "components": ordered,
    }


# -- validation --------------------------------------------------------------------------------


@functools.cache
def subset() -> dict[str, Any]:
    """The committed subset, as published (OpenAPI 3.0)."""
    loaded: dict[str, Any] = json.loads(SUBSET_FILE.read_text())
    return loaded


_DOCUMENTATION = frozenset({"nullable", "example", "discriminator", "xml", "externalDocs"})
"""OpenAPI-only schema members (`nullable` is turned into JSON Schema; the others document)."""


def _json_schema(node: Any, *, in_properties: bool = False) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema draft 4: `nullable`, references made absolute."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if in_properties:  # property names, not keywords
        return {key: _json_schema(value) for key, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = f"{_URI}{value}"
        elif key in _DOCUMENTATION or key.startswith("x-"):
            continue
        else:
            out[key] = _json_schema(value, in_properties=key in ("properties", "patternProperties"))
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _registry() -> referencing.Registry[Any]:
    document = _json_schema_document()
    resource = referencing.jsonschema.DRAFT4.create_resource(document)
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(_URI, resource)
    return registry


@functools.cache
def _json_schema_document() -> dict[str, Any]:
    schemas = copy.deepcopy(subset()["components"].get("schemas", {}))
    return {"components": {"schemas": {name: _json_schema(s) for name, s in schemas.items()}}}


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    def is_datetime(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            raise ValueError(f"{value!r} is not an RFC 3339 date-time")
        datetime.datetime.fromisoformat(value)
        return True

    def is_uri(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parts = urllib.parse.urlsplit(value)
        if not parts.scheme or not (parts.netloc or parts.scheme in ("urn", "mailto")):
            raise ValueError(f"{value!r} is not an absolute URI")
        if any(character.isspace() for character in value):
            raise ValueError(f"{value!r} has white space")
        return True

    checker.checks("date-time", raises=ValueError)(is_datetime)
    checker.checks("uri", raises=ValueError)(is_uri)
    return checker


_FORMATS = _format_checker()


def _resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a `$ref` to a component (a response, a parameter) in the subset."""
    while "$ref" in node:
        kind, name = node["$ref"].removeprefix("#/components/").split("/")
        node = subset()["components"][kind][name]
    return node


def _operation(method: str, path_template: str) -> Mapping[str, Any]:
    try:
        found: Mapping[str, Any] = subset()["paths"][path_template][method.lower()]
    except KeyError:
        raise UnknownOperation(f"{method.upper()} {path_template} is not in the subset") from None
    return found


@dataclasses.dataclass(frozen=True)
class _Target:
    schema: Any  # OpenAPI schema object, or None for "no body"
    name: str  # what it is, for messages and reports


def response_schema(method: str, path_template: str, status: int) -> tuple[Any, str]:
    """The OpenAPI schema a response must match, and its name: a `#/components/schemas/...`
    reference, `inline <pointer>`, `no body`, or `basic-error (status N not listed)`."""
    target = _response_target(method, path_template, status)
    return target.schema, target.name


def _response_target(method: str, path_template: str, status: int) -> _Target:
    responses = _operation(method, path_template)["responses"]
    listed = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    if listed is None:
        if status >= 400:
            return _Target({"$ref": _ERROR_SCHEMA}, f"{_ERROR_SCHEMA} (status {status} not listed)")
        listed = responses.get("default")
        if listed is None:
            raise UnknownOperation(f"{method.upper()} {path_template} does not list {status}")
    response = _resolve(listed)
    content = response.get("content", {})
    media = content.get("application/json")
    if media is None or "schema" not in media:
        return _Target(None, "no body")
    schema = media["schema"]
    return _Target(schema, _name(schema, f"inline {method.upper()} {path_template} {status}"))


def _name(schema: Mapping[str, Any], inline: str) -> str:
    if "$ref" in schema:
        return str(schema["$ref"])
    items = schema.get("items", {})
    if schema.get("type") == "array" and "$ref" in items:
        return f"array of {items['$ref']}"
    return inline


def request_schema(method: str, path_template: str) -> tuple[Any, bool, str]:
    """The OpenAPI schema of a request body, whether a body is required, and its name."""
    operation = _operation(method, path_template)
    body = operation.get("requestBody")
    if body is None:
        return None, False, "no body"
    body = _resolve(body)
    schema = body["content"]["application/json"]["schema"]
    name = _name(schema, f"inline {method.upper()} {path_template}")
    return schema, bool(body.get("required", False)), name


def _check(what: str, name: str, schema: Any, body: Any) -> None:
    validator = jsonschema.Draft4Validator(
        _json_schema(schema), registry=_registry(), format_checker=_FORMATS
    )
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        raise SchemaMismatch(
            what,
            name,
            [f"at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors],
        )


def validate_response(method: str, path_template: str, status: int, body: Any) -> str:
    """Check a response body (parsed JSON, None for none) against the description; the name of
    the schema used. Raises `SchemaMismatch` or `UnknownOperation`."""
    target = _response_target(method, path_template, status)
    what = f"response {status} to {method.upper()} {path_template}"
    if target.schema is None:
        if body not in (None, b"", ""):
            raise SchemaMismatch(what, target.name, ["a body where the description has none"])
        return target.name
    _check(what, target.name, target.schema, body)
    return target.name


def validate_schema(name: str, body: Any) -> str:
    """Check `body` against the component schema `name` (`basic-error`, `pull-request`...)."""
    ref = f"#/components/schemas/{name}"
    if name not in subset()["components"]["schemas"]:
        raise UnknownOperation(f"no schema {name} in the subset")
    _check(f"body as {name}", ref, {"$ref": ref}, body)
    return ref


def validate_request(method: str, path_template: str, body: Any) -> str:
    """Check a request body (parsed JSON, None for none) against the description; the name of
    the schema used. Raises `SchemaMismatch` or `UnknownOperation`."""
    schema, required, name = request_schema(method, path_template)
    what = f"request {method.upper()} {path_template}"
    if schema is None:
        if body is not None:
            raise SchemaMismatch(what, name, ["a body where the description has none"])
        return name
    if body is None:
        if required:
            raise SchemaMismatch(what, name, ["no body, but the description requires one"])
        return name
    _check(what, name, schema, body)
    return name


# -- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("extract", help="write the subset of a full description")
    make.add_argument("description", type=pathlib.Path, help="a full api.github.com.json")
    make.add_argument("--out", type=pathlib.Path, default=SUBSET_FILE)
    make.add_argument("--commit", default=SOURCE["commit"], help="rest-api-description commit")
    make.add_argument("--obtained-via", default=None, help="how the file was had, if not cloned")
    arguments = parser.parse_args(argv)
    full = json.loads(arguments.description.read_text())
    source = {
        "repository": SOURCE["repository"],
        "path": SOURCE["path"],
        "commit": arguments.commit,
        **({"obtained_via": arguments.obtained_via} if arguments.obtained_via else {}),
    }
    document = extract(full, OPERATIONS, source)
    arguments.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    size = arguments.out.stat().st_size
    print(f"wrote {arguments.out} ({size} bytes, {len(document['paths'])} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
