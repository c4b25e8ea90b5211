"""Find the base image of a Dockerfile's final stage. Pure.

Parsing uses BuildKit's own Dockerfile parser (PyPI `dockerfile`), never regular expressions
over the text. The final stage is the `target` stage when one is given, else the last `FROM`;
a stage built `FROM` an earlier stage is followed back to the external image it starts from.
`ARG`s declared before the first `FROM` are expanded in `FROM` lines, with `buildArgs` overriding
their defaults, exactly as `docker build` does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import dockerfile

from controller import errors


class DockerfileError(errors.StalledError):
    """The Dockerfile cannot be built as written."""

    def __init__(self, message: str) -> None:
        super().__init__("DockerfileInvalid", message)


@dataclasses.dataclass(frozen=True)
class BaseImage:
    """The external image the final stage starts from; `reference` is None for `scratch`."""

    reference: str | None
    stage: str
    line: int


_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-+])?(?P<word>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def _expand(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        value = values.get(name)
        op = match.group("op")
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return _expand(match.group("word"), values)
            return value
        if op in (":+", "+"):
            if value is None or (op == ":+" and value == ""):
                return ""
            return _expand(match.group("word"), values)
        return value or ""

    return _VARIABLE.sub(replace, text)


def final_base_image(
    text: str, *, build_args: Mapping[str, str], target: str | None = None
) -> BaseImage:
    """The base image of the stage that `docker build [--target]` would produce."""
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as error:
        raise DockerfileError(f"the Dockerfile does not parse: {error}") from None
    global_args: dict[str, str] = {}
    stages: list[tuple[str, str, int]] = []  # (name, image, line)
    for command in commands:
        if command.cmd.upper() == "ARG" and not stages:
            for item in command.value:
                name, _, default = item.partition("=")
                if name in build_args:
                    global_args[name] = build_args[name]
                elif "=" in item:
                    global_args[name] = _expand(default, global_args)
        elif command.cmd.upper() == "FROM":
            values = list(command.value)
            if not values:
                raise DockerfileError(f"line {command.start_line}: FROM names no image")
            image = _expand(values[0], global_args)
            name = values[2] if len(values) >= 3 and values[1].upper() == "AS" else str(len(stages))
            stages.append((name.lower(), image, command.start_line))
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction")
    by_name = {name: (image, line) for name, image, line in stages}
    if target is not None:
        if target.lower() not in by_name:
            raise DockerfileError(f"spec.target: the Dockerfile has no stage named {target!r}")
        stage = target.lower()
    else:
        stage = stages[-1][0]
    image, line = by_name[stage]
    seen = {stage}
    while image.lower() in by_name:
        parent = image.lower()
        if parent in seen:
            raise DockerfileError(f"line {line}: stages refer to each other in a loop")
        seen.add(parent)
        image, line = by_name[parent]
    if not image:
        raise DockerfileError(f"line {line}: FROM expands to an empty image name")
    if image.lower() == "scratch":
        return BaseImage(None, stage, line)
    return BaseImage(image, stage, line)
