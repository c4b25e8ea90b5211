"""`ade-runner-operator lint` and `verify`: the operator's checks for runner authors, no cluster.

- `lint [DOCKERFILE|-] [--build-arg K=V ...] [--target STAGE] [--format text|json]`: the image
  the final stage is built FROM and every finding (rule, line, message), by the engine whose
  findings the operator writes into `status.warnings` (`lint.lint`, `lint.as_status`): the same
  file says the same thing in both. Exit 0 clean, 1 findings, 2 unreadable input.
- `verify IMAGE [--anonymous | --username U --password-stdin | --docker-config FILE]
  [--base IMAGE] [--platform P] [--format text|json]`: ADE conformance read from the registry
  layer by layer, top down, as the operator's verify step does, with what was read. Exit 0
  conformant, 1 not conformant (each failure named), 2 the image cannot be reached or read.

Both print one line on bad input (to standard error, exit 2) and import only what they use
(`verify` the registry client, `lint` neither), so they answer at once in a CI step. Without
credentials, `verify` reads `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`) when it
exists, as docker does; loopback registries are spoken to over plain HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
PROG = "ade-runner-operator"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2 (its own is 2 too, with the usage)."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{self.prog}: {message}")


def _fail(message: str) -> NoReturn:
    print(message.splitlines()[0] if message else "error", file=sys.stderr)
    raise SystemExit(EXIT_ERROR)


def _formats(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


# -- lint --------------------------------------------------------------------------------------


def _lint_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"{PROG} lint",
        description="Lint a runner Dockerfile for what breaks ADE runners (the operator's rules).",
    )
    parser.add_argument(
        "dockerfile", nargs="?", default="Dockerfile", help="a file, or - for standard input"
    )
    parser.add_argument(
        "--build-arg", action="append", default=[], metavar="K=V", help="as docker build's"
    )
    parser.add_argument("--target", help="the stage to build (default: the last)")
    _formats(parser)
    return parser


def lint_main(argv: Sequence[str]) -> int:
    from controller.builds import dockerfile
    from controller.conformance import lint

    args = _lint_parser().parse_args(argv)
    build_args = _build_args(args.build_arg)
    name = "standard input" if args.dockerfile == "-" else args.dockerfile
    text = _read(args.dockerfile)
    try:
        base = dockerfile.final_base_image(text, build_args=build_args, target=args.target)
        found = lint.lint(text, build_args=build_args, target=args.target)
    except dockerfile.DockerfileError as error:
        _fail(f"{name}: {error.message}")
    findings = [lint.as_status(warning) for warning in found]
    if args.format == "json":
        document = {"dockerfile": name, "baseImage": base.reference, "findings": findings}
        print(json.dumps(document, indent=2))
    else:
        print(f"{name}: FROM {base.reference or 'scratch'} (line {base.line})")
        for finding in findings:
            print(f"{name}:{finding['line']}: {finding['rule']}: {finding['message']}")
        print(f"{len(findings)} finding(s)" if findings else "no findings")
    return EXIT_FINDINGS if findings else EXIT_OK


def _build_args(items: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not name:
            _fail(f"--build-arg {item!r}: expected NAME=VALUE")
        # `--build-arg NAME` takes NAME from the environment, as docker build does
        values[name] = value if equals else os.environ.get(name, "")
    return values


def _read(path: str) -> str:
    try:
        raw = sys.stdin.buffer.read() if path == "-" else pathlib.Path(path).read_bytes()
    except OSError as error:
        _fail(f"{path}: cannot read it: {error.strerror or error}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{path}: not UTF-8 text")


# -- verify ------------------------------------------------------------------------------------


def _verify_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"{PROG} verify",
        description="Check a pushed image against ADE's runner rules, read from the registry.",
    )
    parser.add_argument("image", help="registry/repository[:tag][@digest]")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--anonymous", action="store_true", help="no credentials (as ADE pulls)")
    who.add_argument("--username", help="with --password-stdin")
    who.add_argument("--docker-config", metavar="FILE", help="a docker config.json to read")
    parser.add_argument("--password-stdin", action="store_true")
    parser.add_argument("--base", help="the base image, to check its entrypoint is kept")
    parser.add_argument("--platform", default="linux/amd64", help="of an index (ADE's default)")
    _formats(parser)
    return parser


def verify_main(argv: Sequence[str]) -> int:
    import asyncio

    args = _verify_parser().parse_args(argv)
    if args.password_stdin != bool(args.username):
        _fail(f"{PROG} verify: --username and --password-stdin go together")
    credentials = _credentials(args)
    try:
        report = asyncio.run(_check(args, credentials))
    except _Unreadable as error:
        _fail(f"{args.image}: {error}")
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return EXIT_OK if report["conformant"] else EXIT_FINDINGS


class _Unreadable(Exception):
    """The image cannot be reached or read (exit 2)."""


def _credentials(args: argparse.Namespace) -> Any:
    from controller.registry import auth

    try:
        if args.anonymous:
            return None
        if args.username:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                _fail(f"{PROG} verify: --password-stdin: nothing on standard input")
            # for the image's registry only (a --base elsewhere is read anonymously)
            return auth.CredentialStore(
                {_host(args.image): auth.Credentials(args.username, password)}
            )
        path = _docker_config_path(args.docker_config)
        if path is None:
            return None
        return auth.parse_docker_config(path.read_bytes())
    except OSError as error:
        _fail(f"{args.docker_config}: cannot read it: {error.strerror or error}")
    except ValueError as error:
        _fail(f"the docker config: {error}")


def _host(image: str) -> str:
    from controller.registry import reference

    try:
        return reference.parse(image).registry
    except ValueError as error:
        _fail(f"{PROG} verify: {error}")


def _docker_config_path(given: str | None) -> pathlib.Path | None:
    if given:
        return pathlib.Path(given)
    folder = os.environ.get("DOCKER_CONFIG") or str(pathlib.Path.home() / ".docker")
    path = pathlib.Path(folder) / "config.json"
    return path if path.is_file() else None


async def _check(args: argparse.Namespace, credentials: Any) -> dict[str, Any]:
    from controller.conformance import image
    from controller.registry import client as registry_client
    from controller.registry import reference

    try:
        reference.parse(args.image)
        if args.base:
            reference.parse(args.base)
    except ValueError as error:
        _fail(f"{PROG} verify: {error}")
    async with registry_client.RegistryClient(
        credentials=credentials, anonymous=args.anonymous, max_attempts=3
    ) as registry:
        try:
            report = await image.check_image(
                client=registry, image=args.image, base=args.base, platform=args.platform
            )
        except registry_client.RegistryError as error:
            raise _Unreadable(str(error)) from None
    return {
        "image": report.image,
        "conformant": report.conformant,
        "findings": [
            {"rule": str(finding.rule), "path": finding.path, "message": finding.message}
            for finding in report.findings
        ],
        "layersRead": report.layers_read,
        "layersTotal": report.layers_total,
        "bytesRead": report.bytes_read,
        "totalSize": report.total_size,
    }


def _print_report(report: dict[str, Any]) -> None:
    read = (
        f"read {report['layersRead']} of {report['layersTotal']} layer(s), "
        f"{report['bytesRead']} of {report['totalSize']} bytes"
    )
    if report["conformant"]:
        print(f"{report['image']}: an ADE runner ({read})")
        return
    print(f"{report['image']}: NOT an ADE runner ({read})")
    for finding in report["findings"]:
        where = f" {finding['path']}:" if finding["path"] else ""
        print(f"  {finding['rule']}:{where} {finding['message']}")
