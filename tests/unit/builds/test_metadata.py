"""The pushed digest from BuildKit's metadata file (controller.builds.backend)."""

from __future__ import annotations

import json

import pytest

from controller.builds import backend

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_digest_from_valid_metadata() -> None:
    text = json.dumps(
        {
            "buildx.build.ref": "builder/builder0/xyz",
            "containerimage.config.digest": "sha256:" + "1" * 64,
            "containerimage.digest": DIGEST,
            "image.name": "contoso.azurecr.io/ade/runner:tag",
        },
        indent=2,
    )
    assert backend.digest_from_metadata(text) == DIGEST


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"containerimage.config.digest": DIGEST},
        {"containerimage.digest": None},
        {"containerimage.digest": 7},
        {"containerimage.digest": [DIGEST]},
    ],
    ids=["empty", "only-config-digest", "null", "number", "list"],
)
def test_missing_digest(data: dict[str, object]) -> None:
    assert backend.digest_from_metadata(json.dumps(data)) is None


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "sha256:",
        "sha256:abc",
        DIGEST[:-1],
        DIGEST + "0",
        "sha512:" + "0" * 64,
        "0123456789abcdef" * 4,
        " " + DIGEST[:-1],
    ],
)
def test_malformed_digest(digest: str) -> None:
    assert backend.digest_from_metadata(json.dumps({"containerimage.digest": digest})) is None


@pytest.mark.parametrize(
    "text",
    ["", "not json", "sha256:" + "0" * 64, "{", "{'containerimage.digest': 'x'}"],
)
def test_not_json(text: str) -> None:
    assert backend.digest_from_metadata(text) is None


@pytest.mark.parametrize(
    "text", [json.dumps([{"containerimage.digest": DIGEST}]), "null", '"sha256:x"', "42"]
)
def test_json_that_is_not_an_object(text: str) -> None:
    assert backend.digest_from_metadata(text) is None


@pytest.mark.parametrize("encoded", ["z" * 64, "A" * 64, "0" * 62 + "\n\n"])
def test_non_hex_digest_is_refused(encoded: str) -> None:
    text = json.dumps({"containerimage.digest": f"sha256:{encoded}"})
    assert backend.digest_from_metadata(text) is None
