"""Properties of image references: `controller.registry.reference` and the catalog's own
reading of them (`manifests.reference`, `formats.split_reference` / `join_reference`).

- A reference built from valid parts parses to exactly those parts (Docker Hub rules included),
  and its text parses back to the same reference; so does its familiar (short) form.
- Any text either parses or raises `InvalidReference`; what parses prints as text that parses to
  the same reference.
- The catalog writes what it was given: the tag form keeps registry/repository:tag as written,
  the digest form `repository@digest`; splitting and joining give the reference back.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from controller.api import spec as model
from controller.catalog import formats, manifests
from controller.registry import reference
from tests.unit.properties import strategies


def _is_registry(first: str) -> bool:
    return any(c in first for c in ".:") or first == "localhost" or first != first.lower()


@given(st.none() | strategies.hosts, strategies.repositories, st.none() | strategies.tags,
       st.none() | strategies.digests)  # fmt: skip
def test_valid_parts_parse_to_those_parts(
    host: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    text = repository if host is None else f"{host}/{repository}"
    text += f":{tag}" if tag is not None else ""
    text += f"@{digest}" if digest is not None else ""
    first, slash, rest = repository.partition("/")
    if host is not None:
        registry, path = reference.normalize_registry(host), repository
    elif slash and _is_registry(first):
        registry, path = first, rest
        try:
            reference.validate_registry(first)
        except reference.InvalidReference:
            return  # `a.b_c/x`: Docker too reads a host there, and refuses it
    else:
        registry, path = reference.DOCKER_HUB, repository
    if registry == reference.DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if len(f"{registry}/{path}") > reference.MAX_NAME_LENGTH:
        try:
            reference.parse(text)
        except reference.InvalidReference:
            return
        raise AssertionError(f"{text!r}: a name over 255 characters was accepted")
    parsed = reference.parse(text)
    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == (
        registry,
        path,
        tag,
        digest,
    )
    assert reference.parse(str(parsed)) == parsed
    assert reference.parse(reference.format_familiar(parsed)) == parsed
    assert parsed.identifier == (digest or tag or "latest")


reference_alphabet = st.text(
    strategies.LOWER[:6] + "AZ" + strategies.DIGITS[:3] + "./:@-_[]", max_size=30
)


@given(st.one_of(reference_alphabet, st.text(max_size=30), strategies.references()))
def test_any_text_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        parsed = reference.parse(text)
    except reference.InvalidReference as error:
        message = str(error)
    else:
        message = ""
    if message:
        assert message.startswith(repr(text)), message  # the whole text, then the part refused
        return
    again = reference.parse(str(parsed))
    assert again == parsed
    assert str(again) == str(parsed)


@given(strategies.references(tag=True, digest=False))
def test_the_catalog_writes_a_tag_reference_as_given(text: str) -> None:
    assert manifests.reference(text, None, model.PinMode.TAG) == text
    repository, tag = formats.split_reference(text)
    assert formats.join_reference(repository, tag) == text


@given(strategies.references(digest=False), strategies.digests, st.booleans())
def test_the_catalog_pins_the_digest_given(text: str, digest: str, keep_tag: bool) -> None:
    written = manifests.reference(text, digest, model.PinMode.DIGEST, keep_tag=keep_tag)
    name = text.rsplit(":", 1)[0] if text.rfind(":") > text.rfind("/") else text
    assert written.endswith(f"@{digest}")
    if keep_tag:
        assert written == f"{text}@{digest}"
    else:
        assert written == f"{name}@{digest}"
    repository, pinned = formats.split_reference(written)
    assert (repository, pinned) == (name, digest)
    assert formats.join_reference(repository, pinned) == f"{name}@{digest}"
    assume(len(name) < 200)
    parsed = reference.parse(written)
    assert parsed.digest == digest
