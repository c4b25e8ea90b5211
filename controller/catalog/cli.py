"""`python -m controller catalog plan`: the catalog write-back's edit engine on a local checkout.

It selects the manifests the globs name, sets the field to the image reference the operator would
write, and prints a unified diff (`--- a/path` / `+++ b/path`, `git apply` reads it) on standard
output; a summary and every problem go to standard error. `--write` writes the files; it never
commits. As in the operator, a file that cannot be edited is reported and the others proceed.

Exit status: 0 nothing would change, 1 changes shown (or written), 2 an error (a bad argument, a
glob that names no file, a refused path, an invalid manifest), each message naming the file.

The files are written before any diff is printed, so what `--write` does never depends on
standard output: `plan --write | head -3` writes every file; a reader that stops early only cuts
the diff short (no error, the exit status as if it had read everything). `--field` is checked as
the CRD checks spec.catalog.field, and an environment definition's own keys (`name`,
`templatePath`, ...) are refused. A digest (`--digest`, or `--image ...@sha256:...`) or
`--keep-tag` without `--pin Digest` is refused rather than dropped: with the default `--pin Tag`
the operator writes the tag, and a preview that silently wrote something else, or ignored what
was asked, would mislead.
"""

from __future__ import annotations

import argparse
import difflib
import os
import pathlib
import sys
from collections.abc import Sequence

from controller import errors
from controller.api import spec as model
from controller.catalog import formats, manifests, select, yamlpath

PROG = "ade-runner-operator catalog"
EXIT_UNCHANGED = 0
EXIT_CHANGED = 1
EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Preview or apply the catalog write-back on a local checkout."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser(
        "plan",
        help="show (or --write) the manifest edits for an image",
        description="Show the unified diff the write-back would make; exit 0 when nothing would "
        "change, 1 when something would (or did, with --write), 2 on an error.",
    )
    plan.add_argument("--repo", required=True, type=pathlib.Path, help="the catalog checkout")
    plan.add_argument(
        "--manifests",
        required=True,
        nargs="+",
        action="extend",
        metavar="GLOB",
        help="manifest globs relative to --repo (** matches folders), as spec.catalog.manifests",
    )
    plan.add_argument("--image", required=True, help="the image reference, registry/repository:tag")
    plan.add_argument(
        "--pin",
        type=model.PinMode,
        choices=list(model.PinMode),
        default=model.PinMode.TAG,
        help="write the tag (default) or the digest",
    )
    plan.add_argument("--digest", help="the image's digest (sha256:...), for --pin Digest")
    plan.add_argument(
        "--keep-tag",
        action="store_true",
        help="with --pin Digest, write registry/repository:tag@digest",
    )
    plan.add_argument(
        "--field",
        default="runner",
        help="the field to set (default: runner); with --format yaml a path such as image.tag"
        " or spec.template.spec.containers[name=app].image",
    )
    plan.add_argument(
        "--format",
        choices=["environment-definition", "yaml"],
        default="environment-definition",
        help="ADE environment definitions (default), or any YAML file (spec.catalog.format)",
    )
    plan.add_argument(
        "--repository-field",
        default="",
        help="with --format yaml: the path that gets the repository, --field getting the tag",
    )
    plan.add_argument("--write", action="store_true", help="write the files (never commits)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (without the program name); return the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors (2) and --help (0): argparse has printed them
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    target = formats.Target(
        model.CatalogFormat.YAML
        if args.format == "yaml"
        else model.CatalogFormat.ENVIRONMENT_DEFINITION,
        args.field,
        args.repository_field,
    )
    try:
        _check_arguments(args)
        value = manifests.reference(args.image, args.digest, args.pin, keep_tag=args.keep_tag)
        selection = select.select(args.repo, args.manifests)
    except (ValueError, errors.StalledError, OSError) as error:
        _problem(str(error))
        return EXIT_ERROR
    problems = [f"{glob}: no file matches (ManifestNotFound)" for glob in selection.unmatched]
    problems += [f"{refused.path}: refused: {refused.reason}" for refused in selection.refused]
    diffs: list[str] = []
    for path in selection.files:
        file = selection.root / path
        try:
            text = manifests.decode(file.read_bytes(), path=path)
            edit, _ = formats.write(text, target, value, path=path)
            if edit.changed:
                if args.write:
                    file.write_bytes(manifests.encode(edit.text))
                diffs.append(unified_diff(path, text, edit.text))
        except manifests.ManifestInvalid as error:
            problems.append(error.message)
        except OSError as error:
            problems.append(f"{path}: {error.strerror or error}")
    _output("".join(diffs))
    changed = len(diffs)
    verb = "written" if args.write else "would change"
    print(
        f"{PROG} plan: {value}: {changed} of {len(selection.files)} file(s) {verb}",
        file=sys.stderr,
    )
    for problem in problems:
        _problem(problem)
    if problems:
        return EXIT_ERROR
    return EXIT_CHANGED if changed else EXIT_UNCHANGED


def unified_diff(path: str, old: str, new: str) -> str:
    """A unified diff of one file, as `git diff` prints it (a missing final newline is marked)."""
    lines = difflib.unified_diff(_lines(old), _lines(new), fromfile=f"a/{path}", tofile=f"b/{path}")
    return "".join(
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines
    )


def _lines(text: str) -> list[str]:
    """Lines split at "\\n" only (a "\\r" stays in its line), each with its line ending."""
    lines = [f"{line}\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse what the operator would refuse or what would be ignored (see the module
    docstring); ValueError with a one-line message naming the option."""
    if args.repository_field and args.format != "yaml":
        raise ValueError("--repository-field needs --format yaml")
    if args.format != "yaml":
        problem = manifests.field_problem(args.field)
        if problem is not None:
            raise ValueError(f"--field {problem}")
    else:
        for option, path in (
            ("--field", args.field),
            ("--repository-field", args.repository_field),
        ):
            if option == "--field" or path:
                try:
                    yamlpath.parse_path(path)
                except ValueError as error:
                    raise ValueError(f"{option} {error}") from None
    if args.pin is model.PinMode.TAG:
        if args.digest is not None or "@" in args.image:
            raise ValueError(
                "a digest is given but --pin is Tag, which writes the tag only: add --pin Digest"
                " to write the digest (--keep-tag to keep the tag too), or leave the digest out"
            )
        if args.keep_tag:
            raise ValueError("--keep-tag needs --pin Digest")


def _output(text: str) -> None:
    """Write the diff as UTF-8 bytes whatever the locale (a manifest may hold any character).

    A reader that has gone (`| head`) ends the output quietly: the files are already written,
    and standard output is pointed at /dev/null so that the interpreter's last flush cannot
    fail either."""
    if not text:
        return
    try:
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        buffer.write(text.encode("utf-8"))
        buffer.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor behind sys.stdout (a test's capture)
            pass


def _problem(message: str) -> None:
    print(f"{PROG} plan: error: {message}", file=sys.stderr)
