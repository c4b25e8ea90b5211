"""Where a YAML text writes each node, and the span that sets one scalar node to a new string.

Pure: text in, spans out, no I/O. The common ground of the two surgical editors of the catalog
write-back, `manifests` (a top-level field of ADE's environment definitions) and `yamlpath` (any
value named by a path): `parse` loads the documents and indexes the text as written (every node's
span from the parser's events; from the scanner's tokens, where each scalar's own text begins and
where each ":" value indicator is), and `scalar_span` turns one node into the
(start, end, replacement) that writes a new string there.

Decisions (`scalar_span`): an alias is replaced by the value (its anchor is left alone); a mapping,
a sequence or a block scalar (`|`, `>`) is refused; an empty value is written after its key's ":";
an empty value, a null or an alias becomes double-quoted; any other scalar keeps its quoting style
(double, single, plain) unless the new value cannot be written in it (`render_scalar`).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML, events, tokens
from ruamel.yaml.error import ReusedAnchorWarning, YAMLError

Span = tuple[int, int, str]
"""(start, end, replacement): the text from start to end is replaced."""

_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*")


@dataclasses.dataclass(frozen=True)
class Node:
    """A node as written: its first event, the span of text it covers and, for a collection, its
    entries (a mapping) or items (a sequence) in text order."""

    event: events.Event
    start: int
    """First character, including an anchor or a tag."""
    end: int
    """After the last character (a block scalar's trailing line breaks included)."""
    entries: tuple[tuple[Node, Node], ...] = ()
    items: tuple[Node, ...] = ()

    @property
    def scalar(self) -> str | None:
        """The value of a scalar node as written (a key's name); None for any other node."""
        event = self.event
        return event.value if isinstance(event, events.ScalarEvent) else None

    @property
    def flow(self) -> bool:
        """Whether the node is a flow mapping (`{key: value}`)."""
        event = self.event
        return isinstance(event, events.MappingStartEvent) and bool(event.flow_style)


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A YAML text, loaded and indexed as written."""

    data: tuple[Any, ...]
    """Each document, loaded round-trip (None for an empty one)."""
    roots: tuple[Node, ...]
    """Each document's root node, in the order of `data`."""
    scalar_starts: Mapping[int, int]
    """Scalar token end -> start: where a scalar's own text begins, after anchor and tag."""
    value_tokens: tuple[tuple[int, int], ...]
    """(start, end) of every ":" value indicator, in text order."""

    def scalar_start(self, node: Node) -> int | None:
        """Where the scalar `node`'s own text begins; None for an empty value (or not a scalar)."""
        return self.scalar_starts.get(node.end)

    def value_indicator_after(self, index: int) -> int | None:
        """The end of the first ":" value indicator at or after `index`; None when none is."""
        position = bisect.bisect_left(self.value_tokens, (index, index))
        if position == len(self.value_tokens):
            return None
        return self.value_tokens[position][1]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Loading without ruamel's warnings: an anchor defined again (`&a x`, later `&a y`) is valid
    YAML (an alias names the latest), not a problem to print or, with warnings as errors, raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReusedAnchorWarning)
        yield


def parse(text: str) -> Parsed:
    """`text` loaded and indexed; raises YAMLError when it is not valid YAML."""
    with quiet():
        data = tuple(YAML(typ="rt").load_all(text))
        found = list(YAML(typ="rt").scan(text))
        roots = tuple(_documents(iter(list(YAML(typ="rt").parse(text)))))
    return Parsed(
        data=data,
        roots=roots,
        scalar_starts={
            token.end_mark.index: token.start_mark.index
            for token in found
            if isinstance(token, tokens.ScalarToken)
        },
        value_tokens=tuple(
            (token.start_mark.index, token.end_mark.index)
            for token in found
            if isinstance(token, tokens.ValueToken)
        ),
    )


def _documents(stream: Iterator[events.Event]) -> Iterator[Node]:
    for event in stream:
        if isinstance(event, events.DocumentStartEvent):
            yield _build(next(stream), stream)


def _build(first: events.Event, stream: Iterator[events.Event]) -> Node:
    entries: list[tuple[Node, Node]] = []
    items: list[Node] = []
    end = first.end_mark.index
    if isinstance(first, events.MappingStartEvent):
        while not isinstance(item := next(stream), events.MappingEndEvent):
            key = _build(item, stream)
            entries.append((key, _build(next(stream), stream)))
        end = item.end_mark.index
    elif isinstance(first, events.SequenceStartEvent):
        while not isinstance(item := next(stream), events.SequenceEndEvent):
            items.append(_build(item, stream))
        end = item.end_mark.index
    return Node(first, first.start_mark.index, end, tuple(entries), tuple(items))


def scalar_span(
    parsed: Parsed,
    key: Node | None,
    node: Node,
    *,
    value: str,
    name: str,
    null: bool,
    holds: bool = False,
) -> Span | str | None:
    """The span that sets `node` to the string `value`; a problem (str) when it cannot be set.

    `key` is the node's key (None for a sequence item): an empty value is written after its ":",
    or after its anchor or tag (`runner: &image`).
    `name` names the node in problems. `null`: the scalar reads as a null ("~", "null"), not as
    a string whose style to keep. `holds`: the scalar already reads as `value`, so there is
    nothing to write (None); it is heeded only once the node is known to be a scalar that can be
    rewritten (an alias is replaced, a collection or a block scalar refused, whatever it holds).
    """
    event = node.event
    if isinstance(event, events.AliasEvent):
        return node.start, node.end, double_quoted(value)
    if isinstance(event, events.CollectionStartEvent):
        kind = "mapping" if isinstance(event, events.MappingStartEvent) else "sequence"
        return f"{name} is a {kind}, expected a string"
    if not isinstance(event, events.ScalarEvent):  # pragma: no cover - a parser invariant
        return f"{name} cannot be read"
    if event.style in ("|", ">"):
        return f"{name} is a block scalar ({event.style}); write it as a quoted string"
    if holds:
        return None
    start = parsed.scalar_start(node)
    if start is None and node.end > node.start:
        # An empty value with an anchor or a tag ("runner: &image"): write it after them.
        return node.end, node.end, " " + double_quoted(value)
    if start is None:  # an empty value ("runner:"): write it after the ":"
        colon = parsed.value_indicator_after(key.end) if key is not None else None
        if colon is None:
            return f"{name} has no value to replace"
        return colon, colon, " " + double_quoted(value)
    if null:
        return start, node.end, double_quoted(value)
    return start, node.end, render_scalar(value, event.style)


def apply(text: str, spans: Sequence[Span]) -> str:
    """`text` with each span replaced (the spans do not overlap)."""
    for start, end, replacement in sorted(spans, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def render_scalar(value: str, style: str | None) -> str:
    """`value` as a scalar in `style` (`'`, `"` or None for plain), double-quoted when it cannot
    be written in that style."""
    if style == "'" and value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    if style is None and plain_ok(value):
        return value
    return double_quoted(value)


def double_quoted(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar (YAML 1.2 is a superset of JSON).
    return json.dumps(value, ensure_ascii=False)


@functools.lru_cache(maxsize=512)
def plain_ok(value: str) -> bool:
    """Whether `value` reads back as the same string when written plain, in a block or a flow
    mapping, under YAML 1.2 and 1.1 (where `yes`, `1:20` or `0o7` are not strings)."""
    if not _PLAIN.fullmatch(value) or value.endswith(":"):
        return False
    for document in (f"k: {value}\n", f"{{k: {value}}}\n"):
        for version in ("", "%YAML 1.1\n---\n"):
            try:
                loaded = YAML(typ="safe", pure=True).load(version + document)
            except YAMLError:
                return False
            if not isinstance(loaded, dict) or type(loaded.get("k")) is not str:
                return False
            if loaded["k"] != value:
                return False
    return True
