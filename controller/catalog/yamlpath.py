"""Set fields of any YAML file, named by paths: the catalog write-back beyond ADE's manifests.

Pure: text in, text out. The same surgical edit as `manifests` (both stand on `yamlnodes`): the
parser only finds where each value is written, the new text is the old one with exactly those
spans replaced (comments, quoting, key order, CRLF, a byte-order mark kept), and the result is
parsed again and compared with the old, document by document: anything but the named values
differing is a refusal (`manifests.ManifestInvalid`), never a write.

Paths (`spec.catalog.field` with `format: YAML`): keys separated by dots, each optionally
followed by selectors: `[N]` (item N of a sequence, from 0) or `[key=value]` (the item of a
sequence of mappings whose `key` is the string `value`). Examples: `image`, `image.tag`,
`spec.template.spec.containers[name=app].image`, Kustomize's `images[name=app].newTag`.

- Every document that has all the paths is edited; a document without them is left alone (a
  Service beside a Deployment), and a file where no document has them is refused. A document
  with some of the paths but not all is refused (half an image reference is worse than none).
- The value at a path must be a scalar (a string, a number, null) or an alias; a mapping, a
  sequence or a block scalar is refused. An alias is replaced by the value (the anchor stays).
- A key reached only through a merge key (`<<`) is refused: the edit would change the anchor.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML, events
from ruamel.yaml.error import YAMLError

from controller.catalog import manifests, yamlnodes
from controller.catalog.manifests import ManifestInvalid
from controller.catalog.yamlnodes import Node


@dataclasses.dataclass(frozen=True)
class Key:
    name: str


@dataclasses.dataclass(frozen=True)
class Index:
    position: int


@dataclasses.dataclass(frozen=True)
class Match:
    key: str
    value: str


Segment = Key | Index | Match
_SEGMENT = re.compile(r"([^.\[\]=]+)((?:\[[^\[\]]+\])*)")
_SELECTOR = re.compile(r"\[([^\[\]]+)\]")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


def parse_path(path: str) -> tuple[Segment, ...]:
    """The segments of a path; ValueError naming the problem for a malformed one."""
    segments: list[Segment] = []
    if not path or path != path.strip():
        raise ValueError(f"{path!r} is not a field path")
    for part in path.split("."):
        found = _SEGMENT.fullmatch(part)
        if found is None:
            raise ValueError(f"{path!r}: {part!r} is not a key with optional [N] or [key=value]")
        segments.append(Key(found.group(1)))
        for selector in _SELECTOR.findall(found.group(2)):
            if selector.isdigit():
                segments.append(Index(int(selector)))
            elif "=" in selector and selector.split("=", 1)[0] and selector.split("=", 1)[1]:
                key, value = selector.split("=", 1)
                segments.append(Match(key, value))
            else:
                raise ValueError(f"{path!r}: [{selector}] is neither [N] nor [key=value]")
    return tuple(segments)


def _locate(root: Node, path: Sequence[Segment]) -> tuple[Node | None, Node] | str | None:
    """(the key node or None, the value node) at `path`; None when the document does not have
    it; a problem (str) when it has it in a form that cannot be edited."""
    node, key = root, None
    for segment in path:
        if isinstance(segment, Key):
            if not isinstance(node.event, events.MappingStartEvent):
                return None
            entry = next((e for e in node.entries if e[0].scalar == segment.name), None)
            if entry is None:
                if any(e[0].scalar == "<<" for e in node.entries):
                    return f"{segment.name} may come through a merge key (<<); edit it by hand"
                return None
            key, node = entry
        elif isinstance(segment, Index):
            if not isinstance(node.event, events.SequenceStartEvent):
                return None
            if segment.position >= len(node.items):
                return None
            key, node = None, node.items[segment.position]
        else:
            if not isinstance(node.event, events.SequenceStartEvent):
                return None
            chosen = [
                item
                for item in node.items
                if any(
                    k.scalar == segment.key and v.scalar == segment.value for k, v in item.entries
                )
            ]
            if len(chosen) > 1:
                return f"[{segment.key}={segment.value}] names {len(chosen)} items"
            if not chosen:
                return None
            key, node = None, chosen[0]
    return key, node


# -- editing ---------------------------------------------------------------------------------


def _current(node: Node) -> str | None:
    event = node.event
    if isinstance(event, events.ScalarEvent):
        return None if event.style is None and event.value in _NULLS else str(event.value)
    return None


def set_paths(
    text: str, assignments: Sequence[tuple[str, str]], *, path: str
) -> tuple[manifests.Edit, tuple[tuple[str | None, ...], ...]]:
    """Set each (field path, value) of `assignments` in every document that has them all.

    Returns the edit (its `previous` unused: empty) and, per edited document, the values found
    at the paths, in the order given. `path` names the file in errors. Raises `ManifestInvalid`
    (see the module docstring), ValueError for a malformed field path or a multi-line value.
    """
    parsed = [(field, parse_path(field), value) for field, value in assignments]
    for _, _, value in parsed:
        if not value or value != value.strip() or any(c in value for c in "\r\n"):
            raise ValueError(f"{value!r} is not a one-line value")
    source = manifests.parse(text, path=path)
    roots = source.roots
    spans: list[yamlnodes.Span] = []
    found: list[tuple[str | None, ...]] = []
    edited: list[int] = []
    for index, root in enumerate(roots):
        where = f" (document {index + 1})" if len(roots) > 1 else ""
        located = [_locate(root, segments) for _, segments, _ in parsed]
        for place in located:
            if isinstance(place, str):
                raise ManifestInvalid(path, f"{place}{where}")
        places = [place for place in located if isinstance(place, tuple)]
        if not places:
            continue
        if len(places) != len(parsed):
            missing = [f for (f, _, _), p in zip(parsed, located, strict=True) if p is None]
            raise ManifestInvalid(path, f"has no {', '.join(missing)}{where}")
        values: list[str | None] = []
        for (field, _, value), (key, node) in zip(parsed, places, strict=True):
            current = _current(node)
            values.append(current)
            span = yamlnodes.scalar_span(
                source,
                key,
                node,
                value=value,
                name=field,
                null=current is None,
                holds=node.scalar == value,
            )
            if isinstance(span, str):
                raise ManifestInvalid(path, f"{span}{where}")
            if span is not None:
                spans.append(span)
        found.append(tuple(values))
        edited.append(index)
    if not edited:
        fields = ", ".join(field for field, _, _ in parsed)
        raise ManifestInvalid(path, f"no document has {fields}")
    new_text = yamlnodes.apply(text, spans)
    if new_text == text:
        return manifests.Edit(changed=False, text=text, previous=()), tuple(found)
    _verify(path, source.data, new_text, edited, parsed)
    return manifests.Edit(changed=True, text=new_text, previous=()), tuple(found)


def _verify(
    path: str,
    before: Sequence[Any],
    new_text: str,
    edited: Sequence[int],
    parsed: Sequence[tuple[str, tuple[Segment, ...], str]],
) -> None:
    refusal = "cannot set the fields without changing something else; edit it by hand"
    try:
        with yamlnodes.quiet():
            after = list(YAML(typ="rt").load_all(new_text))
    except YAMLError as error:
        detail = manifests.describe_error(error)
        raise ManifestInvalid(path, f"{refusal} (the edit breaks the YAML: {detail})") from None
    if len(after) != len(before):
        raise ManifestInvalid(path, refusal)
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        if index in edited:
            for _, segments, value in parsed:
                if manifests.text_of(_get(new, segments)) != value:
                    raise ManifestInvalid(path, refusal)
                _put(old, segments)
                _put(new, segments)
        if manifests.plain_data(old) != manifests.plain_data(new):
            raise ManifestInvalid(path, refusal)


_MARK = object()


def _get(data: Any, segments: Sequence[Segment]) -> Any:
    for segment in segments:
        data = _child(data, segment)
    return data


def _child(data: Any, segment: Segment) -> Any:
    if isinstance(segment, Key):
        return data[segment.name]
    if isinstance(segment, Index):
        return data[segment.position]
    return next(
        item
        for item in data
        if isinstance(item, dict) and manifests.text_of(item.get(segment.key)) == segment.value
    )


def _put(data: Any, segments: Sequence[Segment]) -> None:
    """Replace the value at `segments` of `data` by a marker, in place."""
    parent = _get(data, segments[:-1])
    last = segments[-1]
    if isinstance(last, Key):
        parent[last.name] = _MARK
    elif isinstance(last, Index):
        parent[last.position] = _MARK
    else:  # pragma: no cover - a path ends with a key or an index into a list of scalars
        raise ManifestInvalid("", "a path cannot end with a [key=value] selector")
