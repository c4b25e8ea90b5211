"""The pure edit engine of the catalog write-back: set one field of an environment definition.

Pure: text in, text out, no I/O. The edit is surgical. ruamel.yaml parses the text only to find
*where* the field's value is written (the scanner's token positions); the new text is the old
text with exactly that span replaced (`yamlnodes`, shared with `yamlpath`), so comments, the
schema line, key order, indentation, quoting of everything else, line endings, a missing final
newline and a byte-order mark are kept byte for byte. After the edit the new text is parsed again
and compared with the old, document by document: anything but the one field differing is a
refusal (`ManifestInvalid`), never a write.

Decisions:

- Quoting: the old value's style is kept (double, single, plain). A plain value that the new text
  cannot be written as (it would read as another type or break the syntax, in YAML 1.1 or 1.2)
  becomes double-quoted. A value that is absent, empty, null or an alias is written double-quoted,
  as ADE's documentation writes runner images. Block scalars (`|`, `>`) are refused.
- Insertion of a missing field follows ADE's documented order (`FIELD_ORDER`): after the last of
  the keys that come before it (name, version, summary, description), before the keys that come
  after it (templatePath, parameters), indented like its siblings, with the line ending of the line
  it follows; in a flow mapping, as one more `key: value` entry. A field that `FIELD_ORDER` does
  not know is appended after the last entry.
- Multi-document files: every document that is an environment definition is edited. Empty
  documents are ignored; any other document makes the file invalid (a manifest file holds
  manifests, and a file that holds something else is reported, not guessed at).
- Only a top-level key of each document is edited; one that only comes through a merge key
  (`<<: *base`) is overridden by inserting it, so the anchored mapping is left alone. An anchored
  value keeps its anchor (its aliases follow it, as the author meant); an alias value is replaced
  by the new value, so the anchor and its other aliases are left alone.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML, events
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from controller import errors
from controller.api import spec as model
from controller.catalog import yamlnodes
from controller.catalog.yamlnodes import Node, Span, double_quoted, plain_ok
from controller.catalog.yamlnodes import apply as _apply

REASON = "ManifestInvalid"
FIELD_ORDER = ("name", "version", "summary", "description", "runner", "templatePath", "parameters")
"""The order of an environment definition's keys in ADE's documentation and samples."""
REQUIRED_KEYS = ("name", "templatePath")
"""What makes a YAML document an environment definition."""
FIELD_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
"""A top-level key `field` may name (the CRD's pattern for spec.catalog.field)."""
RESERVED_FIELDS = tuple(key for key in FIELD_ORDER if key != "runner")
"""ADE's own keys of an environment definition, never an image field: writing an image reference
into `name` or `templatePath` would rename every environment or break its template."""


def field_problem(field: str) -> str | None:
    """Why `field` cannot be the field an image reference is written to (format
    EnvironmentDefinition), or None when it can."""
    if not FIELD_PATTERN.fullmatch(field):
        return f"{field!r} must be a top-level key (letters, digits, _ and -)"
    if field in RESERVED_FIELDS:
        return (
            f"{field!r} is an environment definition's own key, not an image field "
            f"(refused: {', '.join(RESERVED_FIELDS)})"
        )
    return None


ENCODING = "utf-8"


class ManifestInvalid(errors.StalledError):
    """A manifest the engine cannot edit: not YAML, not an environment definition, or a field it
    cannot rewrite safely. `path` names the file, `problem` says why; `reason` is the condition
    reason (`ManifestInvalid`) and `message` is `"<path>: <problem>"`."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(REASON, f"{path}: {reason}")
        self.path = path
        self.problem = reason


@dataclasses.dataclass(frozen=True)
class Edit:
    """The result of `set_field`: `text` is the original text exactly when `changed` is False.

    `previous` holds, for each environment definition in the file (in document order), the
    field's old value as text, or None where it was absent or null.
    """

    changed: bool
    text: str
    previous: tuple[str | None, ...]


def decode(data: bytes, *, path: str) -> str:
    """The text of a manifest file (UTF-8; a byte-order mark stays in the text, as U+FEFF)."""
    try:
        return data.decode(ENCODING)
    except UnicodeDecodeError as error:
        raise ManifestInvalid(path, f"not UTF-8 text (byte {error.start})") from None


def encode(text: str) -> bytes:
    """The bytes to write for a text returned by `set_field` (the inverse of `decode`)."""
    return text.encode(ENCODING)


def set_field(
    text: str,
    *,
    field: str,
    value: str,
    path: str,
    required_keys: Sequence[str] = REQUIRED_KEYS,
    order: Sequence[str] = FIELD_ORDER,
) -> Edit:
    """Set the top-level `field` of every environment definition in `text` to the string `value`.

    `path` only names the file in errors. Raises `ManifestInvalid` when the text is not valid
    YAML, a non-empty document is not a mapping holding every one of `required_keys`, or the
    field cannot be rewritten safely; raises ValueError for an empty or multi-line `value`.
    """
    if not value or value != value.strip() or any(c in value for c in "\r\n"):
        raise ValueError(f"{value!r} is not a one-line value")
    parsed = parse(text, path=path)
    spans: list[Span] = []
    previous: list[str | None] = []
    manifests: list[int] = []
    anchored: list[int] = []  # documents whose field holds an anchor (its aliases follow it)
    for index, (root, data) in enumerate(zip(parsed.roots, parsed.data, strict=True)):
        if data is None:
            continue  # an empty document: a leading or trailing "---", a comment only
        where = f" (document {index + 1})" if len(parsed.roots) > 1 else ""
        _check_manifest(data, required_keys, path=path, where=where)
        manifests.append(index)
        if _holds_anchor(root, field):
            anchored.append(index)
        previous.append(text_of(data.get(field)))
        span = _field_span(text, parsed, root, data, field=field, value=value, order=order)
        if isinstance(span, str):
            raise ManifestInvalid(path, f"{span}{where}")
        if span is not None:
            spans.append(span)
    if not manifests:
        raise ManifestInvalid(path, "holds no environment definition (the file is empty)")
    new_text = _apply(text, spans)
    if new_text == text:
        return Edit(changed=False, text=text, previous=tuple(previous))
    _verify(path, parsed.data, new_text, manifests, anchored, field=field, value=value)
    return Edit(changed=True, text=new_text, previous=tuple(previous))


def reference(image: str, digest: str | None, pin: model.PinMode, *, keep_tag: bool = False) -> str:
    """The text to write for `image` (`registry/repository:tag`, maybe with `@digest`).

    `Tag` gives `registry/repository:tag`; `Digest` gives `registry/repository@digest`, or
    `registry/repository:tag@digest` with `keep_tag`. `digest` defaults to one in `image`; the two
    must agree. The registry and repository are kept as written (no Docker Hub expansion). Raises
    ValueError when the reference has no tag (Tag) or no valid digest (Digest).
    """
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"{image!r} is not an image reference")
    name, at, embedded = image.partition("@")
    if at and not _DIGEST.fullmatch(embedded):
        raise ValueError(f"{image!r}: {embedded!r} is not a sha256 or sha512 digest")
    if digest is not None and at and digest != embedded:
        raise ValueError(f"{image!r} does not carry the digest {digest}")
    chosen = digest if digest is not None else (embedded if at else None)
    slash, colon = name.rfind("/"), name.rfind(":")
    repository, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, None)
    if not repository or tag == "":
        raise ValueError(f"{image!r} is not an image reference")
    if pin is model.PinMode.TAG:
        if tag is None:
            raise ValueError(f"{image!r} has no tag to pin")
        return f"{repository}:{tag}"
    if chosen is None or not _DIGEST.fullmatch(chosen):
        raise ValueError(f"pinning {image!r} by digest needs a sha256 or sha512 digest")
    if keep_tag and tag is not None:
        return f"{repository}:{tag}@{chosen}"
    return f"{repository}@{chosen}"


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


# --- Reading: where every top-level entry of every document is written ---------------------------


def parse(text: str, *, path: str) -> yamlnodes.Parsed:
    """`text` loaded and indexed as written (`yamlnodes.parse`); `ManifestInvalid` when it is not
    valid YAML. `path` only names the file in the error."""
    try:
        return yamlnodes.parse(text)
    except YAMLError as error:
        raise ManifestInvalid(path, f"not valid YAML: {describe_error(error)}") from None


def describe_error(error: YAMLError) -> str:
    if isinstance(error, MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    text = " ".join(str(error).split())
    return re.sub(r' in "<unicode string>", position (\d+)', r" (character \1)", text)


def _check_manifest(data: Any, required: Sequence[str], *, path: str, where: str) -> None:
    if not isinstance(data, Mapping):
        raise ManifestInvalid(
            path,
            f"not an environment definition{where}: a {_kind(data)}, "
            f"not a mapping with {' and '.join(required)}",
        )
    missing = [key for key in required if data.get(key) is None]
    if missing:
        raise ManifestInvalid(path, f"not an environment definition{where}: no {missing[0]}")


def _kind(data: Any) -> str:
    if isinstance(data, list):
        return "sequence"
    return "string" if isinstance(data, str) else type(data).__name__


def text_of(data: Any) -> str | None:
    if isinstance(data, TaggedScalar):
        data = data.value
    if data is None:
        return None
    return data if isinstance(data, str) else str(data)


# --- Editing ----------------------------------------------------------------------------------


def _field_span(
    text: str,
    parsed: yamlnodes.Parsed,
    root: Node,
    data: Mapping[str, Any],
    *,
    field: str,
    value: str,
    order: Sequence[str],
) -> Span | str | None:
    """The (start, end, replacement) that sets the field in one document; None when it already
    holds `value`; a problem (str) when it cannot be set."""
    entry = next((item for item in root.entries if item[0].scalar == field), None)
    if entry is None:
        return _insertion(text, parsed, root, field=field, value=value, order=order)
    current = data.get(field)
    if isinstance(current, str) and current == value:
        return None
    key, node = entry
    return yamlnodes.scalar_span(parsed, key, node, value=value, name=field, null=current is None)


def _entry_text(field: str, value: str) -> str:
    key = field if _KEY.fullmatch(field) and plain_ok(field) else double_quoted(field)
    return f"{key}: {double_quoted(value)}"


def _insertion(
    text: str,
    parsed: yamlnodes.Parsed,
    root: Node,
    *,
    field: str,
    value: str,
    order: Sequence[str],
) -> Span:
    """Where and what to insert for a missing field (see the module docstring)."""
    entries = root.entries
    before: set[str] = set()
    after: set[str] = set()
    if field in order:
        index = list(order).index(field)
        before, after = set(order[:index]), set(order[index + 1 :])
    following = [item for item in entries if item[0].scalar in after]
    limit = min((item[0].start for item in following), default=len(text) + 1)
    preceding = [item for item in entries if item[0].scalar in before and item[0].start < limit]
    entry = _entry_text(field, value)
    indent = _indent(text, root)
    if preceding:
        anchor = max(preceding, key=lambda item: item[0].start)
        return _after(text, parsed, root, anchor, entry=entry, indent=indent)
    if following:
        key = min(following, key=lambda item: item[0].start)[0]
        return _before(text, root, key, entry, indent)
    return _after(text, parsed, root, entries[-1], entry=entry, indent=indent)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _indent(text: str, root: Node) -> str | None:
    """The indentation of the mapping's keys that start a line; None when none does."""
    for key, _ in root.entries:
        prefix = text[_line_start(text, key.start) : key.start].lstrip("\ufeff")
        if not prefix.strip(" "):
            return prefix
    return None


def _line_end(text: str, index: int) -> str:
    """The line ending of the line holding `index` (the file's own when it is the last line)."""
    newline = text.find("\n", index)
    if newline == -1:
        return "\r\n" if "\r\n" in text else "\n"
    return "\r\n" if newline > 0 and text[newline - 1] == "\r" else "\n"


def _value_end(parsed: yamlnodes.Parsed, entry: tuple[Node, Node]) -> int:
    key, node = entry
    if isinstance(node.event, events.ScalarEvent) and parsed.scalar_start(node) is None:
        # An empty value is placed at the next token; its entry ends at the ":".
        colon = parsed.value_indicator_after(key.end)
        if colon is not None and colon <= node.start:
            return colon
    return node.end


def _after(
    text: str,
    parsed: yamlnodes.Parsed,
    root: Node,
    anchor: tuple[Node, Node],
    *,
    entry: str,
    indent: str | None,
) -> Span:
    end = _value_end(parsed, anchor)
    if root.flow:
        if indent is None or _single_line(text, root):
            return end, end, f", {entry}"
        comma = len(text[end:]) - len(text[end:].lstrip(" \t"))
        if text[end + comma : end + comma + 1] == ",":
            # One entry a line: the new line goes after the anchor's comma and comment.
            newline = _newline(text, end)
            rest = text[end + comma + 1 : newline].strip(" \t")
            if not rest or rest.startswith("#"):
                return newline, newline, f"{_line_end(text, end)}{indent}{entry},"
        newline = _newline(text, end)
        rest = text[end:newline]
        if rest.strip(" \t").startswith("#"):
            # The last entry with a comment after it: the comment stays on its line.
            return end, newline, f",{rest}{_line_end(text, end)}{indent}{entry}"
        return end, end, f",{_line_end(text, end)}{indent}{entry}"
    indent = indent if indent is not None else ""
    line = _line_start(text, end)
    if line > anchor[0].start and not text[line:end].strip(" \t"):
        # The value ran to the end of its lines (a block scalar or collection): insert a line.
        return line, line, f"{indent}{entry}{_line_end(text, line - 1)}"
    position = _newline(text, end)
    return position, position, f"{_line_end(text, end)}{indent}{entry}"


def _newline(text: str, index: int) -> int:
    """Where the line holding `index` ends: its "\r\n" or "\n", or the end of the text."""
    newline = text.find("\n", index)
    if newline == -1:
        return len(text)
    return newline - 1 if newline > 0 and text[newline - 1] == "\r" else newline


def _before(text: str, root: Node, key: Node, entry: str, indent: str | None) -> Span:
    starts_line = not text[_line_start(text, key.start) : key.start].lstrip("\ufeff").strip(" ")
    if root.flow and (indent is None or _single_line(text, root) or not starts_line):
        return key.start, key.start, f"{entry}, "
    separator = "," if root.flow else ""
    if not starts_line or indent is None:  # pragma: no cover - a block key starts its line
        indent = ""
    return key.start, key.start, f"{entry}{separator}{_line_end(text, key.start)}{indent}"


def _single_line(text: str, root: Node) -> bool:
    return "\n" not in text[root.start : root.end]


# --- Verifying: the new text means the old one with only the field changed --------------------


def _verify(
    path: str,
    before: Sequence[Any],
    new_text: str,
    manifests: Sequence[int],
    anchored: Sequence[int],
    *,
    field: str,
    value: str,
) -> None:
    refusal = f"cannot set {field} without changing something else; edit it by hand"
    try:
        with yamlnodes.quiet():
            after = list(YAML(typ="rt").load_all(new_text))
    except YAMLError as error:
        problem = f"{refusal} (the edit breaks the YAML: {describe_error(error)})"
        raise ManifestInvalid(path, problem) from None
    if len(after) != len(before):
        raise ManifestInvalid(path, refusal)
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        if index not in manifests:
            same = plain_data(old) == plain_data(new)
        else:
            # An alias of the field's anchored value follows it: both read as one marker.
            marker = ("<the field's anchor>",)
            follows = index in anchored and isinstance(new, Mapping)
            same = (
                isinstance(new, Mapping)
                and text_of(new.get(field)) == value
                and plain_data(_without(old, field), follow=(_held(old, field, follows), marker))
                == plain_data(_without(new, field), follow=(_held(new, field, follows), marker))
            )
        if not same:
            raise ManifestInvalid(path, refusal)


def _holds_anchor(root: Node, field: str) -> bool:
    """Whether the field's value is written with an anchor (`runner: &image ...`), not an
    alias: its aliases then follow the new value (module docstring)."""
    entry = next((item for item in root.entries if item[0].scalar == field), None)
    return (
        entry is not None
        and getattr(entry[1].event, "anchor", None) is not None
        and not (isinstance(entry[1].event, events.AliasEvent))
    )


def _held(data: Mapping[str, Any], field: str, follows: bool) -> Any:
    """The field's anchored value, whose aliases are the same object; None when it has none."""
    return data.get(field) if follows else None


def _without(data: Mapping[str, Any], field: str) -> list[tuple[Any, Any]]:
    return [(key, item) for key, item in data.items() if key != field]


def plain_data(
    data: Any, seen: frozenset[int] = frozenset(), *, follow: tuple[Any, Any] = (None, None)
) -> Any:
    """Data as plain, comparable values: mappings become ordered pairs, tags are kept. With
    `follow=(node, marker)`, the anchored `node` and its every alias read as `marker`."""
    if follow[0] is not None and data is follow[0]:
        return follow[1]
    if id(data) in seen:
        return ("<recursive>",)
    inner = seen | {id(data)}
    if isinstance(data, TaggedScalar):
        return ("<tagged>", str(data.tag), data.value)
    if isinstance(data, Mapping):
        return [
            (plain_data(key, inner, follow=follow), plain_data(item, inner, follow=follow))
            for key, item in data.items()
        ]
    if isinstance(data, list | tuple):
        return [plain_data(item, inner, follow=follow) for item in data]
    tag = getattr(data, "tag", None)
    if tag is not None and getattr(tag, "value", None) is not None:
        return ("<tagged>", str(tag.value), data)
    return data
