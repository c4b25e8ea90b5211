"""Lint a runner image's Dockerfile for the known ways it breaks in ADE. Pure.

Instructions come from BuildKit's own parser (PyPI `dockerfile`), as in
`controller.builds.dockerfile`, which also resolves each stage's base image (ARGs and build args
expanded). A RUN's shell command is read from the shell's grammar by
`controller.conformance.shell` (bashlex: lists, pipelines, `if`/`for`, subshells, `sh -c` and
`bash -c` at any depth, here-documents, `find -exec`, `xargs`/`sudo`/`env` prefixes; a lenient
word-splitting fallback where bashlex refuses valid shell). Each finding is one a reviewer
would agree breaks the runner; where the parse cannot tell, the lint stays silent. The rules:

- `ApkOnCore` (warning): a RUN that must run `apk` in a stage whose base has no apk: ADE core 4
  or later (repository ending in `deployment-environments/runners/core`, tag `latest`, none or
  >= 4; since mirrors rename repositories the caller may say so instead, `base_is_core4`, which
  applies to stages built from the final stage's base), or `azure-cli` 2.67.0 or later (`latest`,
  none, or a Mariner / Azure Linux tag), which core 4 is built on. Not flagged: `apk` as an `||`
  alternative to another package manager (`apk add x || tdnf install -y x`), after or inside a
  test for it or the distribution (`command -v apk && ...`, `if which apk; then ...`, `[ -f
  /etc/alpine-release ]`), inside a function body. A digest-only reference is not judged. The
  id names core for compatibility (users and `status.warnings` depend on it); the message
  names the base and why.
- `ScriptsNotCopied` (warning): no COPY or ADD in the final stage (or the stages it is built
  from) puts anything under `/scripts` (relative destinations follow WORKDIR), and no RUN there
  names `/scripts`. Reported on the final stage's FROM line.
- `ScriptsNotExecutable` (warning): scripts are copied to `/scripts` but neither a `--chmod`
  granting the owner execute nor a RUN `chmod` (`+x`, `u+x`, `755`, ...) whose operands reach
  `/scripts` makes them executable (`/scripts`, `/scripts/*.sh`, a path relative to WORKDIR or a
  preceding `cd`, `find /scripts ... -exec chmod +x {} +`, xargs fed by `find /scripts`, a `for`
  over `/scripts/*`, `chmod -R` of a parent; an operand the parse cannot know counts). On the
  first such COPY.
- `ScriptsLineEndings` (info): likewise for converting to LF: no `dos2unix`, `sed`/`perl`
  removing `\\r` or `tr -d '\\r' > file` reaches `/scripts`, so a script saved with CRLF fails.
- `EntrypointOverridden` (warning): the image's last ENTRYPOINT (final stage or the stages it
  is built from) when its base is one of ADE's runner images (`deployment-environments/runners/`,
  or `base_is_core4` from the caller), unless it re-declares `/entrypoint.sh` (exec or shell
  form): ADE needs that entrypoint, which runs `/scripts/<operation>.sh`.

USER is not judged: what ADE's entrypoint needs of the user is not documented.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dockerfile

from controller.builds import dockerfile as build_dockerfile
from controller.conformance import shell
from controller.registry import reference

CORE_REPOSITORY = "deployment-environments/runners/core"
CORE_APK_REMOVED = 4
ADE_RUNNERS = "deployment-environments/runners/"
AZURE_CLI_REPOSITORY = "azure-cli"
AZURE_CLI_AZURE_LINUX = (2, 67)  # azure-cli images are Azure Linux from 2.67.0 on
CORE_ENTRYPOINT = "/entrypoint.sh"


class Severity(enum.StrEnum):
    WARNING = "warning"
    INFO = "info"


@dataclasses.dataclass(frozen=True)
class Warning:  # shadows the builtin here only: used from outside as `lint.Warning`
    """One lint result: the rule, the Dockerfile line (1-based) and what is wrong."""

    rule: str
    line: int
    message: str
    severity: Severity = Severity.WARNING


def as_status(warning: Warning) -> dict[str, Any]:
    """A finding as `status.warnings` holds it and `ade-runner-operator lint` prints it."""
    return {"rule": warning.rule, "line": warning.line, "message": warning.message}


@dataclasses.dataclass
class _Stage:
    name: str | None
    line: int
    parent: int | None  # the earlier stage it is built FROM, if any
    root: str | None  # the external image at the bottom of its FROM chain (None: scratch)
    commands: list[dockerfile.Command] = dataclasses.field(default_factory=list)


def is_core4(image: str | None) -> bool:
    """Whether `image` names ADE core 4 or later (`latest` included) by its repository."""
    if image is None:
        return False
    try:
        ref = reference.parse(image)
    except reference.InvalidReference:
        return False
    if ref.repository != CORE_REPOSITORY and not ref.repository.endswith("/" + CORE_REPOSITORY):
        return False
    if ref.tag is None:
        return ref.digest is None
    if ref.tag == "latest":
        return True
    digits = ""
    for char in ref.tag.removeprefix("v"):
        if not char.isdigit():
            break
        digits += char
    return bool(digits) and int(digits) >= CORE_APK_REMOVED


def _repository(image: str | None) -> reference.Reference | None:
    if image is None:
        return None
    try:
        return reference.parse(image)
    except reference.InvalidReference:
        return None


def is_azure_linux_cli(image: str | None) -> bool:
    """Whether `image` names `azure-cli` 2.67.0 or later (`latest` included, or a Mariner / Azure
    Linux tag): Azure Linux, without apk. Older tags are Alpine; a digest alone is not judged."""
    ref = _repository(image)
    if ref is None or posixpath.basename(ref.repository) != AZURE_CLI_REPOSITORY:
        return False
    if ref.tag is None:
        return ref.digest is None
    tag = ref.tag.lower()
    if tag == "latest" or "mariner" in tag or "azurelinux" in tag:
        return True
    match = re.match(r"v?(\d+)\.(\d+)", tag)
    return match is not None and (int(match[1]), int(match[2])) >= AZURE_CLI_AZURE_LINUX


def is_ade_runner(image: str | None) -> bool:
    """Whether `image` names one of ADE's runner images (`deployment-environments/runners/core`
    and its siblings, any tag, any registry or mirror prefix): their ENTRYPOINT is ADE's."""
    ref = _repository(image)
    return ref is not None and (
        ref.repository.startswith(ADE_RUNNERS) or f"/{ADE_RUNNERS}" in ref.repository
    )


def _without_apk(image: str | None, core4: bool) -> str | None:
    """Why apk fails on a stage built from `image`, or None when it may work."""
    named = image or "the base image"
    if core4:
        return f"{named} is ADE core 4 or later"
    if is_azure_linux_cli(image):
        return f"{named} is azure-cli 2.67.0 or later"
    return None


def lint(
    text: str,
    *,
    build_args: Mapping[str, str],
    base_reference: str | None = None,
    base_is_core4: bool | None = None,
    target: str | None = None,
) -> list[Warning]:
    """The warnings for a Dockerfile, by line. `base_reference` is the final stage's base as the
    build will use it (default: as the Dockerfile names it, with `build_args`); `base_is_core4`
    overrides recognizing it as ADE core >= 4 by name. Raises `DockerfileError` when the text
    does not parse or has no stage to build."""
    try:
        # A line the parser keeps no instruction of (a lone "\\") has no command: skipped.
        commands = [c for c in dockerfile.parse_string(text) if c.cmd is not None]
    except dockerfile.GoParseError as error:
        raise build_dockerfile.DockerfileError(f"the Dockerfile does not parse: {error}") from None
    stages = _stages(text, commands, build_args)
    final_base = build_dockerfile.final_base_image(text, build_args=build_args, target=target)
    final = _final_stage(stages, target)
    chain = _chain(stages, final)
    final_root = stages[final].root

    named_final = base_reference or final_base.reference
    final_core4 = base_is_core4 if base_is_core4 is not None else is_core4(named_final)

    warnings: list[Warning] = []
    for stage in stages:
        if stage.root == final_root:
            reason = _without_apk(named_final, final_core4)
        else:
            reason = _without_apk(stage.root, is_core4(stage.root))
        if reason is not None:
            warnings.extend(_apk(stage, reason))
    warnings.extend(_scripts(stages, chain))
    if base_is_core4 or is_ade_runner(named_final):
        warnings.extend(_entrypoint(stages, chain))
    return sorted(warnings, key=lambda warning: warning.line)


# -- stages ------------------------------------------------------------------------------------


def _stages(
    text: str, commands: Sequence[dockerfile.Command], build_args: Mapping[str, str]
) -> list[_Stage]:
    # Lines as BuildKit counts them: split at "\n" only (`splitlines` also splits at "\x1e",
    # "\x0c", "\u2028", ..., which moved the cut before the wrong FROM).
    lines = [f"{line}\n" for line in text.split("\n")]
    froms = [c.start_line for c in commands if c.cmd.upper() == "FROM"]
    stages: list[_Stage] = []
    for command in commands:
        if command.cmd.upper() != "FROM":
            if stages:
                stages[-1].commands.append(command)
            continue
        values = list(command.value)
        image = values[0].lower() if values else ""
        alias = values[2].lower() if len(values) >= 3 and values[1].upper() == "AS" else None
        earlier = [i for i, stage in enumerate(stages) if stage.name == image]
        # The stage's external base, resolved exactly as the build does: the Dockerfile cut
        # just before the next FROM ends with this stage.
        position = len(stages)
        end = froms[position + 1] - 1 if position + 1 < len(froms) else len(lines)
        root = build_dockerfile.final_base_image(
            "".join(lines[:end]), build_args=build_args, check_reference=False
        ).reference
        stages.append(_Stage(alias, command.start_line, earlier[-1] if earlier else None, root))
    return stages


def _final_stage(stages: Sequence[_Stage], target: str | None) -> int:
    if target is None:
        return len(stages) - 1
    named = [i for i, stage in enumerate(stages) if stage.name == target.lower()]
    return named[-1]  # final_base_image has already refused an unknown target


def _chain(stages: Sequence[_Stage], index: int) -> list[int]:
    """`index` and the stages it is built FROM, bottom first."""
    chain = [index]
    while (parent := stages[chain[-1]].parent) is not None:
        chain.append(parent)
    return chain[::-1]


# -- RUN commands ------------------------------------------------------------------------------


def run_commands(command: dockerfile.Command) -> list[shell.Command]:
    """The simple commands a RUN instruction runs (`controller.conformance.shell`)."""
    if command.json:
        return shell.argv_commands(list(command.value))
    text = " ".join(command.value)
    if text.lstrip().startswith("<<"):
        # `RUN <<EOF`: BuildKit runs the here-document as the script.
        found: list[shell.Command] = []
        for heredoc in command.heredocs:
            script = shell.heredoc_script(heredoc.content)
            if script is not None:
                found.extend(shell.commands(script))
        return found
    # Here-documents follow the command line, as the shell reads them.
    for heredoc in command.heredocs:
        text += "\n" + heredoc.content + heredoc.name + "\n"
    return shell.commands(text)


def _apk(stage: _Stage, reason: str) -> Iterator[Warning]:
    for command in stage.commands:
        if command.cmd.upper() != "RUN":
            continue
        if any(c.program == "apk" and not c.conditional for c in run_commands(command)):
            yield Warning(
                "ApkOnCore",
                command.start_line,
                f"RUN uses apk, but {reason} (Azure Linux, no apk): install packages with tdnf,"
                " or try both (`apk add x || tdnf install -y x`)",
            )


# -- scripts -----------------------------------------------------------------------------------


def grants_owner_execute(mode: str) -> bool:
    """Whether a chmod mode (`755`, `+x`, `u+rwx,go+rx`, `a=rx`) gives the owner execute."""
    if mode.isdigit():
        return int(mode, 8) & 0o100 != 0 if set(mode) <= set("01234567") else False
    for clause in mode.split(","):
        who = clause[: len(clause) - len(clause.lstrip("ugoa"))]
        if who and "u" not in who and "a" not in who:
            continue
        rest = clause[len(who) :]
        for op in ("+", "="):
            if op in rest and any(c in "xX" for c in rest.split(op, 1)[1]):
                return True
    return False


def _under_scripts(path: str) -> bool:
    clean = posixpath.normpath(path)
    return clean == "/scripts" or clean.startswith("/scripts/")


def _flag(command: dockerfile.Command, name: str) -> str | None:
    for flag in command.flags:
        key, _, value = flag.partition("=")
        if key == f"--{name}":
            return str(value)
    return None


def _scripts(stages: Sequence[_Stage], chain: Sequence[int]) -> Iterator[Warning]:
    copies: list[dockerfile.Command] = []
    named_in_run = executable = normalized = False
    workdir = "/"
    for index in chain:
        for command in stages[index].commands:
            instruction = command.cmd.upper()
            if instruction == "WORKDIR" and command.value:
                workdir = posixpath.join(workdir, command.value[0])
            elif instruction in ("COPY", "ADD") and len(command.value) >= 2:
                if _under_scripts(posixpath.join(workdir, command.value[-1])):
                    copies.append(command)
                    chmod = _flag(command, "chmod")
                    executable = executable or (chmod is not None and grants_owner_execute(chmod))
            elif instruction == "RUN":
                ran = run_commands(command)
                words = [w for c in ran for w in (*c.argv, *c.outputs, c.cwd or "")]
                on_scripts = _under_scripts(workdir) or any("/scripts" in w for w in words)
                named_in_run = named_in_run or on_scripts
                executable = executable or any(_makes_executable(c, workdir) for c in ran)
                normalized = normalized or any(_strips_cr(c, workdir) for c in ran)
    final = stages[chain[-1]]
    if not copies:
        if not named_in_run:
            yield Warning(
                "ScriptsNotCopied",
                final.line,
                "no COPY or ADD puts the scripts under /scripts/ (ADE runs /scripts/deploy.sh"
                " and /scripts/delete.sh), unless the base image has them",
            )
        return
    first = copies[0].start_line
    if not executable:
        yield Warning(
            "ScriptsNotExecutable",
            first,
            "the scripts copied to /scripts/ are not made executable (no `chmod +x` on them,"
            " no `--chmod`): they keep the mode they have in the build context",
        )
    if not normalized:
        yield Warning(
            "ScriptsLineEndings",
            first,
            "the scripts copied to /scripts/ are not converted to LF line endings (no"
            " dos2unix or sed 's/\\r$//'): a script saved with CRLF fails to run",
            Severity.INFO,
        )


def _covers(command: shell.Command, operands: Sequence[str], workdir: str, recursive: bool) -> bool:
    """Whether a command acting on `operands` reaches the scripts under /scripts. Operands the
    parse cannot know (variables, xargs' input, a fallback parse) count as reaching them."""
    if not command.exact or not operands:
        return True
    for operand in operands:
        if "$" in operand or "`" in operand or (command.cwd and "$" in command.cwd):
            return True
        path = posixpath.normpath(posixpath.join(workdir, command.cwd or ".", operand))
        if _under_scripts(path) or any(
            fnmatch.fnmatchcase(target, path) for target in ("/scripts", "/scripts/deploy.sh")
        ):
            return True
        if recursive and (path == "/" or "/scripts".startswith(path.rstrip("/") + "/")):
            return True
    return False


def _makes_executable(command: shell.Command, workdir: str) -> bool:
    if command.program != "chmod":
        return False
    words = list(command.argv[1:])
    options = [
        w for w in words if w.startswith("--") or (w[:1] == "-" and set(w[1:]) <= set("RvcfH"))
    ]
    rest = [w for w in words if w not in options]
    if not rest or not grants_owner_execute(rest[0]):
        return False
    recursive = any(w in ("-R", "--recursive") or (w[:2] != "--" and "R" in w) for w in options)
    return _covers(command, rest[1:], workdir, recursive)


def _strips_cr(command: shell.Command, workdir: str) -> bool:
    program = command.program
    words = command.argv[1:]
    if program == "dos2unix":
        operands = [w for w in words if not w.startswith("-")]
    elif program in ("sed", "tr", "perl") and any("\\r" in w or "\r" in w for w in words):
        operands = [w for w in words if not w.startswith("-") and "\\r" not in w and "\r" not in w]
        if program == "tr":
            operands = []
    else:
        return False
    return _covers(command, [*operands, *command.outputs], workdir, recursive=False)


# -- entrypoint --------------------------------------------------------------------------------


def _entrypoint(stages: Sequence[_Stage], chain: Sequence[int]) -> Iterator[Warning]:
    """The image's ENTRYPOINT is the last one in its chain of stages: a finding unless it
    re-declares the core image's `/entrypoint.sh` (exec or shell form)."""
    last = None
    for index in chain:
        for command in stages[index].commands:
            if command.cmd.upper() == "ENTRYPOINT":
                last = command
    if last is None:
        return
    words = [str(word) for word in last.value]
    if not last.json:
        words = " ".join(words).split()
    if len(words) == 1 and posixpath.normpath(words[0]) == CORE_ENTRYPOINT:
        return
    yield Warning(
        "EntrypointOverridden",
        last.start_line,
        f"ENTRYPOINT replaces the ADE base image's {CORE_ENTRYPOINT}, which ADE needs: it"
        " fetches the environment's files and runs /scripts/<operation>.sh",
    )
