"""Lint a runner image's Dockerfile for the known ways it breaks in ADE. Pure.

Instructions come from BuildKit's own parser (PyPI `dockerfile`), as in
`controller.builds.dockerfile`, which also resolves each stage's base image (ARGs and build args
expanded); only the words of a RUN's shell command are split here (`shlex`, a command being the
first word after `;`, `&&`, `|`, a newline, `-exec`, `xargs`, `sudo`, ...). The rules:

- `ApkOnCore` (warning): `RUN apk ...` in a stage whose base is ADE core 4 or later (Azure Linux,
  `tdnf`; `apk` is gone). Core is recognized by the repository ending in
  `deployment-environments/runners/core` with tag `latest` (or none) or a version >= 4; since
  mirrors rename repositories, the caller may say so instead (`base_is_core4`, which applies to
  stages built from the final stage's base). A digest-only core reference is not judged.
- `ScriptsNotCopied` (warning): no COPY or ADD in the final stage (or the stages it is built
  from) puts anything under `/scripts` (relative destinations follow WORKDIR), and no RUN there
  names `/scripts`. Reported on the final stage's FROM line.
- `ScriptsNotExecutable` (warning): scripts are copied to `/scripts` but neither a `--chmod`
  granting the owner execute nor a RUN `chmod` (with `+x`, `u+x`, `755`, ...) on `/scripts`
  makes them executable; they keep whatever mode the build context has. On the first such COPY.
- `ScriptsLineEndings` (info): scripts are copied to `/scripts` but no RUN on `/scripts` runs
  `dos2unix` (or `sed`/`tr`/`perl` removing `\\r`), so a script saved with CRLF would fail.
- `EntrypointOverridden` (warning): ENTRYPOINT in the final stage (or the stages it is built
  from): ADE needs the core image's entrypoint, which runs `/scripts/<operation>.sh`.

USER is not judged: what ADE's entrypoint needs of the user is not documented.
"""

from __future__ import annotations

import dataclasses
import enum
import posixpath
import shlex
from collections.abc import Iterator, Mapping, Sequence

import dockerfile

from controller.builds import dockerfile as build_dockerfile
from controller.registry import reference

CORE_REPOSITORY = "deployment-environments/runners/core"
CORE_APK_REMOVED = 4

_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh"})
_PREFIXES = frozenset(
    {"sudo", "exec", "command", "env", "nohup", "time", "xargs", "then", "do", "else", "elif"}
    | {"if", "while", "until", "!", "{", "-exec", "-execdir", "-ok"}
)
_SEPARATORS = frozenset(";&|()<>\n")


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

    def core(stage: _Stage) -> tuple[bool, str | None]:
        if stage.root == final_root:
            named = base_reference or final_base.reference
            found = base_is_core4 if base_is_core4 is not None else is_core4(named)
            return found, named
        return is_core4(stage.root), stage.root

    warnings: list[Warning] = []
    for stage in stages:
        broken, image = core(stage)
        if broken:
            warnings.extend(_apk(stage, image))
    warnings.extend(_scripts(stages, chain))
    warnings.extend(
        Warning(
            "EntrypointOverridden",
            command.start_line,
            "ENTRYPOINT replaces the base image's entrypoint, which ADE needs: it fetches the"
            " environment's files and runs /scripts/<operation>.sh",
        )
        for index in chain
        for command in stages[index].commands
        if command.cmd.upper() == "ENTRYPOINT"
    )
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


def shell_commands(command: dockerfile.Command) -> list[list[str]]:
    """The simple commands (argv lists) a RUN instruction runs, as far as words can tell."""
    if command.json:
        argv = list(command.value)
        if len(argv) >= 3 and posixpath.basename(argv[0]) in _SHELLS and argv[1] == "-c":
            return _split_shell(argv[2])
        return [argv] if argv else []
    text = " ".join(command.value)
    found = _split_shell(text)
    # `RUN <<EOF` and `RUN bash <<EOF` run their here-documents as shell scripts.
    if text.lstrip().startswith("<<") or (found and _program(found[0]) in _SHELLS):
        for heredoc in command.heredocs:
            found.extend(_split_shell(heredoc.content))
    return found


def _tokens(text: str) -> Iterator[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars="".join(sorted(_SEPARATORS)))
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        yield from lexer
    except ValueError:  # unbalanced quotes: fall back to plain words
        yield from text.split()


def _split_shell(text: str) -> list[list[str]]:
    commands: list[list[str]] = []
    expecting, after_prefix, in_comment = True, False, False
    for word in _tokens(text):
        if in_comment:
            if word == "\n":
                in_comment, expecting, after_prefix = False, True, False
            continue
        if word.startswith("#"):
            in_comment = True
            continue
        if set(word) <= _SEPARATORS:
            expecting, after_prefix = True, False
            continue
        if word in ("-exec", "-execdir", "-ok") or (expecting and word in _PREFIXES):
            expecting, after_prefix = True, True
            continue
        assignment = "=" in word and word.partition("=")[0].isidentifier()
        if expecting and (assignment or (after_prefix and word[:1] == "-")):
            continue  # NAME=value before a command, or an option of sudo/xargs/env
        if expecting:
            commands.append([word])
            expecting, after_prefix = False, False
        elif commands:
            commands[-1].append(word)
    return commands


def _program(argv: Sequence[str]) -> str:
    return posixpath.basename(argv[0]) if argv else ""


def _apk(stage: _Stage, image: str | None) -> Iterator[Warning]:
    base = image or "the base image"
    for command in stage.commands:
        if command.cmd.upper() != "RUN":
            continue
        if any(_program(argv) == "apk" for argv in shell_commands(command)):
            yield Warning(
                "ApkOnCore",
                command.start_line,
                f"RUN uses apk, but {base} is ADE core 4 or later (Azure Linux): install"
                " packages with tdnf",
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
                argvs = shell_commands(command)
                words = [word for argv in argvs for word in argv]
                on_scripts = _under_scripts(workdir) or any("/scripts" in w for w in words)
                named_in_run = named_in_run or on_scripts
                if on_scripts:
                    executable = executable or any(_makes_executable(a) for a in argvs)
                    normalized = normalized or any(_strips_cr(a) for a in argvs)
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


def _makes_executable(argv: Sequence[str]) -> bool:
    if _program(argv) != "chmod":
        return False
    for word in argv[1:]:
        if word.startswith("--") or (word.startswith("-") and set(word[1:]) <= set("RvcfH")):
            continue
        return grants_owner_execute(word)
    return False


def _strips_cr(argv: Sequence[str]) -> bool:
    program = _program(argv)
    if program == "dos2unix":
        return True
    return program in ("sed", "tr", "perl") and any("\\r" in w or "\r" in w for w in argv[1:])
