"""Find the base image of a Dockerfile's final stage. Pure.

Parsing uses BuildKit's own Dockerfile parser (PyPI `dockerfile`), never regular expressions
over the text. The final stage is the `target` stage when one is given, else the last `FROM`;
a stage built `FROM` an earlier stage is followed back to the external image it starts from.
`ARG`s declared before the first `FROM` are expanded in `FROM` lines, with `buildArgs` overriding
their defaults, exactly as `docker build` does.

The result is a valid image reference (`registry.reference.parse` reads it) or a `DockerfileError`
whose message names `spec.dockerfile` and the line: an `ARG` with no value (`core:`), a tag added
to a `BASE_IMAGE` that already has one (`core:4.0.0:latest`) are refused here, where the user can
be told which line and which `ARG` to fix, not later as a registry error retried in a loop.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping

import dockerfile

from controller import errors
from controller.registry import reference as reference_


class DockerfileError(errors.StalledError):
    """The Dockerfile cannot be built as written; the message names the field (spec.dockerfile,
    the Dockerfile's path, unless it names another, e.g. spec.target)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            "DockerfileInvalid",
            message if message.startswith("spec.") else f"spec.dockerfile: {message}",
        )


@dataclasses.dataclass(frozen=True)
class BaseImage:
    """The external image the final stage starts from; `reference` is None for `scratch`."""

    reference: str | None
    stage: str
    line: int


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _expand(text: str, values: Mapping[str, str]) -> str:
    """Expand `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`,
    `${NAME+word}` (nested inside words too), as BuildKit's shell lexer does for FROM lines."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
            continue
        if char != "$":
            out.append(char)
            index += 1
            continue
        if text.startswith("${", index):
            end = _closing_brace(text, index + 2)
            out.append(_braced(text[index + 2 : end], values))
            index = end + 1
            continue
        match = _NAME.match(text, index + 1)
        if match is None:
            out.append(char)
            index += 1
            continue
        out.append(values.get(match.group(), ""))
        index = match.end()
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise DockerfileError(f"unterminated ${{ in {text!r}")


def _braced(body: str, values: Mapping[str, str]) -> str:
    match = _NAME.match(body)
    if match is None:
        raise DockerfileError(f"bad variable ${{{body}}}")
    name, rest = match.group(), body[match.end() :]
    value = values.get(name)
    if not rest:
        return value or ""
    for op in (":-", "-", ":+", "+"):
        if rest.startswith(op):
            word = rest[len(op) :]
            unset = value is None or (op.startswith(":") and value == "")
            if op.endswith("-"):
                return _expand(word, values) if unset else str(value)
            return "" if unset else _expand(word, values)
    raise DockerfileError(f"unsupported variable form ${{{body}}}")


def _platform_args(platforms: tuple[str, ...]) -> dict[str, str]:
    """BuildKit's automatic platform ARGs, for the first target platform."""
    platform = platforms[0] if platforms else "linux/amd64"
    os_, _, rest = platform.partition("/")
    arch, _, variant = rest.partition("/")
    return {
        "BUILDPLATFORM": platform,
        "BUILDOS": os_,
        "BUILDARCH": arch,
        "BUILDVARIANT": variant,
        "TARGETPLATFORM": platform,
        "TARGETOS": os_,
        "TARGETARCH": arch,
        "TARGETVARIANT": variant,
    }


def final_base_image(
    text: str,
    *,
    build_args: Mapping[str, str],
    target: str | None = None,
    platforms: tuple[str, ...] = (),
    check_reference: bool = True,
) -> BaseImage:
    """The base image of the stage that `docker build [--target]` would produce.

    `check_reference=False` answers the image as expanded even when it is no reference (the
    linter reads every stage, also those a build skips)."""
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as error:
        raise DockerfileError(f"the Dockerfile does not parse: {error}") from None
    global_args: dict[str, str] = dict(_platform_args(platforms))
    stages: list[tuple[str | None, str, int]] = []  # (name, image, line), in order
    written: dict[int, str] = {}  # the image of each FROM line as written
    declared: set[str] = set()  # the global ARG names
    for command in commands:
        if command.cmd is None:  # a line the parser keeps no instruction of (a lone "\\")
            continue
        if command.cmd.upper() == "ARG" and not stages:
            for item in command.value:
                name, has_default, default = _unquote(item).partition("=")
                declared.add(name)
                if name in build_args:
                    global_args[name] = build_args[name]
                elif has_default:
                    global_args[name] = _expand(default, global_args)
        elif command.cmd.upper() == "FROM":
            values = list(command.value)
            if not values:
                raise DockerfileError(
                    f"spec.dockerfile: line {command.start_line}: FROM names no image"
                )
            image = _expand(values[0], global_args)
            written[command.start_line] = values[0]
            alias = values[2].lower() if len(values) >= 3 and values[1].upper() == "AS" else None
            stages.append((alias, image, command.start_line))
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction")
    if target is not None:
        named = [i for i, (name, _, _) in enumerate(stages) if name == target.lower()]
        if not named:
            raise DockerfileError(f"spec.target: the Dockerfile has no stage named {target!r}")
        position = named[-1]
    else:
        position = len(stages) - 1
    stage_name = stages[position][0] or str(position)
    # Follow a stage built FROM an earlier stage back to the external image it starts from; as
    # in BuildKit, only stages defined before a FROM can be referred to by it.
    while True:
        _, image, line = stages[position]
        earlier = [i for i, (name, _, _) in enumerate(stages[:position]) if name == image.lower()]
        if not earlier:
            break
        position = earlier[-1]
    if not image:
        applied = " (with spec.buildArgs applied)" if build_args else ""
        raise DockerfileError(f"line {line}: FROM expands to an empty image name{applied}")
    if image.lower() == "scratch":
        return BaseImage(None, stage_name, line)
    if not check_reference:
        return BaseImage(image, stage_name, line)
    _check_reference(
        image, line, written[line], values=global_args, declared=declared, build_args=build_args
    )
    return BaseImage(image, stage_name, line)


_PLAIN_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _check_reference(
    image: str,
    line: int,
    written: str,
    *,
    values: Mapping[str, str],
    declared: set[str],
    build_args: Mapping[str, str],
) -> None:
    """Refuse an expanded `FROM` that is not an image reference, naming the line, and the
    variables it uses without a value or an image that carries two tags."""
    try:
        reference_.parse(image)
    except reference_.InvalidReference as error:
        problem = str(error)
    else:
        return
    hints: list[str] = []
    for braced, bare in _PLAIN_VARIABLE.findall(written):
        name = braced or bare
        if values.get(name):
            continue
        if name in declared and name in build_args:
            hint = f"spec.buildArgs.{name} is empty"
        elif name not in declared:
            hint = f"{name} is not declared by an ARG before the first FROM"
        else:
            hint = f"ARG {name} has no value (give it a default or set spec.buildArgs.{name})"
        if hint not in hints:
            hints.append(hint)
    if image.rsplit("/", 1)[-1].count(":") > 1:
        hints.append("the image already has a tag before the one the Dockerfile adds")
    # the spec's build args that went into it are named: the fix may be there, not in the file
    given = dict.fromkeys(
        f"spec.buildArgs.{braced or bare}"
        for braced, bare in _PLAIN_VARIABLE.findall(written)
        if (braced or bare) in build_args and values.get(braced or bare)
    )
    applied = f" with {', '.join(given)}" if given else ""
    raise DockerfileError(
        f"spec.dockerfile: line {line}: FROM {written}{applied} expands to {image!r}, which is"
        f" not an image reference: {'; '.join(hints) if hints else problem}"
    )


def _unquote(item: str) -> str:
    """`NAME="a b"` -> `NAME=a b` (BuildKit removes shell quotes from ARG values)."""
    try:
        parts = shlex.split(item)
    except ValueError:
        return item
    return parts[0] if len(parts) == 1 else item
