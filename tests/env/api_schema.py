"""The JSON Schema machinery the hosting emulators' description validators share
(`tests.env.github_openapi`, OpenAPI 3.0; `tests.env.azure_repos_spec`, Swagger 2.0): cutting a
published description down to a subset (`strip`, `refs`, `kept_paths`, the `extract` command
line), turning its schemas into JSON Schema draft 4 (`json_schema`: references made absolute,
`nullable` as "or null", documentation dropped, `strict` forbidding undefined members), format
checks of our own (jsonschema checks few formats without optional packages), and `Validator`,
which checks request and response bodies and reports every violation in a `SchemaMismatch`.

Which description, which corrections and which formats: each validator's own.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import referencing
import referencing.jsonschema

__all__ = [
    "METHODS",
    "SchemaMismatch",
    "UnknownOperation",
    "Validator",
    "extract_command",
    "format_checker",
    "json_schema",
    "kept_paths",
    "matching",
    "operation",
    "refs",
    "schema_name",
    "strings",
    "strip",
]

METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
"""The operation members of a path item (its other members are kept whole)."""
_DOCUMENTATION = frozenset(
    {"nullable", "example", "discriminator", "xml", "externalDocs", "description", "readOnly"}
)
"""Schema members that only document, or are not JSON Schema (`nullable` is turned into it)."""
_NAME_MAPS = frozenset({"properties", "patternProperties"})
"""Members whose keys are property names, not keywords."""

Check = Callable[[object], bool]
"""A format check: True, or ValueError saying why not."""


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


def strip(node: Any, drop: Callable[[str], bool], *, in_properties: bool = False) -> Any:
    """A copy without the members `drop` names (a property so named is kept)."""
    if isinstance(node, dict):
        return {
            key: strip(value, drop, in_properties=key == "properties" and not in_properties)
            for key, value in node.items()
            if in_properties or not drop(key)
        }
    if isinstance(node, list):
        return [strip(item, drop) for item in node]
    return node


def refs(node: Any) -> Iterable[str]:
    """Every `$ref` in `node`, recursively."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def kept_paths(
    full: Mapping[str, Any], operations: Mapping[str, Sequence[str]], drop: Callable[[str], bool]
) -> dict[str, Any]:
    """The path items of `operations` in the full description, with only those methods."""
    paths: dict[str, Any] = {}
    for template, methods in operations.items():
        item = full["paths"][template]
        kept = {key: value for key, value in item.items() if key not in METHODS}
        for method in methods:
            kept[method] = item[method]
        paths[template] = strip(kept, drop)
    return paths


def extract_command(
    argv: Sequence[str] | None,
    doc: str | None,
    full_name: str,
    out: pathlib.Path,
    source: Mapping[str, str],
    options: Mapping[str, str],
    extract: Callable[..., dict[str, Any]],
    counted: str,
) -> int:
    """The command line `extract FULL [--out] [--commit] [--OPTION...]`: reads a full
    description (`full_name`; a UTF-8 BOM allowed), writes `extract(full, source=...)` to `out`
    (`source` with the commit and each `options` given: `--name` -> help) and says how many
    `counted` it holds."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("extract", help=f"write the subset of a full {full_name}")
    make.add_argument("description", type=pathlib.Path, help=f"a full {full_name}")
    make.add_argument("--out", type=pathlib.Path, default=out)
    make.add_argument("--commit", default=source["commit"], help="the source repository's commit")
    for option, text in options.items():
        make.add_argument(option, default=None, help=text)
    arguments = parser.parse_args(argv)
    given = {name.lstrip("-").replace("-", "_") for name in options}
    chosen = {**source, "commit": arguments.commit}
    chosen.update({name: getattr(arguments, name) for name in given if getattr(arguments, name)})
    full = json.loads(arguments.description.read_text(encoding="utf-8-sig"))
    document = extract(full, source=chosen)
    arguments.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    size = arguments.out.stat().st_size
    print(f"wrote {arguments.out} ({size} bytes, {len(document[counted])} {counted})")
    return 0


# -- operations --------------------------------------------------------------------------------


def operation(subset: Mapping[str, Any], method: str, path_template: str) -> Mapping[str, Any]:
    """The operation object; `UnknownOperation` if the subset has none."""
    try:
        found: Mapping[str, Any] = subset["paths"][path_template][method.lower()]
    except KeyError:
        raise UnknownOperation(f"{method.upper()} {path_template} is not in the subset") from None
    return found


def schema_name(schema: Mapping[str, Any], inline: str) -> str:
    """How a body's schema is named in reports: its reference, `array of` one, or `inline`."""
    if "$ref" in schema:
        return str(schema["$ref"])
    items = schema.get("items", {})
    if schema.get("type") == "array" and "$ref" in items:
        return f"array of {items['$ref']}"
    return inline


# -- JSON Schema -------------------------------------------------------------------------------


def json_schema(node: Any, uri: str, *, strict: bool = False, in_properties: bool = False) -> Any:
    """An OpenAPI 3.0 or Swagger 2.0 schema as JSON Schema draft 4: references made absolute
    under `uri` (draft 4 ignores a reference's siblings), `nullable` as "or null",
    documentation and `x-` members dropped; `strict`: no members beyond those defined."""
    if isinstance(node, list):
        return [json_schema(item, uri, strict=strict) for item in node]
    if not isinstance(node, dict):
        return node
    if in_properties:
        return {key: json_schema(value, uri, strict=strict) for key, value in node.items()}
    out: dict[str, Any] = {}
    if "$ref" in node:
        out["$ref"] = f"{uri}{node['$ref']}"
    else:
        for key, value in node.items():
            if key not in _DOCUMENTATION and not key.startswith("x-"):
                out[key] = json_schema(value, uri, strict=strict, in_properties=key in _NAME_MAPS)
        if strict and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def strings(check: Callable[[str], object]) -> Check:
    """A format check of strings (`check` raises ValueError); other values pass."""

    def checked(value: object) -> bool:
        if isinstance(value, str):
            check(value)
        return True

    return checked


def matching(pattern: str, message: str, then: Callable[[str], object] = str) -> Check:
    """A format check: a string must match `pattern` whole (else ValueError(`message` formatted
    with its repr)), then pass `then`."""

    def check(value: str) -> None:
        if not re.fullmatch(pattern, value):
            raise ValueError(message.format(repr(value)))
        then(value)

    return strings(check)


def format_checker(checks: Mapping[str, Check]) -> jsonschema.FormatChecker:
    """jsonschema's format checker with `checks` (format name -> check) added or replaced."""
    checker = jsonschema.FormatChecker()
    for name, check in checks.items():
        checker.checks(name, raises=ValueError)(check)
    return checker


class Validator:
    """Checks bodies against schemas that may reference `definitions`, which the validator's
    document holds at `pointer` (`("definitions",)`, `("components", "schemas")`), under `uri`."""

    def __init__(
        self,
        uri: str,
        pointer: Sequence[str],
        definitions: Mapping[str, Any],
        formats: jsonschema.FormatChecker,
    ) -> None:
        self.uri = uri
        self.pointer = tuple(pointer)
        self.definitions = definitions
        self.formats = formats

    @functools.cache  # noqa: B019 - one instance per subset, kept for the session
    def registry(self, strict: bool) -> referencing.Registry[Any]:
        document: Any = {
            name: json_schema(schema, self.uri, strict=strict)
            for name, schema in self.definitions.items()
        }
        for key in reversed(self.pointer):
            document = {key: document}
        resource = referencing.jsonschema.DRAFT4.create_resource(document)
        registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            self.uri, resource
        )
        return registry

    def check(self, what: str, name: str, schema: Any, body: Any, *, strict: bool = False) -> None:
        """Raise `SchemaMismatch` (`what` does not match `name`) listing every violation."""
        validator = jsonschema.Draft4Validator(
            json_schema(schema, self.uri, strict=strict),
            registry=self.registry(strict),
            format_checker=self.formats,
        )
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            raise SchemaMismatch(
                what,
                name,
                [f"at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors],
            )

    def check_request(
        self, what: str, name: str, schema: Any, body: Any, *, required: bool, strict: bool = False
    ) -> None:
        """A request body (None for none) against `schema` (None: the operation takes none)."""
        if schema is None:
            if body is not None:
                raise SchemaMismatch(what, name, ["a body where the description has none"])
            return
        if body is None:
            if required:
                raise SchemaMismatch(what, name, ["no body, but the description requires one"])
            return
        self.check(what, name, schema, body, strict=strict)

    def check_response(
        self, what: str, name: str, schema: Any, body: Any, *, strict: bool = False, none: str
    ) -> None:
        """A response body against `schema` (None: no body expected, `none` says so)."""
        if schema is None:
            if body not in (None, b"", ""):
                raise SchemaMismatch(what, name, [none])
            return
        self.check(what, name, schema, body, strict=strict)

    def format_problem(self, value: str, format_name: str) -> str | None:
        """Why `value` is not of the format `format_name`; None if it is (or is unknown)."""
        try:
            self.formats.check(value, format_name)
        except jsonschema.FormatError as error:
            return str(error.message)
        return None
