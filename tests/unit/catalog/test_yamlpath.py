"""`controller.catalog.yamlpath`: field paths and the surgical edit of any YAML (pure)."""

from __future__ import annotations

import pytest

from controller.catalog import yamlpath
from controller.catalog.manifests import ManifestInvalid
from controller.catalog.yamlpath import Index, Key, Match

NEW = "acr.example.test/ade/app:2"


def _set(text: str, field: str, value: str = NEW) -> tuple[str, tuple[tuple[str | None, ...], ...]]:
    edit, found = yamlpath.set_paths(text, [(field, value)], path="f.yaml")
    assert edit.changed == (edit.text != text)
    return edit.text, found


def test_parse_path() -> None:
    assert yamlpath.parse_path("spec.containers[name=app].image") == (
        Key("spec"), Key("containers"), Match("name", "app"), Key("image"),
    )  # fmt: skip
    assert yamlpath.parse_path("args[1]") == (Key("args"), Index(1))
    assert yamlpath.parse_path("a[0][name=x].b") == (
        Key("a"),
        Index(0),
        Match("name", "x"),
        Key("b"),
    )


@pytest.mark.parametrize("bad", ["", " image", "image.", "a..b", "a[]", "a[x]", "a[=x]", "a[k=]"])
def test_malformed_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not|is neither"):
        yamlpath.parse_path(bad)


def test_quoting_and_comments_are_kept() -> None:
    text = "a:\n  image: 'old.example/app:1' # keep\n  other: x\n"
    assert _set(text, "a.image") == (
        f"a:\n  image: '{NEW}' # keep\n  other: x\n",
        (("old.example/app:1",),),
    )


def test_a_number_like_tag_is_quoted() -> None:
    text, found = _set("image:\n  tag: 1.0\n", "image.tag", "2.0")
    assert text == 'image:\n  tag: "2.0"\n'
    assert found == (("1.0",),)


def test_an_empty_or_null_value_is_filled() -> None:
    assert _set("tag:\nx: 1\n", "tag", "v2")[0] == 'tag: "v2"\nx: 1\n'
    assert _set("tag: ~\n", "tag", "v2")[0] == 'tag: "v2"\n'
    assert _set("tag:\nx: 1\n", "tag", "v2")[1] == ((None,),)


def test_index_selector_and_flow_style() -> None:
    text = "args: [old, keep]\n"
    assert _set(text, "args[0]", "new")[0] == "args: [new, keep]\n"


def test_unchanged_value_is_no_change() -> None:
    text = f"image: {NEW}\n"
    edit, found = yamlpath.set_paths(text, [("image", NEW)], path="f.yaml")
    assert not edit.changed
    assert edit.text is text
    assert found == ((NEW,),)


def test_documents_without_the_path_are_left_alone() -> None:
    text = "kind: Service\n---\nkind: Deployment\nimage: old\n"
    assert _set(text, "image")[0] == f"kind: Service\n---\nkind: Deployment\nimage: {NEW}\n"


def test_split_fields_are_set_together_or_refused() -> None:
    text = "image:\n  repository: old.example/app\n  tag: '1'\n"
    edit, found = yamlpath.set_paths(
        text, [("image.repository", "acr.example.test/app"), ("image.tag", "2")], path="v.yaml"
    )
    assert edit.text == "image:\n  repository: acr.example.test/app\n  tag: '2'\n"
    assert found == (("old.example/app", "1"),)
    with pytest.raises(ManifestInvalid, match=r"v\.yaml: has no image\.digest"):
        yamlpath.set_paths(
            text, [("image.repository", "a/b"), ("image.digest", "x")], path="v.yaml"
        )


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("image:\n  name: x\n", "image", "image is a mapping, expected a string"),
        ("image: |\n  old\n", "image", "block scalar"),
        ("base: &b {image: old}\napp:\n  <<: *b\n", "app.image", "merge key"),
        ("c:\n- {name: a, image: x}\n- {name: a, image: y}\n", "c[name=a].image", "names 2 items"),
        ("other: 1\n", "image", "no document has image"),
        ("image: [unclosed\n", "image", "not valid YAML"),
    ],
)
def test_what_cannot_be_edited_is_refused(text: str, field: str, problem: str) -> None:
    with pytest.raises(ManifestInvalid, match=problem):
        yamlpath.set_paths(text, [(field, NEW)], path="f.yaml")


def test_an_alias_is_replaced_and_the_anchor_kept() -> None:
    text = "default: &img old.example/app:1\napp:\n  image: *img\n"
    assert _set(text, "app.image")[0] == (
        f'default: &img old.example/app:1\napp:\n  image: "{NEW}"\n'
    )


def test_a_byte_order_mark_and_crlf_are_kept() -> None:
    text = "\ufeff# values\r\nimage: old.example/app:1 # pinned\r\nx: 1"
    assert _set(text, "image")[0] == f"\ufeff# values\r\nimage: {NEW} # pinned\r\nx: 1"
