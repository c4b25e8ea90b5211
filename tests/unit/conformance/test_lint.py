"""Dockerfile lint for known ADE breakages (controller.conformance.lint), by rule and line."""

from __future__ import annotations

import pytest

from controller.builds import dockerfile as build_dockerfile
from controller.conformance import lint

CORE = "mcr.microsoft.com/deployment-environments/runners/core"

ADE = f"""\
ARG BASE_IMAGE={CORE}
ARG IMAGE_VERSION=latest
FROM ${{BASE_IMAGE}}:${{IMAGE_VERSION}}
WORKDIR /
ARG IMAGE_VERSION
RUN tdnf install -y jq && tdnf clean all
COPY scripts/* /scripts/
RUN find /scripts/ -type f -iname "*.sh" -exec dos2unix '{{}}' '+'
RUN find /scripts/ -type f -iname "*.sh" -exec chmod +x {{}} \\;
"""

TAIL = "COPY --chmod=755 scripts/ /scripts/\nRUN dos2unix /scripts/*.sh\n"


def found(text: str, **kwargs: object) -> list[tuple[str, int]]:
    build_args = kwargs.pop("build_args", {})
    assert isinstance(build_args, dict)
    warnings = lint.lint(text, build_args=build_args, **kwargs)  # type: ignore[arg-type]
    return [(w.rule, w.line) for w in warnings]


def test_ades_own_dockerfile_is_clean() -> None:
    assert found(ADE) == []


@pytest.mark.parametrize(
    ("image", "core4"),
    [
        (f"{CORE}:latest", True),
        (CORE, True),
        (f"{CORE}:4.0", True),
        (f"{CORE}:4.1.2", True),
        (f"{CORE}:v4", True),
        (f"{CORE}:12", True),
        (f"{CORE}:3.9", False),
        (f"{CORE}:2.7.0", False),
        (f"{CORE}:stable", False),
        (f"{CORE}@sha256:{'a' * 64}", False),
        ("contoso.azurecr.io/mirror/deployment-environments/runners/core:latest", True),
        ("contoso.azurecr.io/ade-core:latest", False),
        ("mcr.microsoft.com/deployment-environments/runners/arm:latest", False),
        ("alpine:3.20", False),
        (None, False),
        ("Not A Reference", False),
    ],
)
def test_core_4_is_recognized_by_repository_and_tag(image: str | None, core4: bool) -> None:
    assert lint.is_core4(image) is core4


def test_apk_on_core_latest_is_named_with_the_run_line() -> None:
    text = f"FROM {CORE}:latest\nRUN apk add --no-cache \\\n    curl \\\n    jq\n" + TAIL
    warnings = lint.lint(text, build_args={})
    assert [(w.rule, w.line, w.severity) for w in warnings] == [
        ("ApkOnCore", 2, lint.Severity.WARNING)
    ]
    assert warnings[0].message == (
        f"RUN uses apk, but {CORE}:latest is ADE core 4 or later (Azure Linux, no apk):"
        " install packages with tdnf, or try both (`apk add x || tdnf install -y x`)"
    )


def test_the_arg_defaults_and_build_args_decide_the_version() -> None:
    text = ADE + "RUN apk add git\n"
    assert found(text) == [("ApkOnCore", 10)]
    assert found(text, build_args={"IMAGE_VERSION": "3.1.0"}) == []
    assert found(text, build_args={"IMAGE_VERSION": "4.2"}) == [("ApkOnCore", 10)]


def test_a_renamed_mirror_needs_the_callers_flag() -> None:
    text = "FROM contoso.azurecr.io/ade/base:1.0\nRUN apk add git\n" + TAIL
    assert found(text) == []
    assert found(text, base_is_core4=True) == [("ApkOnCore", 2)]
    assert found(f"FROM {CORE}:latest\nRUN apk add git\n" + TAIL, base_is_core4=False) == []


def test_the_callers_base_reference_replaces_the_named_one() -> None:
    text = "FROM contoso.azurecr.io/ade/base:1.0\nRUN apk add git\n" + TAIL
    assert found(text, base_reference=f"{CORE}:4.0") == [("ApkOnCore", 2)]


@pytest.mark.parametrize(
    "run",
    [
        "RUN apk add git",
        'RUN ["apk", "add", "git"]',
        'RUN ["/bin/sh", "-c", "set -e; apk add git"]',
        "RUN set -eux; \\\n    apk update && apk add git",
        "RUN echo start && A=1 sudo -E /sbin/apk add git",
        "RUN if true; then apk add git; fi",
        "RUN <<EOF\nset -e\napk add git\nEOF",
        "RUN --mount=type=cache,target=/var/cache apk add git",
        "RUN ls | xargs -r apk add",
    ],
)
def test_apk_is_found_where_the_shell_runs_it(run: str) -> None:
    assert found(f"FROM {CORE}:4.0\n{run}\n{TAIL}") == [("ApkOnCore", 2)]


@pytest.mark.parametrize(
    "run",
    [
        "RUN echo apk add git",
        "RUN cat /etc/apk/repositories || true",
        "RUN tdnf install -y git # apk add git",
        "RUN grep apk /etc/os-release",
        'RUN ["echo", "apk"]',
        "RUN python3 <<EOF\nprint('x')\nEOF",
    ],
)
def test_apk_as_a_mere_word_is_not_a_finding(run: str) -> None:
    assert found(f"FROM {CORE}:4.0\n{run}\n{TAIL}") == []


def test_apk_in_a_builder_stage_of_another_base_is_fine() -> None:
    text = (
        "FROM alpine:3.20 AS tools\n"
        "RUN apk add curl\n"
        f"FROM {CORE}:latest\n"
        "COPY --from=tools /usr/bin/curl /usr/local/bin/\n" + TAIL
    )
    assert found(text) == []


def test_apk_in_any_stage_built_on_core_4_breaks_the_build() -> None:
    text = (
        f"FROM {CORE}:latest AS tools\n"
        "RUN apk add curl\n"
        "FROM tools AS more\n"
        "RUN apk add jq\n"
        f"FROM {CORE}:latest\n" + TAIL
    )
    assert found(text) == [("ApkOnCore", 2), ("ApkOnCore", 4)]


def test_scripts_not_copied_is_reported_on_the_final_from() -> None:
    text = f"FROM alpine AS b\nRUN true\nFROM {CORE}:latest\nRUN tdnf install -y jq\n"
    warnings = lint.lint(text, build_args={})
    assert [(w.rule, w.line) for w in warnings] == [("ScriptsNotCopied", 3)]
    assert "ADE runs /scripts/deploy.sh and /scripts/delete.sh" in warnings[0].message


@pytest.mark.parametrize(
    "copy",
    [
        "COPY --chmod=755 . /scripts",
        "WORKDIR /scripts\nCOPY --chmod=755 . .",
        "WORKDIR /\nWORKDIR scripts\nCOPY --chmod=0755 deploy.sh delete.sh ./",
        'COPY --chmod=u+x ["deploy.sh", "delete.sh", "/scripts/"]',
        "ADD --chmod=755 scripts.tar /scripts/",
    ],
)
def test_copies_under_scripts_are_found(copy: str) -> None:
    assert found(f"FROM {CORE}:latest\n{copy}\nRUN dos2unix /scripts/*.sh\n") == []


def test_scripts_made_by_run_are_not_reported_as_missing() -> None:
    text = f"FROM {CORE}:latest\nRUN mkdir -p /scripts && printf 'x' > /scripts/deploy.sh\n"
    assert found(text) == []


def test_not_executable_and_line_endings_point_at_the_copy() -> None:
    text = f"FROM {CORE}:latest\nRUN tdnf install -y jq\nCOPY scripts/ /scripts/\n"
    warnings = lint.lint(text, build_args={})
    assert [(w.rule, w.line, w.severity) for w in warnings] == [
        ("ScriptsNotExecutable", 3, lint.Severity.WARNING),
        ("ScriptsLineEndings", 3, lint.Severity.INFO),
    ]
    assert "`chmod +x`" in warnings[0].message
    assert "dos2unix" in warnings[1].message


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ("COPY --chmod=644 s/ /scripts/\nRUN dos2unix /scripts/*", ["ScriptsNotExecutable"]),
        ("COPY s/ /scripts/\nRUN chmod -R u+x /scripts && dos2unix /scripts/*", []),
        (
            "COPY s/ /scripts/\nRUN chmod 644 /scripts/* && dos2unix /scripts/*",
            ["ScriptsNotExecutable"],
        ),
        (
            "COPY s/ /scripts/\nRUN chmod +x /opt/tool && dos2unix /scripts/*",
            ["ScriptsNotExecutable"],
        ),
        ("COPY s/ /scripts/\nWORKDIR /scripts\nRUN chmod 755 *.sh && dos2unix *.sh", []),
        ("COPY --chmod=755 s/ /scripts/\nRUN sed -i 's/\\r$//' /scripts/*.sh", []),
        (
            "COPY --chmod=755 s/ /scripts/\nRUN sed -i 's/a/b/' /scripts/*.sh",
            ["ScriptsLineEndings"],
        ),
        ("COPY --chmod=755 s/ /scripts/\nRUN dos2unix /opt/other.sh", ["ScriptsLineEndings"]),
    ],
)
def test_chmod_and_line_ending_normalization(steps: str, expected: list[str]) -> None:
    assert [rule for rule, _ in found(f"FROM {CORE}:latest\n{steps}\n")] == expected


def test_the_last_entrypoint_of_the_final_stage_or_its_parents_counts() -> None:
    text = (
        "FROM alpine AS builder\n"
        'ENTRYPOINT ["/builder"]\n'
        f"FROM {CORE}:latest AS runner\n"
        'ENTRYPOINT ["/bin/sh"]\n'
        "FROM runner\n" + TAIL + "ENTRYPOINT /x\n"
    )
    warnings = lint.lint(text, build_args={})
    assert [(w.rule, w.line) for w in warnings] == [
        ("EntrypointOverridden", 8),
    ]
    assert "ADE needs" in warnings[0].message


def test_target_selects_the_final_stage() -> None:
    text = f"FROM {CORE}:latest AS runner\n" + TAIL + 'FROM alpine AS debug\nENTRYPOINT ["/x"]\n'
    # the debug stage is not built on an ADE image: its ENTRYPOINT is its own business
    assert found(text) == [("ScriptsNotCopied", 4)]
    assert found(text, target="runner") == []


def test_an_unparsable_dockerfile_raises() -> None:
    with pytest.raises(build_dockerfile.DockerfileError):
        lint.lint("RUN true\n", build_args={})


# Found by tests/unit/properties/test_dockerfile.py: the linter must read what the resolver reads.


@pytest.mark.parametrize("separator", ["\x1e", "\x0c", "\u2028", "\x85"])
def test_lines_are_cut_at_newlines_only_as_buildkit_counts_them(separator: str) -> None:
    """`splitlines` also split at these, so a stage was cut before the wrong FROM ("the
    Dockerfile has no FROM instruction" for a Dockerfile the resolver read)."""
    text = f"# a{separator}comment\nFROM alpine AS one\nFROM {CORE}:latest\n{TAIL}"
    assert found(text) == []


def test_an_earlier_stage_that_is_no_reference_does_not_stop_the_lint() -> None:
    """A stage the build skips may expand to no reference; the final one is what counts."""
    text = f"FROM ${{BASE_IMAGE}}:${{IMAGE_VERSION}} AS unused\nFROM {CORE}:latest\n{TAIL}"
    assert build_dockerfile.final_base_image(text, build_args={}).reference == f"{CORE}:latest"
    assert found(text) == []


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("755", True),
        ("0700", True),
        ("100", True),
        ("644", False),
        ("0655", False),
        ("+x", True),
        ("u+x", True),
        ("a+rx", True),
        ("ug=rwx,o=r", True),
        ("go+x", False),
        ("u-x", False),
        ("+r", False),
        ("999", False),
    ],
)
def test_chmod_modes(mode: str, expected: bool) -> None:
    assert lint.grants_owner_execute(mode) is expected


# -- issue 13: right on real Dockerfiles ---------------------------------------------------------


@pytest.mark.parametrize(
    "run",
    [
        "RUN apk add curl || tdnf install -y curl",
        "RUN (apk add --no-cache curl) || (tdnf install -y curl && tdnf clean all)",
        "RUN if command -v apk; then apk add curl; else tdnf install -y curl; fi",
        "RUN which apk && apk add curl || tdnf install -y curl",
        "RUN [[ -f /etc/alpine-release ]] && apk add curl || tdnf install -y curl",
        "RUN <<EOF\nif command -v apk >/dev/null; then\n  apk add curl\nfi\nEOF",
    ],
)
def test_apk_tried_as_an_alternative_or_behind_a_test_is_fine(run: str) -> None:
    assert found(f"FROM {CORE}:latest\n{run}\n{TAIL}") == []


@pytest.mark.parametrize(
    "run",
    [
        "RUN bash -c 'apk add jq'",
        "RUN sh -c \"bash -c 'apk add jq'\"",
        'RUN ["/bin/bash", "-o", "pipefail", "-c", "apk add jq | tee log"]',
        "RUN bash -eux <<EOF\napk add jq\nEOF",
        "RUN apk add jq || true",
        "RUN apk update || apk add jq",
        "RUN find /tmp -name pkgs -exec xargs -a {} apk add \\;",
        "RUN echo $(( 2 * 2 )) && apk add jq",  # bashlex refuses; the fallback still sees it
    ],
)
def test_apk_that_must_run_is_found_in_wrappers(run: str) -> None:
    assert found(f"FROM {CORE}:latest\n{run}\n{TAIL}") == [("ApkOnCore", 2)]


@pytest.mark.parametrize(
    ("image", "broken"),
    [
        ("mcr.microsoft.com/azure-cli", True),
        ("mcr.microsoft.com/azure-cli:latest", True),
        ("mcr.microsoft.com/azure-cli:2.67.0", True),
        ("mcr.microsoft.com/azure-cli:2.70.0", True),
        ("mcr.microsoft.com/azure-cli:3.0.0", True),
        ("mcr.microsoft.com/azure-cli:2.40.0-cbl-mariner2.0", True),
        ("mcr.microsoft.com/azure-cli:azurelinux3.0", True),
        ("mcr.microsoft.com/azure-cli:2.66.0", False),
        ("mcr.microsoft.com/azure-cli:2.9.1", False),
        (f"mcr.microsoft.com/azure-cli@sha256:{'a' * 64}", False),
        ("contoso.azurecr.io/mirror/azure-cli:2.68.0", True),
        ("contoso.azurecr.io/azure-cli-tools:latest", False),
    ],
)
def test_apk_on_azure_cli_from_2_67(image: str, broken: bool) -> None:
    assert lint.is_azure_linux_cli(image) is broken
    warnings = lint.lint(f"FROM {image}\nRUN apk add jq\n{TAIL}", build_args={})
    assert [(w.rule, w.line) for w in warnings] == ([("ApkOnCore", 2)] if broken else [])
    if broken:
        assert warnings[0].message.startswith(f"RUN uses apk, but {image} is azure-cli 2.67.0")


@pytest.mark.parametrize(
    ("base", "entrypoint", "expected"),
    [
        (f"{CORE}:latest", 'ENTRYPOINT ["/entrypoint.sh"]', []),
        (f"{CORE}:latest", "ENTRYPOINT /entrypoint.sh", []),
        (f"{CORE}:latest", 'ENTRYPOINT ["/entrypoint.sh", "--debug"]', [4]),
        (f"{CORE}:3.9", 'ENTRYPOINT ["/bin/bash"]', [4]),
        ("mcr.microsoft.com/deployment-environments/runners/arm:latest", "ENTRYPOINT []", [4]),
        ("mcr.microsoft.com/azure-cli:2.70.0", 'ENTRYPOINT ["/usr/local/bin/run.sh"]', []),
        ("alpine:3.20", 'ENTRYPOINT ["/bin/sh"]', []),
    ],
)
def test_entrypoint_only_replaces_an_ade_base_images(
    base: str, entrypoint: str, expected: list[int]
) -> None:
    text = f"FROM {base}\n{TAIL}{entrypoint}\n"
    assert found(text) == [("EntrypointOverridden", line) for line in expected]


def test_the_callers_flag_makes_a_renamed_base_an_ade_one_for_entrypoint() -> None:
    text = f'FROM contoso.azurecr.io/ade/base:1.0\n{TAIL}ENTRYPOINT ["/x"]\n'
    assert found(text) == []
    assert found(text, base_is_core4=True) == [("EntrypointOverridden", 4)]


def test_a_redeclared_entrypoint_after_another_one_restores_it() -> None:
    text = f'FROM {CORE}:latest AS a\nENTRYPOINT ["/x"]\nFROM a\n{TAIL}ENTRYPOINT /entrypoint.sh\n'
    assert found(text) == []


@pytest.mark.parametrize(
    ("run", "executable"),
    [
        ("chmod +x /scripts", True),
        ("chmod +x /scripts/*.sh", True),
        ("chmod 755 /scripts/deploy.sh /scripts/delete.sh", True),
        ("chmod -R 755 /", True),
        ("chmod +x /usr/local/bin/tool && ls /scripts", False),
        ("chmod +x /usr/local/bin/tool /opt/scripts/x.sh", False),
        ("chmod 755 /", False),
        ("cd /scripts && chmod +x deploy.sh delete.sh", True),
        ("cd /opt && chmod +x *.sh && ls /scripts", False),
        ("find /scripts -type f -exec chmod +x {} +", True),
        ("find /opt -type f -exec chmod +x {} + && cat /scripts/deploy.sh", False),
        ("find /scripts -name '*.sh' | xargs chmod +x", True),
        ("for f in /scripts/*.sh; do chmod +x $f; done", True),
        ("for f in /opt/*.sh; do chmod +x $f; done", False),
        ("chmod +x $SCRIPTS/*.sh", True),  # unknown: silence
        ("bash -c 'chmod u+x /scripts/*'", True),
        ("[[ -d /scripts ]] && chmod +x /usr/local/bin/tool", True),  # fallback: silence
    ],
)
def test_chmod_must_reach_the_scripts(run: str, executable: bool) -> None:
    text = f"FROM {CORE}:latest\nCOPY s/ /scripts/\nRUN dos2unix /scripts/*.sh\nRUN {run}\n"
    assert found(text) == ([] if executable else [("ScriptsNotExecutable", 2)])


@pytest.mark.parametrize(
    ("run", "normalized"),
    [
        ("dos2unix /scripts/*.sh", True),
        ("find /scripts -type f -exec dos2unix {} +", True),
        ("sed -i 's/\\r$//' /scripts/deploy.sh", True),
        ("sed -i -e 's/\\r$//' deploy.sh", False),
        ("cd /scripts && sed -i -e 's/\\r$//' deploy.sh", True),
        ("tr -d '\\r' < /tmp/deploy.sh > /scripts/deploy.sh", True),
        ("perl -pi -e 's/\\r\\n/\\n/' /scripts/*.sh", True),
        ("dos2unix /opt/helper.sh && chmod +x /scripts/*", False),
        ("sed -i 's/\\r$//' /opt/*.sh && ls /scripts", False),
    ],
)
def test_line_endings_must_be_fixed_on_the_scripts(run: str, normalized: bool) -> None:
    text = f"FROM {CORE}:latest\nCOPY --chmod=755 s/ /scripts/\nRUN {run}\n"
    assert found(text) == ([] if normalized else [("ScriptsLineEndings", 2)])


def test_a_line_with_no_instruction_is_skipped() -> None:
    """Found by tests/unit/properties/test_dockerfile.py (long profile)."""
    assert found(f"FROM {CORE}:latest\n{TAIL}\\") == []
