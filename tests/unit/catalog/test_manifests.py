"""The edit engine in controller.catalog.manifests: set_field, its refusals, reference."""

from __future__ import annotations

import warnings

import pytest

from controller import errors
from controller.api import spec as model
from controller.catalog import manifests

IMAGE = "contoso.azurecr.io/ade/bicep:2.0.0"
D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "b" * 128


def edit(text: str, value: str = IMAGE, field: str = "runner") -> manifests.Edit:
    return manifests.set_field(text, field=field, value=value, path="env/environment.yaml")


def edited(text: str, value: str = IMAGE, field: str = "runner") -> str:
    result = edit(text, value, field)
    assert result.changed
    return result.text


def manifest(runner_line: str) -> str:
    return f"name: A\n{runner_line}\ntemplatePath: main.bicep\n"


# --- values and their quoting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('runner: "old:1"', f'runner: "{IMAGE}"'),
        ("runner: 'old:1'", f"runner: '{IMAGE}'"),
        ("runner: old:1", f"runner: {IMAGE}"),
        ("runner: Bicep  # shorthand", f"runner: {IMAGE}  # shorthand"),
        ('"runner": "old"', f'"runner": "{IMAGE}"'),
        ("runner: !!str old", f"runner: !!str {IMAGE}"),
        ("runner: &img 'old'", f"runner: &img '{IMAGE}'"),
        ("runner: old\n  continued", f"runner: {IMAGE}"),
        ('runner: # comment\n  "old"', f'runner: # comment\n  "{IMAGE}"'),
    ],
)
def test_value_is_replaced_in_its_style(old: str, new: str) -> None:
    assert edited(manifest(old)) == manifest(new)


@pytest.mark.parametrize("value", ["yes", "on", "1.0", "1:20", "0o17", "null", "a: b", "x #y"])
def test_plain_value_is_quoted_when_it_would_not_read_back_as_that_string(value: str) -> None:
    assert edited(manifest("runner: old"), value) == manifest(f'runner: "{value}"')


def test_quotes_inside_values_are_escaped_in_the_same_style() -> None:
    assert edited(manifest("runner: 'a'"), "it's") == manifest("runner: 'it''s'")
    assert edited(manifest('runner: "a"'), 'say "hi"') == manifest(r'runner: "say \"hi\""')


@pytest.mark.parametrize(
    "old", ["runner:", "runner: ~", "runner: null", "runner:    # later", 'runner: ""']
)
def test_empty_or_null_value_is_written_double_quoted(old: str) -> None:
    result = edited(manifest(old))
    assert f'runner: "{IMAGE}"' in result
    assert result.count("\n") == 3
    if "#" in old:
        assert result.endswith("# later\ntemplatePath: main.bicep\n")


def test_alias_value_is_replaced_and_the_anchor_kept() -> None:
    text = "name: &n A\ndescription: *n\nrunner: *n\ntemplatePath: main.bicep\n"
    result = edit(text)
    assert result.previous == ("A",)
    assert result.text == text.replace("runner: *n", f'runner: "{IMAGE}"')


@pytest.mark.parametrize("tag", ["", "!!str "])
def test_an_anchored_value_keeps_its_anchor_and_its_aliases_follow(tag: str) -> None:
    """Found by tests/unit/properties/test_catalog_manifests.py: as the module docstring says,
    but the check after the edit saw the alias change and refused the file ("cannot set runner
    without changing something else")."""
    text = (
        f"name: A\nrunner: &img {tag}old\ntemplatePath: main.bicep\n"
        "x-image: *img\nparameters: [{id: i, default: *img}]\n"
    )
    result = edit(text)
    assert result.text == text.replace(f"&img {tag}old", f"&img {tag}{IMAGE}")
    assert edit(result.text).changed is False


@pytest.mark.parametrize(
    "old",
    ["runner: &img", "runner: &img  # later", "runner: !!str"],
)
def test_an_empty_value_with_an_anchor_or_a_tag_is_written_after_them(old: str) -> None:
    """Found by tests/unit/properties/test_catalog_manifests.py: the value went after the ":",
    before the anchor (`runner: "image" &img`), and the check refused the broken YAML."""
    text = f"name: A\n{old}\ntemplatePath: main.bicep\n"
    props = old.split("runner: ", 1)[1].split(" ", maxsplit=1)[0]
    assert f'runner: {props} "{IMAGE}"' in edit(text).text
    flow = "{name: A, runner: &img , templatePath: main.bicep}\n"
    assert edit(flow).text == flow.replace("&img ", f'&img "{IMAGE}" ')


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_entry_appended_to_a_flow_mapping_leaves_the_last_comment_on_its_line(
    newline: str,
) -> None:
    """Found by tests/unit/properties/test_catalog_manifests.py (long profile): the comment after
    the last entry moved to the line of the new one."""
    text = newline.join(["{", "  name: A,  # a", "  templatePath: main.bicep  # t", "}", ""])
    result = manifests.set_field(text, field="image", value=IMAGE, path="e.yaml")
    assert result.text == newline.join(
        ["{", "  name: A,  # a", "  templatePath: main.bicep,  # t", f'  image: "{IMAGE}"', "}", ""]
    )


def test_aliases_of_the_anchor_an_alias_field_names_stay() -> None:
    text = "name: &n A\nrunner: *n\ntemplatePath: main.bicep\nx-name: *n\n"
    assert edit(text).text == text.replace("runner: *n", f'runner: "{IMAGE}"')


def test_field_only_merged_in_is_inserted_not_edited_in_the_anchor() -> None:
    text = "base: &b {name: A, runner: old}\n<<: *b\ntemplatePath: main.bicep\n"
    result = edit(text)
    assert result.previous == ("old",)
    assert result.text == text.replace("<<: *b\n", f'<<: *b\nrunner: "{IMAGE}"\n')


def test_unchanged_value_returns_the_same_text() -> None:
    text = manifest(f'runner: "{IMAGE}"  # pinned')
    result = edit(text)
    assert result == manifests.Edit(changed=False, text=text, previous=(IMAGE,))
    assert result.text is text


def test_block_scalar_with_the_same_value_is_left_alone() -> None:
    text = manifest(f"runner: |-\n  {IMAGE}")
    assert not edit(text).changed


def test_previous_values_per_document() -> None:
    text = "name: A\ntemplatePath: a\n---\nname: B\nrunner: old\ntemplatePath: b\n"
    assert edit(text).previous == (None, "old")


# --- inserting a missing field -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (
            "name: A\nversion: 1.0.0\ntemplatePath: t\n",
            'name: A\nversion: 1.0.0\nrunner: "{}"\ntemplatePath: t\n',
        ),
        (
            "name: A\ndescription: d # c\nsummary: s\ntemplatePath: t\nparameters: []\n",
            'name: A\ndescription: d # c\nsummary: s\nrunner: "{}"\n'
            "templatePath: t\nparameters: []\n",
        ),
        (
            "templatePath: t\nname: A\n",
            'runner: "{}"\ntemplatePath: t\nname: A\n',
        ),
        (
            "name: A\nparameters: []\ntemplatePath: t\n",
            'name: A\nrunner: "{}"\nparameters: []\ntemplatePath: t\n',
        ),
        (
            "  name: A\n  templatePath: t\n",
            '  name: A\n  runner: "{}"\n  templatePath: t\n',
        ),
        (
            "--- # document\nname: A\ntemplatePath: t\n...\n",
            '--- # document\nname: A\nrunner: "{}"\ntemplatePath: t\n...\n',
        ),
        (
            "? name\n: A\n? templatePath\n: t\n",
            '? name\n: A\nrunner: "{}"\n? templatePath\n: t\n',
        ),
        (
            "name: A\ndescription: >\n  folded\n\n\ntemplatePath: t\n",
            'name: A\ndescription: >\n  folded\n\n\nrunner: "{}"\ntemplatePath: t\n',
        ),
        (
            "name: A\r\ntemplatePath: t",
            'name: A\r\nrunner: "{}"\r\ntemplatePath: t',
        ),
        (
            "{templatePath: t, name: A}\n",
            '{{runner: "{}", templatePath: t, name: A}}\n',
        ),
        (
            "{name: A,\n templatePath: t}\n",
            '{{name: A,\n runner: "{}",\n templatePath: t}}\n',
        ),
        (
            "{\n  name: A, version: '1',\n  templatePath: t\n}\n",
            "{{\n  name: A, version: '1',\n  runner: \"{}\",\n  templatePath: t\n}}\n",
        ),
    ],
)
def test_missing_field_is_inserted_in_ade_order(original: str, expected: str) -> None:
    assert edited(original) == expected.format(IMAGE)


def test_unknown_field_is_appended_after_the_last_entry() -> None:
    text = "name: A\ntemplatePath: t\nparameters:\n- id: a\n  type: string\n# end\n"
    assert edited(text, field="image") == f'{text}image: "{IMAGE}"\n'
    assert edited("{name: A, templatePath: t}", field="image") == (
        f'{{name: A, templatePath: t, image: "{IMAGE}"}}'
    )


def test_a_field_name_that_needs_quoting_is_quoted() -> None:
    assert f'"my field": "{IMAGE}"' in edited(manifest("x: 1"), field="my field")


# --- several documents ---------------------------------------------------------------------------


def test_every_definition_of_a_multi_document_file_is_edited() -> None:
    text = "---\nname: A\nrunner: old\ntemplatePath: a\n---\n---\nname: B\ntemplatePath: b\n"
    assert edited(text) == (
        f"---\nname: A\nrunner: {IMAGE}\ntemplatePath: a\n---\n---\n"
        f'name: B\nrunner: "{IMAGE}"\ntemplatePath: b\n'
    )


def test_a_document_that_is_no_definition_makes_the_file_invalid() -> None:
    text = "name: A\ntemplatePath: a\n---\nkind: Other\n"
    with pytest.raises(manifests.ManifestInvalid, match=r"\(document 2\): no name"):
        edit(text)


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: [\n", r"not valid YAML: .*\(line 2, column 1\)"),
        ("name: A\nname: B\ntemplatePath: t\n", r'not valid YAML: found duplicate key "name"'),
        ("name: A\n\tx: 1\n", r"not valid YAML"),
        ("- name: A\n", r"not an environment definition: a sequence, not a mapping"),
        ("just text\n", r"not an environment definition: a string"),
        ("name: A\n", r"not an environment definition: no templatePath"),
        ("name:\ntemplatePath: t\n", r"not an environment definition: no name"),
        ("", r"holds no environment definition"),
        ("# only a comment\n", r"holds no environment definition"),
        (manifest("runner: |\n  x"), r"runner is a block scalar \(\|\)"),
        (manifest("runner: {image: x}"), r"runner is a mapping, expected a string"),
        (manifest("runner: [x]"), r"runner is a sequence, expected a string"),
    ],
)
def test_invalid_manifest_is_refused_naming_the_file(text: str, problem: str) -> None:
    with pytest.raises(manifests.ManifestInvalid, match=problem) as caught:
        edit(text)
    error = caught.value
    assert isinstance(error, errors.StalledError)
    assert error.reason == "ManifestInvalid"
    assert error.path == "env/environment.yaml"
    assert error.message == f"env/environment.yaml: {error.problem}"
    assert str(error) == error.message


def test_an_edit_that_would_change_anything_else_is_refused() -> None:
    # Appending after a block scalar that ends the file without a line break would add one to it.
    text = "name: A\ntemplatePath: t\ndescription: |\n  text"
    with pytest.raises(manifests.ManifestInvalid, match="cannot set image without changing"):
        edit(text, field="image")


def test_verification_catches_a_wrong_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str, spans: object) -> str:
        return text.replace("main.bicep", "other.bicep").replace("old", IMAGE)

    monkeypatch.setattr(manifests, "_apply", broken)
    with pytest.raises(manifests.ManifestInvalid, match="without changing something else"):
        edit(manifest("runner: old"))


def test_other_required_keys_can_be_asked_for() -> None:
    text = "image: old\nkind: Runner\n"
    result = manifests.set_field(
        text, field="image", value=IMAGE, path="p", required_keys=("kind",), order=()
    )
    assert result.text == f"image: {IMAGE}\nkind: Runner\n"


@pytest.mark.parametrize("value", ["", " x", "x ", "a\nb", "a\rb"])
def test_value_must_be_one_line(value: str) -> None:
    with pytest.raises(ValueError, match="one-line"):
        edit(manifest("runner: old"), value)


def test_decode_and_encode() -> None:
    data = "\ufeffname: é\r\n".encode()
    text = manifests.decode(data, path="p")
    assert text.startswith("\ufeff")
    assert manifests.encode(text) == data
    with pytest.raises(manifests.ManifestInvalid, match=r"^p: not UTF-8 text \(byte 6\)$"):
        manifests.decode(b"name: \xff\n", path="p")


# --- reference -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "digest", "pin", "keep_tag", "expected"),
    [
        ("r.io/a/b:1", None, model.PinMode.TAG, False, "r.io/a/b:1"),
        ("r.io/a/b:1", D256, model.PinMode.TAG, False, "r.io/a/b:1"),
        (f"r.io/a/b:1@{D256}", None, model.PinMode.TAG, False, "r.io/a/b:1"),
        ("r.io/a/b:1", D256, model.PinMode.DIGEST, False, f"r.io/a/b@{D256}"),
        ("r.io/a/b:1", D256, model.PinMode.DIGEST, True, f"r.io/a/b:1@{D256}"),
        (f"r.io/a/b:1@{D512}", None, model.PinMode.DIGEST, False, f"r.io/a/b@{D512}"),
        ("localhost:5000/a:1", D256, model.PinMode.DIGEST, True, f"localhost:5000/a:1@{D256}"),
        ("localhost:5000/a", D256, model.PinMode.DIGEST, True, f"localhost:5000/a@{D256}"),
        ("alpine:3", None, model.PinMode.TAG, False, "alpine:3"),
    ],
)
def test_reference(
    image: str, digest: str | None, pin: model.PinMode, keep_tag: bool, expected: str
) -> None:
    assert manifests.reference(image, digest, pin, keep_tag=keep_tag) == expected


@pytest.mark.parametrize(
    ("image", "digest", "pin", "problem"),
    [
        ("localhost:5000/a", None, model.PinMode.TAG, "has no tag"),
        ("r.io/a/b:1", None, model.PinMode.DIGEST, "needs a sha256 or sha512 digest"),
        ("r.io/a/b:1", "sha256:abc", model.PinMode.DIGEST, "needs a sha256 or sha512 digest"),
        ("r.io/a/b:1@md5:00", None, model.PinMode.TAG, "is not a sha256 or sha512 digest"),
        (f"r.io/a/b:1@{D256}", D512, model.PinMode.DIGEST, "does not carry the digest"),
        ("r.io/a/b:", None, model.PinMode.TAG, "is not an image reference"),
        ("r.io/a b:1", None, model.PinMode.TAG, "is not an image reference"),
        ("", None, model.PinMode.TAG, "is not an image reference"),
    ],
)
def test_reference_refuses(
    image: str, digest: str | None, pin: model.PinMode, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        manifests.reference(image, digest, pin)


def test_an_anchor_defined_again_is_valid_yaml_not_a_warning() -> None:
    """Found by tests/unit/properties/test_catalog_manifests.py (long profile): ruamel warned
    (ReusedAnchorWarning), an exception where warnings are errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = "name: &a A\ntemplatePath: &a main.bicep\nrunner: *a\n"
        assert edit(text).text == text.replace("runner: *a", f'runner: "{IMAGE}"')
