"""What a RUN instruction's shell command runs, read from the shell's grammar. Pure.

`commands(script)` parses the script with `bashlex` and walks the tree: lists (`&&`, `||`, `;`),
pipelines, subshells and `{ }`, `if`/`elif`/`else`, `for`/`while`/`until`, functions and
`$(...)`. Each simple command is returned with the prefixes that only run it stripped (`sudo`,
`env`, `exec`, `command`, `nohup`, `time`, `nice`, `timeout`, `xargs`, `NAME=value`); `sh -c` /
`bash -c '...'` scripts (any nesting), `bash <<EOF` here-documents and `find ... -exec CMD {} +`
are followed too (`{}` becomes find's start paths, xargs' operands the words of the command
piping into it, a `for` variable its list). Each command carries:

- `cwd`: the directory a preceding `cd` in the same list moved to (relative to the Dockerfile's
  WORKDIR), or None;
- `conditional`: it may legitimately not run or fail: an alternative in an `||` list that also
  runs another package manager (`apk add x || tdnf install -y x`), a command after a test for a
  package manager or the distribution (`command -v apk && ...`, `which apk`, `[ -f
  /etc/alpine-release ]`, `grep alpine /etc/os-release`), after such a test that exits
  (`command -v apk || exit 0`), in a branch of an `if` whose condition is such a test, or in a
  function body (it runs where it is called);
- `exact`: False when bashlex could not parse the script (it refuses valid shell such as `[[ ]]`,
  `case`, `$(( ))`): the words are then split by `shlex` around `;`, `&&`, `|`, ..., every
  command is `conditional` if the text shows any alternative or test (`||`, `if`, `case`,
  `command -v`, `which`, `[`, another package manager), and callers treat such commands
  leniently (silence over guessing).
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh"})
PACKAGE_MANAGERS = frozenset(
    {"apk", "tdnf", "dnf", "microdnf", "yum", "apt-get", "apt", "zypper", "rpm"}
)
_TESTS = frozenset({"command", "which", "type", "hash", "test", "[", "grep", "stat", "ls"})
_DISTRIBUTION = re.compile(r"alpine|mariner|azurelinux|os-release", re.IGNORECASE)
# Option words of a prefix that take the next word as their value.
_PREFIX_VALUES: Mapping[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"}),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "-C", "-S", "--unset", "--chdir"}),
    "nice": frozenset({"-n"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "xargs": frozenset({"-I", "-n", "-P", "-L", "-s", "-d", "-E", "-a", "--arg-file"}),
    "exec": frozenset({"-a"}),
    "time": frozenset({"-f", "-o"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "nohup": frozenset(),
    "command": frozenset(),
    "builtin": frozenset(),
}
_FALLBACK_CONDITIONS = re.compile(
    r"\|\||\b(?:if|elif|else|case|which|type|hash|test)\b|\bcommand\s+-[vV]|\["
)
_SEPARATORS = frozenset(";&|()<>\n")
_HEREDOC = re.compile(r"(?<!<)<<(?!<)(-?)\s*(['\"]?)([A-Za-z_][\w.-]*)\2")
UNKNOWN = "$?"  # an operand the parse cannot know (xargs' input, an unset variable)


@dataclasses.dataclass(frozen=True)
class Command:
    """One simple command a script runs."""

    argv: tuple[str, ...]
    cwd: str | None = None
    conditional: bool = False
    exact: bool = True
    outputs: tuple[str, ...] = ()  # files its output is redirected to

    @property
    def program(self) -> str:
        return posixpath.basename(self.argv[0]) if self.argv else ""

    def is_test(self) -> bool:
        """Whether it tests for a package manager or the distribution (`command -v apk`)."""
        if self.program not in _TESTS:
            return False
        if self.program == "command" and (len(self.argv) < 2 or self.argv[1] not in ("-v", "-V")):
            return False
        return any(
            posixpath.basename(word) in PACKAGE_MANAGERS or _DISTRIBUTION.search(word)
            for word in self.argv[1:]
        )


@dataclasses.dataclass(frozen=True)
class _Context:
    cwd: str | None = None
    conditional: bool = False
    variables: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    stdin: tuple[str, ...] = ()  # the words piped into this command (for xargs)


def commands(script: str) -> list[Command]:
    """The simple commands `script` runs, in order."""
    return _script(script, _Context())


def argv_commands(argv: Sequence[str]) -> list[Command]:
    """The simple commands an exec-form RUN (`["bash", "-c", "..."]`) runs."""
    return list(_simple(list(argv), _Context(), ()))


def heredoc_script(text: str) -> str | None:
    """A here-document's text as a shell script, or None when its `#!` names another
    interpreter (`#!/usr/bin/env python3`)."""
    first = text.lstrip().split("\n", 1)[0]
    if not first.startswith("#!"):
        return text
    words = first[2:].split()
    if words and posixpath.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return text if words and posixpath.basename(words[0]) in SHELLS else None


def _script(script: str, ctx: _Context) -> list[Command]:
    import bashlex  # noqa: PLC0415 - on the first lint, not at start-up (megabytes of tables)

    try:
        # bashlex looks for a quoted delimiter (`<<'EOF'`) with its quotes: unquote it.
        trees = bashlex.parse(_HEREDOC.sub(r"<<\1\3", script))
        return _groups([[("", tree)] for tree in trees], ctx)
    # bashlex raises ParsingError, NotImplementedError (`case`, `$(( ))`) and, on some valid
    # shell, its own internal errors: any of them means "not understood", never a finding.
    except Exception:
        return _fallback(script, ctx)


# -- the tree ----------------------------------------------------------------------------------


def _node(node: Any, ctx: _Context) -> list[Command]:
    kind = node.kind
    if kind == "list":
        return _list(node.parts, ctx)
    if kind == "pipeline":
        return _pipeline(node.parts, ctx)
    if kind == "command":
        return _command(node, ctx)
    if kind == "compound":
        return [c for part in node.list for c in _node(part, ctx)]
    if kind == "if":
        return _if(node.parts, ctx)
    if kind == "for":
        return _for(node.parts, ctx)
    if kind in ("while", "until"):
        return [c for part in node.parts for c in _node(part, ctx)]
    if kind == "function":  # runs only where it is called, perhaps in a tested branch
        inner = dataclasses.replace(ctx, conditional=True)
        return [c for part in node.parts for c in _node(part, inner)]
    if kind in ("reservedword", "operator", "pipe", "word", "redirect"):
        return []
    raise ValueError(f"unexpected shell node {kind}")


def _list(parts: Sequence[Any], ctx: _Context) -> list[Command]:
    # And-or lists (`a && b || c`) separated by `;`, `&` or newlines.
    groups: list[list[tuple[str, Any]]] = [[]]
    op = ""
    for part in parts:
        if part.kind == "operator":
            if part.op in ("&&", "||"):
                op = part.op
            else:
                groups.append([])
                op = ""
            continue
        groups[-1].append((op, part))
    return _groups(groups, ctx)


def _groups(groups: Sequence[Sequence[tuple[str, Any]]], ctx: _Context) -> list[Command]:
    """Commands of and-or lists run one after the other (`cd` carries over)."""
    found: list[Command] = []
    cwd, conditional = ctx.cwd, ctx.conditional
    for group in groups:
        ran: list[list[Command]] = []
        tested = False
        for _, part in group:
            inner = _node(part, dataclasses.replace(ctx, cwd=cwd, conditional=conditional))
            if tested:
                inner = [dataclasses.replace(c, conditional=True) for c in inner]
            tested = tested or any(c.is_test() for c in inner)
            ran.append(inner)
            if part.kind == "command" and inner and inner[-1].program == "cd":
                cwd = _cd(cwd, inner[-1].argv)  # (after the commands of its substitutions)
        flat = [c for inner in ran for c in inner]
        alternatives = any(op == "||" for op, _ in group) and (
            len({c.program for c in flat if c.program in PACKAGE_MANAGERS}) > 1
        )
        if alternatives:
            flat = [dataclasses.replace(c, conditional=True) for c in flat]
        found.extend(flat)
        # `command -v apk || exit 0`: what follows runs only where the test passed
        conditional = conditional or (tested and any(c.program in ("exit", "return") for c in flat))
    return found


def _cd(cwd: str | None, argv: Sequence[str]) -> str | None:
    targets = [word for word in argv[1:] if not word.startswith("-")]
    if not targets or "$" in targets[0]:
        return "/" + UNKNOWN  # `cd`, `cd -` or `cd "$DIR"`: not known here
    return posixpath.join(cwd or "", targets[0]) or None


def _pipeline(parts: Sequence[Any], ctx: _Context) -> list[Command]:
    found: list[Command] = []
    before: list[Command] = []
    for part in parts:
        if part.kind in ("pipe", "reservedword"):
            continue
        stdin = _operands(before[-1]) if before else ()
        before = _node(part, dataclasses.replace(ctx, stdin=stdin))
        found.extend(before)
    return found


def _operands(command: Command) -> tuple[str, ...]:
    if command.program == "find":
        return tuple(_find_roots(command.argv))
    return tuple(word for word in command.argv[1:] if not word.startswith("-"))


def _command(node: Any, ctx: _Context) -> list[Command]:
    argv: list[str] = []
    outputs: list[str] = []
    heredocs: list[str] = []
    found: list[Command] = []
    for part in node.parts:
        if part.kind == "word":
            found.extend(_substitutions(part, ctx))
            argv.extend(_expand(part.word, ctx))
        elif part.kind == "redirect":
            target = part.output
            if getattr(part, "heredoc", None) is not None:
                value = part.heredoc.value
                heredocs.append(value.rsplit("\n", 1)[0] if "\n" in value else "")
            elif part.type in (">", ">>", ">|", "&>") and hasattr(target, "word"):
                outputs.append(target.word)
    found.extend(_simple(argv, ctx, tuple(outputs), heredocs))
    return found


def _substitutions(word: Any, ctx: _Context) -> list[Command]:
    found: list[Command] = []
    for part in getattr(word, "parts", ()) or ():
        if part.kind in {"commandsubstitution", "processsubstitution"}:
            found.extend(_node(part.command, ctx))
    return found


def _expand(word: str, ctx: _Context) -> list[str]:
    match = re.fullmatch(r"\$(?:\{(\w+)\}|(\w+))", word)
    if match:
        name = match.group(1) or match.group(2)
        if name in ctx.variables:
            return list(ctx.variables[name])
    return [word]


def _if(parts: Sequence[Any], ctx: _Context) -> list[Command]:
    conditions: list[Command] = []
    bodies: list[Any] = []
    condition_next = False
    for part in parts:
        if part.kind == "reservedword":
            condition_next = part.word in ("if", "elif")
            continue
        if condition_next:
            conditions.extend(_node(part, ctx))
        else:
            bodies.append(part)
    tested = any(c.is_test() for c in conditions)
    inner = dataclasses.replace(ctx, conditional=ctx.conditional or tested)
    return conditions + [c for body in bodies for c in _node(body, inner)]


def _for(parts: Sequence[Any], ctx: _Context) -> list[Command]:
    words = [p for p in parts if p.kind == "word"]
    body = [p for p in parts if p.kind not in ("word", "reservedword")]
    variables = dict(ctx.variables)
    if words:
        variables[words[0].word] = tuple(w.word for w in words[1:]) or (UNKNOWN,)
    inner = dataclasses.replace(ctx, variables=variables)
    return [c for part in body for c in _node(part, inner)]


# -- one simple command ------------------------------------------------------------------------


def _simple(
    argv: list[str], ctx: _Context, outputs: tuple[str, ...], heredocs: Sequence[str] = ()
) -> Iterator[Command]:
    argv = _strip_assignments(argv)
    while argv and _is_prefix(argv):
        program = posixpath.basename(argv[0])
        argv = _after_options(argv, _PREFIX_VALUES[program])
        if program == "env":
            argv = _strip_assignments(argv)
        elif program == "timeout" and argv:
            argv = argv[1:]  # the duration
        elif program == "xargs" and argv:
            argv = [*argv, *(ctx.stdin or (UNKNOWN,))]
    if not argv:
        return
    program = posixpath.basename(argv[0])
    if program in SHELLS:
        yield from _shell(argv, ctx, heredocs, outputs)
        return
    yield Command(tuple(argv), ctx.cwd, ctx.conditional, True, outputs)
    if program == "find":
        yield from _find_exec(argv, ctx)


def _strip_assignments(argv: list[str]) -> list[str]:
    index = 0
    while index < len(argv) and re.match(r"[A-Za-z_]\w*=", argv[index]):
        index += 1
    return argv[index:]


def _is_prefix(argv: Sequence[str]) -> bool:
    program = posixpath.basename(argv[0])
    if program not in _PREFIX_VALUES or len(argv) < 2:
        return False
    return not (program == "command" and argv[1] in ("-v", "-V"))


def _after_options(argv: Sequence[str], with_values: frozenset[str]) -> list[str]:
    index = 1
    while index < len(argv) and argv[index].startswith("-") and argv[index] != "-":
        if argv[index] == "--":
            return list(argv[index + 1 :])
        index += 2 if argv[index] in with_values else 1
    return list(argv[index:])


def _shell(
    argv: Sequence[str], ctx: _Context, heredocs: Sequence[str], outputs: tuple[str, ...]
) -> Iterator[Command]:
    index, script_follows = 1, False
    while index < len(argv) and argv[index][:1] in ("-", "+") and argv[index] not in ("-", "--"):
        word = argv[index]
        letters = "" if word.startswith("--") else word[1:]
        script_follows = script_follows or "c" in letters
        # `-o pipefail`, `-euo pipefail`: o and O take the next word
        index += 2 if ("o" in letters or "O" in letters) else 1
    if script_follows and index < len(argv):
        yield from _script(argv[index], ctx)
    elif index >= len(argv) and heredocs:
        for text in heredocs:
            script = heredoc_script(text)
            if script is not None:
                yield from _script(script, ctx)
    else:  # `bash deploy.sh`: runs a file
        yield Command(tuple(argv), ctx.cwd, ctx.conditional, True, outputs)


def _find_roots(argv: Sequence[str]) -> list[str]:
    roots: list[str] = []
    for word in argv[1:]:
        if word in ("-H", "-L", "-P"):
            continue
        if word.startswith("-") or word in ("(", "!", "\\("):
            break
        roots.append(word)
    return roots or ["."]


def _find_exec(argv: Sequence[str], ctx: _Context) -> Iterator[Command]:
    roots = _find_roots(argv)
    index = 0
    while index < len(argv):
        if argv[index] in ("-exec", "-execdir", "-ok", "-okdir"):
            end = index + 1
            while end < len(argv) and argv[end] not in (";", "+", "\\;"):
                end += 1
            inner = [
                w for word in argv[index + 1 : end] for w in (roots if word == "{}" else [word])
            ]
            yield from _simple(inner, ctx, ())
            index = end
        index += 1


# -- when bashlex cannot parse -----------------------------------------------------------------


def _fallback(script: str, ctx: _Context) -> list[Command]:
    argvs = _split(_without_heredocs(script))
    others = {posixpath.basename(a[0]) for a in argvs} & PACKAGE_MANAGERS
    conditional = ctx.conditional or bool(_FALLBACK_CONDITIONS.search(script)) or len(others) > 1
    return [Command(tuple(argv), ctx.cwd, conditional, False) for argv in argvs]


def _without_heredocs(script: str) -> str:
    """The script without its here-documents' bodies (data, not commands)."""
    kept: list[str] = []
    pending: list[str] = []
    for line in script.split("\n"):
        if pending:
            if line.strip() == pending[0]:
                pending.pop(0)
            continue
        kept.append(line)
        pending.extend(match[3] for match in _HEREDOC.finditer(line))
    return "\n".join(kept)


def _tokens(text: str) -> Iterator[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars="".join(sorted(_SEPARATORS)))
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        yield from list(lexer)
    except ValueError:  # unbalanced quotes: plain words
        yield from text.split()


def _split(text: str) -> list[list[str]]:
    """Words split around separators; the first word after one starts a command (prefixes and
    `NAME=value` skipped)."""
    found: list[list[str]] = []
    expecting, in_comment = True, False
    for word in _tokens(text):
        if in_comment:
            in_comment = word != "\n"
            expecting = expecting or not in_comment
            continue
        if word.startswith("#") and expecting:
            in_comment = True
            continue
        if set(word) <= _SEPARATORS:
            expecting = True
            continue
        if word in ("-exec", "-execdir", "-ok", "-okdir") or (
            expecting
            and (word in _PREFIX_VALUES or word in ("then", "do", "else", "elif", "if", "while"))
        ):
            expecting = True
            continue
        if expecting and (re.match(r"[A-Za-z_]\w*=", word) or word.startswith("-")):
            continue
        if expecting:
            found.append([word])
            expecting = False
        elif found:
            found[-1].append(word)
    return found
