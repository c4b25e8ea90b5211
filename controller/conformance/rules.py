"""The conformance rules of an ADE runner image, as findings. Pure.

From the decided scripts (`filesystem.Decision`) and the image and base image configs:

- `ScriptMissing`: `/scripts/deploy.sh` or `/scripts/delete.sh` is not in the image.
- `ScriptNotRegularFile`: it is a directory, a symlink (or under a symlinked `/scripts`), a device.
- `ScriptUnreadable`: a hard link whose target is not in its layer, so it could not be checked.
- `ScriptNotExecutable`: its owner has no execute bit.
- `ScriptCRLF`: it has CRLF line endings (the first such line is named; when a script is larger
  than what the reader captures, only that prefix is checked).
- `EntrypointChanged`: the image's `Entrypoint` is not its base image's. ADE's core entrypoint
  fetches the environment's files and runs `/scripts/<operation>.sh`; an image that replaces or
  clears it cannot run. A base without an entrypoint has no ADE entrypoint to keep (it is not an
  ADE core image), so then the image may set its own or none: nothing is reported. An absent and
  an empty `Entrypoint` are the same; without a base config the rule is not checked.
- `LayerUnsupported` / `LayerUnreadable`: a layer the checker cannot read (a media type it cannot
  decompress, a blob that is not a tarball); the scripts it could have decided are left unjudged.

`summary` words the Ready condition's message: `ImageNotConformant: <finding>; <finding>`.
"""

from __future__ import annotations

import dataclasses
import enum
import stat
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controller.conformance import filesystem

REASON = "ImageNotConformant"


class Rule(enum.StrEnum):
    SCRIPT_MISSING = "ScriptMissing"
    SCRIPT_NOT_REGULAR_FILE = "ScriptNotRegularFile"
    SCRIPT_UNREADABLE = "ScriptUnreadable"
    SCRIPT_NOT_EXECUTABLE = "ScriptNotExecutable"
    SCRIPT_CRLF = "ScriptCRLF"
    ENTRYPOINT_CHANGED = "EntrypointChanged"
    LAYER_UNSUPPORTED = "LayerUnsupported"
    LAYER_UNREADABLE = "LayerUnreadable"


@dataclasses.dataclass(frozen=True)
class Finding:
    """One broken rule: `path` is the script it is about (None for the config and layers)."""

    rule: Rule
    path: str | None
    message: str


def check_script(decision: filesystem.Decision) -> list[Finding]:
    """The findings about one decided script."""
    path = decision.path
    if decision.state == filesystem.State.ABSENT:
        return [Finding(Rule.SCRIPT_MISSING, path, f"{path} is missing ({decision.detail})")]
    if decision.state == filesystem.State.NOT_REGULAR:
        message = f"{path} is not a regular file ({decision.detail})"
        return [Finding(Rule.SCRIPT_NOT_REGULAR_FILE, path, message)]
    if decision.state == filesystem.State.UNRESOLVED:
        message = f"{path} could not be checked ({decision.detail})"
        return [Finding(Rule.SCRIPT_UNREADABLE, path, message)]
    findings = []
    if not decision.mode & stat.S_IXUSR:
        message = f"{path} is not executable (mode {decision.mode:04o})"
        findings.append(Finding(Rule.SCRIPT_NOT_EXECUTABLE, path, message))
    line = crlf_line(decision.content or b"")
    if line is not None:
        message = f"{path} has CRLF line endings (line {line})"
        findings.append(Finding(Rule.SCRIPT_CRLF, path, message))
    return findings


def crlf_line(content: bytes) -> int | None:
    """The 1-based number of the first line that ends with CRLF, if any."""
    index = content.find(b"\r\n")
    return None if index < 0 else content.count(b"\n", 0, index) + 1


def entrypoint_of(config: Mapping[str, Any]) -> tuple[str, ...]:
    """An image config blob's `config.Entrypoint` (absent, null and `[]` are all empty)."""
    settings = config.get("config")
    value = settings.get("Entrypoint") if isinstance(settings, Mapping) else None
    if isinstance(value, str):  # not in the spec, but some builders wrote a bare string
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return ()


def check_entrypoint(
    image_config: Mapping[str, Any], base_config: Mapping[str, Any] | None
) -> list[Finding]:
    """`EntrypointChanged` when the image does not keep its base's entrypoint."""
    if base_config is None:
        return []
    base, image = entrypoint_of(base_config), entrypoint_of(image_config)
    if not base or image == base:
        return []
    now = f"sets {_words(image)}" if image else "has no entrypoint"
    message = (
        f"the image {now}, but its base image's entrypoint is {_words(base)}"
        " (ADE runs the scripts through it: keep it)"
    )
    return [Finding(Rule.ENTRYPOINT_CHANGED, None, message)]


def _words(argv: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{word}"' for word in argv) + "]"


def unsupported_layer(*, layer: int, total: int, digest: str, media_type: str) -> Finding:
    message = (
        f"layer {layer} of {total} ({digest}) has media type {media_type}, which the"
        " conformance check cannot read; the scripts were not checked past it"
    )
    return Finding(Rule.LAYER_UNSUPPORTED, None, message)


def unreadable_layer(*, layer: int, total: int, digest: str, problem: str) -> Finding:
    message = (
        f"layer {layer} of {total} ({digest}) is not a readable tarball ({problem});"
        " the scripts were not checked past it"
    )
    return Finding(Rule.LAYER_UNREADABLE, None, message)


def evaluate(
    decisions: Iterable[filesystem.Decision],
    *,
    image_config: Mapping[str, Any],
    base_config: Mapping[str, Any] | None,
) -> list[Finding]:
    """All findings: the scripts in the order given, then the entrypoint."""
    findings = [finding for decision in decisions for finding in check_script(decision)]
    return findings + check_entrypoint(image_config, base_config)


def summary(findings: Sequence[Finding]) -> str | None:
    """`ImageNotConformant: a; b` for a condition message; None when there is no finding."""
    if not findings:
        return None
    return f"{REASON}: " + "; ".join(finding.message for finding in findings)
