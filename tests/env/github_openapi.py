"""GitHub's published OpenAPI description, cut down to the pull request calls the operator makes
(and a GitHub App's request for an installation token),
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

    .venv/bin/python -m tests.env.github_openapi extract api.github.com.json \\
        --commit <rest-api-description commit> [--out tests/env/github_openapi.json]

Validation turns the OpenAPI 3.0 schemas into JSON Schema (draft 4, which OpenAPI 3.0 extends):
`nullable: true` becomes "or null", `$ref`s resolve inside the subset, and the `date-time` and
`uri` formats are checked (jsonschema checks neither without optional packages). A response
whose status the operation does not list (GitHub answers 401, 429 and 5xx on every endpoint,
but its description lists them on few) is checked against `basic-error`, the shape of every
GitHub error body, and reported as such by `response_schema`. The machinery (extraction, the
conversion to JSON Schema, checking and reporting) is shared with the Azure Repos validator:
`tests.env.api_schema`.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import pathlib
import re
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from tests.env import api_schema
from tests.env.api_schema import SchemaMismatch, UnknownOperation, refs, schema_name

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
    "/app/installations/{installation_id}/access_tokens": ("post",),
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

_URI = "urn:github-openapi-subset"
_ERROR_SCHEMA = "#/components/schemas/basic-error"

__all__ = [
    "OPERATIONS",
    "SOURCE",
    "SchemaMismatch",
    "UnknownOperation",
    "extract",
    "request_schema",
    "response_schema",
    "subset",
    "validate_request",
    "validate_response",
    "validate_schema",
]


def _documentation_only(key: str) -> bool:
    """`examples` and the `x-octokit` extension: dropped from the subset."""
    return key == "examples" or key.startswith("x-octokit")


def extract(
    full: Mapping[str, Any],
    operations: Mapping[str, Sequence[str]] = OPERATIONS,
    source: Mapping[str, str] = SOURCE,
) -> dict[str, Any]:
    """The subset of the full description `full`: the operations asked for and, recursively, the
    components they reference."""
    paths = api_schema.kept_paths(full, operations, _documentation_only)
    components: dict[str, dict[str, Any]] = {}
    pending = list(refs(paths))
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
        value = api_schema.strip(full["components"][kind][name], _documentation_only)
        components.setdefault(kind, {})[name] = value
        pending.extend(refs(value))
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


def _datetime(value: str) -> None:
    datetime.datetime.fromisoformat(value)


def _uri(value: str) -> None:
    parts = urllib.parse.urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.scheme in ("urn", "mailto")):
        raise ValueError(f"{value!r} is not an absolute URI")
    if any(character.isspace() for character in value):
        raise ValueError(f"{value!r} has white space")


_FORMATS = api_schema.format_checker(
    {
        "date-time": api_schema.matching(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
            "{} is not an RFC 3339 date-time",
            _datetime,
        ),
        "uri": api_schema.strings(_uri),
    }
)


@functools.cache
def _validator() -> api_schema.Validator:
    schemas = subset()["components"].get("schemas", {})
    return api_schema.Validator(_URI, ("components", "schemas"), schemas, _FORMATS)


def _resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a `$ref` to a component (a response, a parameter) in the subset."""
    while "$ref" in node:
        kind, name = node["$ref"].removeprefix("#/components/").split("/")
        node = subset()["components"][kind][name]
    return node


def _operation(method: str, path_template: str) -> Mapping[str, Any]:
    return api_schema.operation(subset(), method, path_template)


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
    return _Target(schema, schema_name(schema, f"inline {method.upper()} {path_template} {status}"))


def request_schema(method: str, path_template: str) -> tuple[Any, bool, str]:
    """The OpenAPI schema of a request body, whether a body is required, and its name."""
    operation = _operation(method, path_template)
    body = operation.get("requestBody")
    if body is None:
        return None, False, "no body"
    body = _resolve(body)
    schema = body["content"]["application/json"]["schema"]
    name = schema_name(schema, f"inline {method.upper()} {path_template}")
    return schema, bool(body.get("required", False)), name


def _check(what: str, name: str, schema: Any, body: Any) -> None:
    _validator().check(what, name, schema, body)


def validate_response(method: str, path_template: str, status: int, body: Any) -> str:
    """Check a response body (parsed JSON, None for none) against the description; the name of
    the schema used. Raises `SchemaMismatch` or `UnknownOperation`."""
    target = _response_target(method, path_template, status)
    what = f"response {status} to {method.upper()} {path_template}"
    none = "a body where the description has none"
    _validator().check_response(what, target.name, target.schema, body, none=none)
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
    _validator().check_request(what, name, schema, body, required=required)
    return name


# -- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    cloned = {key: value for key, value in SOURCE.items() if key != "obtained_via"}
    options = {"--obtained-via": "how the file was had, if not cloned"}
    return api_schema.extract_command(
        argv, __doc__, "api.github.com.json", SUBSET_FILE, cloned, options, extract, "paths"
    )


if __name__ == "__main__":
    sys.exit(main())
