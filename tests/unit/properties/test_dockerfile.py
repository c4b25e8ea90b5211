"""Properties of the Dockerfile base-image resolver (`controller.builds.dockerfile`) and the
Dockerfile linter built on it (`controller.conformance.lint`).

Generated Dockerfiles are random `ARG`/`FROM` chains, as ADE's samples and users write them:
global `ARG`s with and without defaults (plain, double- and single-quoted), `buildArgs` that
override some and name others never declared, `FROM` images assembled from literal and variable
parts (`$X`, `${X}`, `${X:-word}`, `${X-word}`, `${X:+word}`) in the registry, repository, tag
and digest, values that already carry a tag, multi-stage `FROM x AS y` with later stages built
`FROM y`, `--platform`, a `--target`, comments, blank lines and other instructions between.

- The answer is what a model of BuildKit's expansion predicts: the final stage's external image
  as a valid reference (`reference.parse` reads it) at its line, None for `scratch`; or, when
  that image is no reference, a `DockerfileError` whose message names `spec.dockerfile` and the
  line.
- Any text at all gives a `BaseImage` or a `DockerfileError`, never another exception; the
  linter fails exactly when the resolver does.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.builds import dockerfile
from controller.conformance import lint
from controller.registry import reference
from tests.unit.properties import strategies

NAMES = ["BASE_IMAGE", "IMAGE_VERSION", "REGISTRY", "REPO", "TAG", "DIGEST", "V"]
STAGES = ["build", "base", "runner", "final", "tools"]

values = st.one_of(
    st.just(""),
    strategies.hosts,
    strategies.repositories,
    strategies.tags,
    strategies.digests,
    strategies.references(),
)


@dataclasses.dataclass(frozen=True)
class Part:
    """A piece of a FROM image: literal text or a variable in one of the shell forms."""

    literal: str = ""
    name: str = ""
    form: str = "braced"  # bare, braced, default, default_unset, alternative
    word: str = ""

    def text(self) -> str:
        if not self.name:
            return self.literal
        return {
            "bare": f"${self.name}",
            "braced": f"${{{self.name}}}",
            "default": f"${{{self.name}:-{self.word}}}",
            "default_unset": f"${{{self.name}-{self.word}}}",
            "alternative": f"${{{self.name}:+{self.word}}}",
        }[self.form]

    def value(self, known: dict[str, str]) -> str:
        if not self.name:
            return self.literal
        value = known.get(self.name)
        if self.form in {"bare", "braced"}:
            return value or ""
        if self.form == "default":
            return value if value else self.word
        if self.form == "default_unset":
            return value if value is not None else self.word
        return self.word if value else ""


def _part(literal: st.SearchStrategy[str]) -> st.SearchStrategy[Part]:
    word = st.text(strategies.LOWER + strategies.DIGITS + ".-", min_size=1, max_size=6)
    variable = st.builds(
        Part,
        name=st.sampled_from(NAMES),
        form=st.sampled_from(["bare", "braced", "default", "default_unset", "alternative"]),
        word=word,
    )
    return st.one_of(literal.map(lambda text: Part(literal=text)), variable)


@st.composite
def images(draw: st.DrawFn) -> list[tuple[str, Part]]:
    """(separator, part) pairs: [registry "/"] repository [":" tag] ["@" digest]."""
    parts: list[tuple[str, Part]] = []
    if draw(st.booleans()):
        parts.append(("", draw(_part(strategies.hosts))))
        parts.append(("/", draw(_part(strategies.repositories))))
    else:
        parts.append(("", draw(_part(strategies.repositories))))
    if draw(st.booleans()):
        parts.append((":", draw(_part(strategies.tags))))
    if draw(st.integers(0, 4)) == 0:
        parts.append(("@", draw(_part(strategies.digests))))
    return parts


@dataclasses.dataclass
class Generated:
    text: str
    build_args: dict[str, str]
    target: str | None
    # (alias, image as the model expands it, line) of every FROM, in order
    stages: list[tuple[str | None, str, int]]


def _quoted(value: str, style: str) -> str:
    return {"plain": value, "double": f'"{value}"', "single": f"'{value}'"}[style]


@st.composite
def dockerfiles(draw: st.DrawFn) -> Generated:
    lines: list[str] = []
    known: dict[str, str] = {}
    declared: set[str] = set()
    build_args = draw(st.dictionaries(st.sampled_from([*NAMES, "UNUSED"]), values, max_size=4))
    filler = st.sampled_from(["", "# a comment", "RUN true"])
    if draw(st.booleans()):
        lines.append("# syntax=docker/dockerfile:1")
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "# a comment"])))
        name = draw(st.sampled_from(NAMES))
        if draw(st.booleans()):
            default = draw(values)
            style = "plain" if not default else draw(st.sampled_from(["plain", "double", "single"]))
            lines.append(f"ARG {name}={_quoted(default, style)}")
            declared.add(name)
            known[name] = build_args.get(name, default)
        else:
            lines.append(f"ARG {name}")  # without a default: keeps an earlier value
            declared.add(name)
            if name in build_args:
                known[name] = build_args[name]
    stages: list[tuple[str | None, str, int]] = []
    for _ in range(draw(st.integers(1, 4))):
        lines.extend(draw(st.lists(filler, max_size=2)))
        earlier = [alias for alias, _, _ in stages if alias]
        if earlier and draw(st.integers(0, 2)) == 0:
            written = expanded = draw(st.sampled_from(earlier))
        elif draw(st.integers(0, 9)) == 0:
            written = expanded = "scratch"
        else:
            parts = draw(images())
            written = "".join(sep + part.text() for sep, part in parts)
            expanded = "".join(sep + part.value(known) for sep, part in parts)
        flag = draw(st.sampled_from(["", "--platform=$BUILDPLATFORM ", "--platform=linux/amd64 "]))
        alias = draw(st.none() | st.sampled_from(STAGES))
        as_ = draw(st.sampled_from(["AS", "as"]))
        lines.append(f"FROM {flag}{written}" + (f" {as_} {alias}" if alias else ""))
        stages.append((alias, expanded, len(lines)))
        for instruction in draw(
            st.lists(st.sampled_from(["RUN true", "COPY scripts/ /scripts/", "ARG TAG=inner"]))
        ):
            lines.append(instruction)
    aliases = [alias for alias, _, _ in stages if alias]
    target = draw(st.none() | st.sampled_from(aliases)) if aliases else None
    return Generated("\n".join(lines) + "\n", build_args, target, stages)


def _expected(generated: Generated) -> tuple[str | None, int]:
    """The final stage's external image and its line, as BuildKit resolves it."""
    stages = generated.stages
    if generated.target is None:
        position = len(stages) - 1
    else:
        position = max(i for i, (alias, _, _) in enumerate(stages) if alias == generated.target)
    while True:
        _, image, line = stages[position]
        earlier = [i for i, (alias, _, _) in enumerate(stages[:position]) if alias == image.lower()]
        if not earlier:
            return (None if image.lower() == "scratch" else image), line
        position = earlier[-1]


@given(dockerfiles())
def test_the_base_image_is_a_reference_or_an_error_naming_the_line(generated: Generated) -> None:
    image, line = _expected(generated)
    if image is not None and _not_a_reference(image):
        with pytest.raises(dockerfile.DockerfileError) as raised:
            dockerfile.final_base_image(
                generated.text, build_args=generated.build_args, target=generated.target
            )
        assert f"spec.dockerfile: line {line}: FROM" in raised.value.message
        return
    found = dockerfile.final_base_image(
        generated.text, build_args=generated.build_args, target=generated.target
    )
    assert found.line == line
    assert found.reference == image


def _not_a_reference(image: str) -> bool:
    try:
        reference.parse(image)
    except reference.InvalidReference:
        return True
    return False


instructions = st.one_of(
    st.sampled_from(
        [
            "FROM alpine",
            "FROM ${BASE_IMAGE}:${IMAGE_VERSION}",
            "FROM",
            "FROM $",
            "FROM ${",
            "FROM ${X:?err}",
            "FROM ${}",
            "FROM x AS",
            "FROM --platform= a",
            "ARG",
            "ARG =x",
            "ARG A=${",
            'ARG "A=b c"',
            "ARG BASE_IMAGE=a:b:c",
            "RUN \\",
            "COPY <<EOF /x\nhi\nEOF",
            "FROM scratch",
            "FROM build",
            "FROM a AS build",
            "\ufeffFROM a",
        ]
    ),
    st.text(max_size=30),
)


@given(
    st.lists(instructions, max_size=6).map("\n".join),
    st.dictionaries(st.sampled_from(NAMES), st.text(max_size=10), max_size=2),
    st.none() | st.sampled_from(["build", "x"]),
)
def test_any_text_gives_a_base_image_or_a_dockerfile_error(
    text: str, build_args: dict[str, str], target: str | None
) -> None:
    try:
        found = dockerfile.final_base_image(text, build_args=build_args, target=target)
    except dockerfile.DockerfileError:
        resolved = False
    else:
        resolved = True
        if found.reference is not None:
            reference.parse(found.reference)
    try:
        lint.lint(text, build_args=build_args, target=target)
    except dockerfile.DockerfileError:
        assert not resolved, "the linter refused what the resolver read"
    else:
        assert resolved, "the linter read what the resolver refused"
