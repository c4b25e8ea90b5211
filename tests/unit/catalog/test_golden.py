"""Golden tests of the catalog edit engine: `testdata/<case>/{original,expected}` byte for byte.

Each case runs `select` on its `original` folder and `formats.write` (ADE environment definitions,
or any YAML with a field path: Helm values, Kustomize, Deployments) on every selected file; every
file of the folder, edited or not, must then equal its copy in `expected`. `case.json` (optional)
sets the globs and the image options; the defaults are below.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from controller.api import spec as model
from controller.catalog import formats, manifests, select

TESTDATA = pathlib.Path(__file__).parent / "testdata"
DEFAULTS: dict[str, Any] = {
    "manifests": ["**/environment.yaml"],
    "image": "contoso.azurecr.io/ade/bicep:2.0.0",
    "digest": None,
    "pin": "Tag",
    "keep_tag": False,
    "field": "runner",
    "format": "EnvironmentDefinition",
    "repository_field": "",
}
CASES = sorted(path.name for path in TESTDATA.iterdir() if path.is_dir())


def options(case: pathlib.Path) -> dict[str, Any]:
    found = case / "case.json"
    extra = json.loads(found.read_text()) if found.exists() else {}
    unknown = set(extra) - set(DEFAULTS)
    assert not unknown, f"{found}: unknown options {sorted(unknown)}"
    return {**DEFAULTS, **extra}


def target(settings: dict[str, Any]) -> formats.Target:
    return formats.Target(
        model.CatalogFormat(settings["format"]), settings["field"], settings["repository_field"]
    )


def tree(folder: pathlib.Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def run_case(case: pathlib.Path) -> dict[str, bytes]:
    """Every file of `original` after the engine ran on it (in memory)."""
    settings = options(case)
    original = case / "original"
    value = manifests.reference(
        settings["image"],
        settings["digest"],
        model.PinMode(settings["pin"]),
        keep_tag=settings["keep_tag"],
    )
    selection = select.select(original, settings["manifests"])
    assert selection.unmatched == ()
    assert selection.refused == ()
    assert selection.files, "the case selects no file"
    result = tree(original)
    for path in selection.files:
        text = manifests.decode(result[path], path=path)
        edit, _ = formats.write(text, target(settings), value, path=path)
        assert edit.changed == (edit.text != text)
        result[path] = manifests.encode(edit.text)
    return result


def test_cases_are_present() -> None:
    assert len(CASES) >= 12
    assert (TESTDATA / ".gitattributes").read_text() == "* -text\n"


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    case = TESTDATA / name
    expected = tree(case / "expected")
    result = run_case(case)
    assert sorted(result) == sorted(expected)
    for path, data in expected.items():
        assert result[path] == data, f"{name}/{path}:\n{result[path]!r}\n!=\n{data!r}"


@pytest.mark.parametrize("name", CASES)
def test_golden_is_idempotent(name: str) -> None:
    """Running the engine on `expected` changes nothing."""
    case = TESTDATA / name
    settings = options(case)
    value = manifests.reference(
        settings["image"],
        settings["digest"],
        model.PinMode(settings["pin"]),
        keep_tag=settings["keep_tag"],
    )
    selection = select.select(case / "expected", settings["manifests"])
    for path in selection.files:
        text = manifests.decode((selection.root / path).read_bytes(), path=path)
        edit, _ = formats.write(text, target(settings), value, path=path)
        assert not edit.changed
        assert edit.text is text


def test_crlf_and_bom_bytes_are_real() -> None:
    """Guards the testdata itself: an editor or git must not have normalized it."""
    crlf = (TESTDATA / "crlf/original/Environments/Storage/environment.yaml").read_bytes()
    assert crlf.count(b"\r\n") == crlf.count(b"\n") == 3
    bom = (TESTDATA / "bom_no_final_newline/original/Environments/Vm/environment.yaml").read_bytes()
    assert bom.startswith(b"\xef\xbb\xbf")
    assert not bom.endswith(b"\n")
