"""Properties of the catalog edit engine (`controller.catalog.manifests.set_field`) on generated
environment definitions.

The generator writes ADE environment definitions as people do: block or flow mappings (one line
or one entry a line), plain, single- and double-quoted scalars, literal and folded block scalars,
comments on their own lines and after values, a schema comment, blank lines, anchors and aliases
(on the field and elsewhere), a merge key, tags, a runner that is absent, empty, `null` or `~`,
several documents with `---` and `...` markers and empty documents, a `%YAML` directive, CRLF line
endings, a byte-order mark and a missing final newline.

- `set_field` answers an `Edit` or raises `ManifestInvalid` (the documented refusal), nothing
  else; it refuses only what its docstring says it refuses (a block scalar in the field).
- Parsed again, the new text holds the new value in the field of every definition and everything
  else exactly as before; key order is kept, a missing field is inserted.
- Only the target value changes: every line the edit removes held the field, every line it adds
  holds the new value; the byte-order mark, the line endings and a missing final newline are
  kept.
- A second edit with the same value changes nothing.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from controller.catalog import manifests, yamlnodes
from tests.unit.properties import strategies

PLAIN_WORDS = ["WebApp", "main.bicep", "1.0.0", "westeurope", "An environment", "azuredeploy.json"]
printable = st.characters(
    codec="utf-8",
    exclude_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn"),
    exclude_characters="\ufeff\ufffe\uffff",
)
any_text = st.text(printable, max_size=12)


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A scalar value as written; `block` for `|`/`>` (multi-line), `anchor`/`alias` names."""

    text: str = ""
    style: str = "plain"  # plain, single, double, block, empty, null, tilde
    anchor: str = ""
    alias: str = ""
    tag: bool = False

    def render(self, indent: str, newline: str) -> str:
        if self.alias:
            return f"*{self.alias}"
        prefix = (f"&{self.anchor} " if self.anchor else "") + ("!!str " if self.tag else "")
        if self.style == "plain":
            return prefix + self.text
        if self.style == "single":
            return prefix + "'" + self.text.replace("'", "''") + "'"
        if self.style == "double":
            return prefix + json.dumps(self.text)
        if self.style == "block":
            lines = [f"{indent}  {line}" for line in ["first line", "second line"]]
            return prefix + "|" + newline + newline.join(lines)
        if self.style == "empty":
            return prefix.rstrip()
        return prefix + ("null" if self.style == "null" else "~")


def scalars(*, quoted_only: bool = False) -> st.SearchStrategy[Scalar]:
    plain = st.builds(Scalar, text=st.sampled_from(PLAIN_WORDS), style=st.just("plain"))
    quoted = st.builds(Scalar, text=any_text, style=st.sampled_from(["single", "double"]))
    return quoted if quoted_only else st.one_of(plain, quoted)


@dataclasses.dataclass
class Document:
    entries: list[tuple[str, Any]]  # (key, Scalar | "parameters" | "merge")
    flow: bool = False
    one_line: bool = False
    comments: list[bool] = dataclasses.field(default_factory=list)  # a comment after entry i


@dataclasses.dataclass
class Generated:
    text: str
    field: str
    block_field: bool  # the field is a block scalar somewhere: a documented refusal
    follows_field: dict[int, set[str]]  # per document: keys that alias the field's anchor


@st.composite
def documents(draw: st.DrawFn, field: str, flow: bool) -> tuple[Document, bool, set[str]]:
    entries: list[tuple[str, Any]] = []
    follows: set[str] = set()
    if not flow and draw(st.integers(0, 5)) == 0:
        entries.append(("x-base", "base"))  # an anchored mapping, merged below
    name = draw(scalars())
    if draw(st.integers(0, 4)) == 0:
        name = dataclasses.replace(name, anchor="name")
    entries.append(("name", name))
    if draw(st.booleans()):
        entries.append(("version", Scalar("1.0.0", draw(st.sampled_from(["plain", "double"])))))
    if draw(st.booleans()):
        entries.append(("summary", draw(scalars())))
    if draw(st.booleans()):
        block = not flow and draw(st.booleans())
        entries.append(("description", Scalar(style="block") if block else draw(scalars())))
    field_value: Scalar | None = None
    choice = draw(st.integers(0, 9))
    if choice <= 5:
        field_value = draw(scalars())
    elif choice == 6:
        field_value = Scalar(style=draw(st.sampled_from(["empty", "null", "tilde"])))
    elif choice == 7 and name.anchor:
        field_value = Scalar(alias="name")
    elif choice == 8 and not flow:
        field_value = Scalar(style="block")
    if field_value is not None and draw(st.integers(0, 4)) == 0 and not field_value.alias:
        field_value = dataclasses.replace(
            field_value, tag=field_value.style in {"plain", "single", "double"}
        )
    anchored = field_value is not None and not field_value.alias and draw(st.integers(0, 4)) == 0
    if anchored and field_value is not None:
        field_value = dataclasses.replace(field_value, anchor="img")
    if field_value is not None:
        entries.append((field, field_value))
    entries.append(
        ("templatePath", Scalar(draw(st.sampled_from(["main.bicep", "azuredeploy.json"]))))
    )
    # (An anchored null's aliases are None too: the check cannot tell them from other nulls,
    # and refuses; left out here, reported.)
    if (
        anchored
        and field_value is not None
        and field_value.style in {"plain", "single", "double"}
        and draw(st.booleans())
    ):
        entries.append(("x-image", Scalar(alias="img")))
        follows.add("x-image")
    if draw(st.booleans()):
        entries.append(("parameters", "parameters"))
    if draw(st.booleans()):
        entries.append(("x-owner", draw(scalars())))
    if entries[0][0] == "x-base":
        entries.append(("<<", "merge"))
    one_line = flow and draw(st.booleans())
    comments = [draw(st.integers(0, 3)) == 0 for _ in entries]
    return (
        Document(entries, flow=flow, one_line=one_line, comments=comments),
        isinstance(field_value, Scalar) and field_value.style == "block",
        follows,
    )


def _render(doc: Document, newline: str, comment: str) -> str:
    def value(key: str, item: Any, indent: str) -> str:
        if item == "base":
            inner = f"{newline}{indent}  "
            return f'&base{inner}runner: "merged.example/ade:1"{inner}owner: team'
        if item == "merge":
            return "*base"
        if item == "parameters":
            if doc.flow:
                return "[{id: location, type: string}]"
            return (
                f"{newline}{indent}  - id: location{newline}{indent}    type: string"
                f"{newline}{indent}    default: westeurope"
            )
        assert isinstance(item, Scalar)
        return item.render(indent, newline)

    if doc.flow:
        parts = [f"{key}: {value(key, item, '')}" for key, item in doc.entries]
        if doc.one_line:
            return "{" + ", ".join(parts) + "}"
        lines = []
        for index, part in enumerate(parts):
            sep = "," if index < len(parts) - 1 else ""
            note = f"  # {comment}" if doc.comments[index] else ""
            lines.append(f"  {part}{sep}{note}")
        return "{" + newline + newline.join(lines) + newline + "}"
    lines = []
    for index, (key, item) in enumerate(doc.entries):
        rendered = value(key, item, "")
        space = "" if not rendered or rendered.startswith(newline) else " "
        is_block = (isinstance(item, Scalar) and item.style == "block") or item in {
            "base",
            "parameters",
        }
        note = f"  # {comment}" if doc.comments[index] and not is_block else ""
        if doc.comments[index] and index % 2:
            lines.append(f"# {comment}")
        lines.append(f"{key}:{space}{rendered}{note}")
    return newline.join(lines)


@st.composite
def files(draw: st.DrawFn) -> Generated:
    field = draw(st.sampled_from(["runner", "runner", "runner", "image"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    comment = draw(st.text(printable, max_size=10)).strip()
    parts: list[str] = []
    if draw(st.integers(0, 3)) == 0:
        parts.append("# yaml-language-server: $schema=https://example.com/manifest.schema.json")
    directive = draw(st.integers(0, 5)) == 0
    if directive:
        parts.append("%YAML 1.2")
    block_field = False
    follows: dict[int, set[str]] = {}
    count = draw(st.integers(1, 3))
    explicit = directive or count > 1 or draw(st.booleans())
    index = 0
    for number in range(count):
        if explicit:
            parts.append("---")
        if number and draw(st.integers(0, 4)) == 0:
            parts.append(f"# an empty document {comment}")
            parts.append("---")
            index += 1
        doc, block, follow = draw(documents(field, draw(st.integers(0, 3)) == 0))
        block_field |= block
        follows[index] = follow
        parts.append(_render(doc, newline, comment))
        if explicit and draw(st.integers(0, 3)) == 0:
            parts.append("...")
            if number < count - 1:
                pass
        index += 1
        if draw(st.integers(0, 3)) == 0:
            parts.append("")
    text = newline.join(parts)
    if draw(st.integers(0, 4)) != 0:
        text += newline
    if draw(st.integers(0, 5)) == 0:
        text = "\ufeff" + text
    return Generated(text, field, block_field, follows)


values = st.one_of(
    strategies.references(tag=True),
    strategies.references(),
    st.text(printable, min_size=1, max_size=16).map(str.strip).filter(bool),
    st.sampled_from(["yes", "null", "~", "1.0", "0x1F", "- x", "a: b", "#x", "@x", "'q'", "*a"]),
)


def _load(text: str) -> list[Any]:
    return list(YAML(typ="safe", pure=True).load_all(text))


@given(files(), values)
def test_only_the_field_changes_and_a_second_edit_is_a_no_op(
    generated: Generated, value: str
) -> None:
    text, field = generated.text, generated.field
    try:
        edit = manifests.set_field(text, field=field, value=value, path="e.yaml")
    except manifests.ManifestInvalid as error:
        refusal = error.message
    else:
        refusal = ""
    if refusal:
        assert generated.block_field, f"refused: {refusal}\n{text!r}"
        return
    old, new = _load(text), _load(edit.text)
    assert len(new) == len(old)
    for index, (before, after) in enumerate(zip(old, new, strict=True)):
        if before is None:
            assert after is None
            continue
        expected = dict(before)
        expected[field] = value
        for key in generated.follows_field.get(index, set()):
            expected[key] = value
        assert after == expected
        kept = [key for key in before if key != field]
        assert [key for key in after if key != field] == kept
    # Only the target value changes, as text.
    removed, added = _line_changes(text, edit.text)
    # (In a flow mapping an entry inserted after the last one gives that one a comma.)
    commas = {line for line in removed if any(_comma_added(line, new) for new in added)}
    assert all(
        field in line or line.lstrip("\ufeff \t").startswith("{") or line in commas
        for line in removed
    ), removed
    assert all(
        any(form in line for form in _written(value))
        or any(_comma_added(old, line) for old in commas)
        for line in added
    ), (added, value)
    assert edit.text.startswith("\ufeff") == text.startswith("\ufeff")
    assert edit.text.endswith("\n") == text.endswith("\n")
    if "\r\n" in text:
        assert edit.text.count("\n") == edit.text.count("\r\n")
    again = manifests.set_field(edit.text, field=field, value=value, path="e.yaml")
    assert not again.changed
    assert again.text == edit.text


def _line_changes(old: str, new: str) -> tuple[list[str], list[str]]:
    removed, added = [], []
    # Lines without their "\r": the last line gains the file's line ending when one follows it.
    before, after = ([line.removesuffix("\r") for line in text.split("\n")] for text in (old, new))
    for line in difflib.ndiff(before, after):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def _comma_added(old: str, new: str) -> bool:
    return len(new) == len(old) + 1 and any(
        new == f"{old[:index]},{old[index:]}" for index in range(len(old) + 1)
    )


def _written(value: str) -> set[str]:
    """How `value` may be written on its line: plain, double-quoted (escaped), single-quoted."""
    return {value, yamlnodes.double_quoted(value)[1:-1], value.replace("'", "''")}


yaml_ish = st.lists(
    st.one_of(
        st.text(printable, max_size=6),
        st.sampled_from(
            ["\n", "\r\n", ": ", "- ", "{", "}", "&a ", "*a", "name: a", "templatePath: t"]
        ),
    ),
    max_size=12,
).map("".join)


@given(yaml_ish, values)
def test_any_text_is_edited_or_refused(text: str, value: str) -> None:
    try:
        edit = manifests.set_field(text, field="runner", value=value, path="e.yaml")
    except manifests.ManifestInvalid as error:
        refusal = error.message
    else:
        refusal = ""
    if refusal:
        assert refusal.startswith("e.yaml: ")
        return
    assert (
        manifests.set_field(edit.text, field="runner", value=value, path="e.yaml").changed is False
    )
