"""A deterministic generator of invalid and hostile RunnerImage specs (issue 11).

Each `Case` is the offline sample (`tests.e2e.samples.offline`, which settles at
`RegistryAccessReady` on an absent Secret) with one hostile change: a huge string, unicode
bidi/zero-width text, control characters, path traversal, an argument-injecting or
credential-carrying git URL, a wrong type, an out-of-range number, a bad duration or image
reference, ten thousand entries. Every case must be refused by the API server (the CRD schema)
or end `Stalled` with a message naming `field`: a hostile value the operator only trips over
later (it ends on the sample's SecretNotFound, or retries) is a bug. `secret` is a credential
the case embeds, which must never come back in status, Events or the operator's log.

A few controls of kind `legal` are odd but valid (large inline scripts, unicode in a commit
message, a multi-line build argument): each must settle as the sample does, naming
`samples.SETTLED_FIELD`, so that the rules refusing the others are shown not to refuse too much.

Pure and seeded: `cases()` returns the same list, in the same order, on every run.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Callable, Iterator
from typing import Any

from tests.e2e import samples

SEED = 11
MIB = 1024 * 1024

KINDS = (
    "huge-string",
    "unicode",
    "control-chars",
    "path-traversal",
    "git-url",
    "credentials",
    "wrong-type",
    "number",
    "duration",
    "image-reference",
    "many-entries",
    "legal",
)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    """A short name of what is hostile, e.g. `glob-dotdot`."""
    kind: str
    body: dict[str, Any]
    """The whole RunnerImage (metadata.name is set by `cases`)."""
    field: str
    """The field a refusal or the Stalled message must name (a prefix of it is enough)."""
    secret: str | None = None

    @property
    def legal(self) -> bool:
        return self.kind == "legal"


Edit = Callable[[dict[str, Any]], None]

_GIT: dict[str, Any] = {"git": {"url": "https://git.invalid/platform/runners.git"}}
_CATALOG: dict[str, Any] = {
    "git": {"url": "https://git.invalid/platform/catalog.git"},
    "manifests": ["Environments/**/environment.yaml"],
}
_RTL = "\u202e"  # RIGHT-TO-LEFT OVERRIDE ("Trojan source")
_ZWSP = "\u200b"  # ZERO WIDTH SPACE
_BOM = "\ufeff"


def _set(path: str, value: Any) -> Edit:
    """An edit setting the dotted `path` under spec (`.` separated; parents made)."""

    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


def _all(*edits: Edit) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        for one in edits:
            one(spec)

    return edit


def _git_source(**git: Any) -> Edit:
    return _set("source", {"git": {**_GIT["git"], **git}})


def _catalog(**catalog: Any) -> Edit:
    return _set("catalog", {**copy.deepcopy(_CATALOG), **catalog})


def _catalog_git(**git: Any) -> Edit:
    return _catalog(git={**_CATALOG["git"], **git})


def _commit(**commit: Any) -> Edit:
    return _catalog(commit=commit)


def _scripts(**extra: str) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        spec["source"]["inline"]["scripts"].update(extra)

    return edit


def _script_named(name: str) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        spec["source"]["inline"]["scripts"][name] = "#!/bin/sh\n"

    return edit


def _dockerfile(text: str) -> Edit:
    return _set("source.inline.dockerfile", text)


def _from(reference: str, **build_args: str) -> Edit:
    edits = [_dockerfile(f"ARG BASE_IMAGE\nFROM {reference}\nCOPY scripts/ /scripts/\n")]
    if build_args:
        edits.append(_set("buildArgs", build_args))
    return _all(*edits)


def _huge(rng: random.Random, size: int = MIB, alphabet: str = "abcdefghij") -> str:
    return "".join(rng.choice(alphabet) for _ in range(64)) * (size // 64)


def _specs(rng: random.Random) -> Iterator[tuple[str, str, Edit, str, str | None]]:
    """(name, kind, edit, field, secret) of every case, in a fixed order."""
    huge = _huge(rng)
    # -- huge strings: 1 MiB in each string field ----------------------------------------------
    for name, path, field in [
        ("dockerfile-content", "source.inline.dockerfile", "spec.source.inline.dockerfile"),
        ("dockerfile-path", "dockerfile", "spec.dockerfile"),
        ("target", "target", "spec.target"),
        ("image-tag", "image.tag", "spec.image.tag"),
        ("image-registry", "image.registry", "spec.image.registry"),
        ("image-repository", "image.repository", "spec.image.repository"),
        ("trigger-interval", "triggers.source.interval", "spec.triggers.source.interval"),
        ("build-timeout", "build.timeout", "spec.build.timeout"),
        ("service-account", "build.serviceAccountName", "spec.build.serviceAccountName"),
    ]:
        yield f"huge-{name}", "huge-string", _set(path, huge), field, None
    yield "huge-script", "huge-string", _scripts(**{"deploy.sh": huge}), "spec.source.inline", None
    yield "huge-script-name", "huge-string", _script_named(huge), "spec.source.inline", None
    yield "huge-build-arg", "huge-string", _set("buildArgs", {"A": huge}), "spec.buildArgs", None
    yield (
        "huge-build-arg-name",
        "huge-string",
        _set("buildArgs", {"A" + huge.upper(): "x"}),
        "spec.buildArgs",
        None,
    )
    yield "huge-git-url", "huge-string", _git_source(url="https://h/" + huge), "spec.source", None
    yield "huge-git-ref", "huge-string", _git_source(ref=huge), "spec.source.git.ref", None
    yield "huge-git-path", "huge-string", _git_source(path=huge), "spec.source.git.path", None
    for name, edit, field in [
        ("glob", _catalog(manifests=[huge]), "spec.catalog.manifests"),
        ("field", _catalog(field=huge), "spec.catalog.field"),
        ("branch", _catalog_git(branch=huge), "spec.catalog.git.branch"),
        ("push-branch", _catalog(pushBranch=huge), "spec.catalog.pushBranch"),
        ("adopt", _catalog(adopt=[huge]), "spec.catalog.adopt"),
        ("catalog-interval", _catalog(interval="1s" * (MIB // 2)), "spec.catalog.interval"),
        ("author-name", _commit(authorName=huge), "spec.catalog.commit.authorName"),
        ("author-email", _commit(authorEmail=huge + "@x"), "spec.catalog.commit.authorEmail"),
        ("commit-message", _commit(messageTemplate=huge), "spec.catalog.commit.messageTemplate"),
    ]:
        yield f"huge-catalog-{name}", "huge-string", edit, field, None
    yield (
        "huge-node-selector-key",
        "huge-string",
        _set("build.nodeSelector", {huge: "x"}),
        "spec.build.nodeSelector",
        None,
    )
    yield (
        "huge-resource-name",
        "huge-string",
        _set("build.resources", {"limits": {"example.com/" + huge: "1"}}),
        "spec.build.resources",
        None,
    )
    yield (
        "huge-toleration-key",
        "huge-string",
        _set("build.tolerations", [{"key": huge, "operator": "Exists"}]),
        "spec.build.tolerations[0].key",
        None,
    )
    yield (
        "huge-secret-ref",
        "huge-string",
        _set("image.pushSecretRef", {"name": huge}),
        "spec.image.pushSecretRef.name",
        None,
    )
    yield (
        "slow-catalog-interval",
        "huge-string",
        _catalog(interval="1ms" * 20000),
        "spec.catalog.interval",
        None,
    )
    yield (
        "slow-trigger-interval",
        "huge-string",
        _set("triggers.baseImage.interval", "0s" * 20000 + "1h"),
        "spec.triggers.baseImage.interval",
        None,
    )

    # -- unicode: bidi override, zero-width, BOM, homoglyphs -----------------------------------
    for mark_name, mark in (("rtl", _RTL), ("zwsp", _ZWSP), ("bom", _BOM)):
        for name, edit, field in [
            (
                "registry",
                _set("image.registry", f"contoso{mark}.azurecr.io"),
                "spec.image.registry",
            ),
            ("repository", _set("image.repository", f"ade/{mark}bicep"), "spec.image.repository"),
            ("tag", _set("image.tag", f"{{shortRevision}}{mark}"), "spec.image.tag"),
            ("git-host", _git_source(url=f"https://git{mark}.invalid/x.git"), "spec.source"),
            ("git-ref", _git_source(ref=f"main{mark}"), "spec.source.git.ref"),
            ("git-path", _git_source(path=f"runners/{mark}bicep"), "spec.source.git.path"),
            ("dockerfile-path", _set("dockerfile", f"Docker{mark}file"), "spec.dockerfile"),
            ("script-name", _script_named(f"deploy{mark}.sh"), "spec.source.inline"),
            ("glob", _catalog(manifests=[f"Environments/{mark}*.yaml"]), "spec.catalog.manifests"),
            ("branch", _catalog_git(branch=f"main{mark}"), "spec.catalog.git.branch"),
            ("author-email", _commit(authorEmail=f"bot{mark}@x.io"), "spec.catalog.commit"),
            ("build-arg-name", _set("buildArgs", {f"A{mark}": "x"}), "spec.buildArgs"),
            ("target", _set("target", f"final{mark}"), "spec.target"),
        ]:
            yield f"{mark_name}-{name}", "unicode", edit, field, None
    yield (
        "homoglyph-registry",
        "unicode",
        _set("image.registry", "cоntoso.azurecr.io"),  # noqa: RUF001 (a Cyrillic o)
        "spec.image.registry",
        None,
    )
    yield (
        "fullwidth-platform",
        "unicode",
        _set("platforms", ["ｌinux/amd64"]),  # noqa: RUF001
        "spec.platforms",
        None,
    )

    # -- control characters ---------------------------------------------------------------------
    for char_name, char in (
        ("nul", "\x00"),
        ("esc", "\x1b[2J"),
        ("newline", "\n"),
        ("del", "\x7f"),
    ):
        for name, edit, field in [
            ("git-url", _git_source(url=f"https://git.invalid/x{char}.git"), "spec.source"),
            ("git-ref", _git_source(ref=f"main{char}"), "spec.source.git.ref"),
            ("git-path", _git_source(path=f"runners{char}"), "spec.source.git.path"),
            ("dockerfile-path", _set("dockerfile", f"Dockerfile{char}"), "spec.dockerfile"),
            ("glob", _catalog(manifests=[f"Environments/*{char}.yaml"]), "spec.catalog.manifests"),
            ("branch", _catalog_git(branch=f"main{char}"), "spec.catalog.git.branch"),
            ("author-name", _commit(authorName=f"bot{char}"), "spec.catalog.commit.authorName"),
            ("author-email", _commit(authorEmail=f"b{char}t@x.io"), "spec.catalog.commit"),
            ("target", _set("target", f"final{char}"), "spec.target"),
            ("script-name", _script_named(f"x{char}.sh"), "spec.source.inline"),
        ]:
            yield f"{char_name}-{name}", "control-chars", edit, field, None
    yield (
        "nul-build-arg",
        "control-chars",
        _set("buildArgs", {"A": "x\x00y"}),
        "spec.buildArgs",
        None,
    )
    yield (
        "nul-commit-message",
        "control-chars",
        _commit(messageTemplate="Use {image}\x00"),
        "spec.catalog.commit.messageTemplate",
        None,
    )
    yield (
        "nul-catalog-field",
        "control-chars",
        _catalog(format="YAML", field="image\x00.tag"),
        "spec.catalog.field",
        None,
    )

    # -- path traversal in globs, script names, Dockerfile paths, source and catalog paths ------
    for index, glob in enumerate(
        [
            "../x/*.yaml",
            "/etc/*.yaml",
            "**/../../x.yaml",
            "a/../../b.yaml",
            "..",
            "C:\\x\\*.yaml",
            "Environments/\\..\\x.yaml",
            "./../x.yaml",
        ]
    ):
        yield (
            f"glob-traversal-{index}",
            "path-traversal",
            _catalog(manifests=[glob]),
            ("spec.catalog.manifests"),
            None,
        )
    for index, script in enumerate(["../evil.sh", "/etc/evil.sh", "..", ".", "a/b.sh", "..\\x"]):
        yield (
            f"script-traversal-{index}",
            "path-traversal",
            _script_named(script),
            ("spec.source.inline"),
            None,
        )
    for index, path in enumerate(
        ["../Dockerfile", "/Dockerfile", "scripts/../../Dockerfile", ".", "a\\..\\Dockerfile", "./"]
    ):
        yield (
            f"dockerfile-traversal-{index}",
            "path-traversal",
            _set("dockerfile", path),
            ("spec.dockerfile"),
            None,
        )
    for index, path in enumerate(["../", "/etc", "a/../../b", "..\\..", "./../x"]):
        yield (
            f"git-path-traversal-{index}",
            "path-traversal",
            _git_source(path=path),
            ("spec.source.git.path"),
            None,
        )
    for index, branch in enumerate(["../main", "refs/heads/../x", "-main", "main.lock", "a//b"]):
        yield (
            f"push-branch-traversal-{index}",
            "path-traversal",
            _catalog(pushBranch=branch),
            ("spec.catalog.pushBranch"),
            None,
        )
    for index, ref in enumerate(["--upload-pack=touch /tmp/x", "-x", "main..x", "refs/../x"]):
        yield (
            f"git-ref-injection-{index}",
            "path-traversal",
            _git_source(ref=ref),
            ("spec.source.git.ref"),
            None,
        )

    # -- git URLs: other transports, argument injection ------------------------------------------
    for index, url in enumerate(
        [
            "file:///etc/passwd",
            "file://localhost/srv/git/x.git",
            "/srv/git/x.git",
            "./x.git",
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "fd::17",
            "git://git.invalid/x.git",
            "ftp://git.invalid/x.git",
            "--upload-pack=touch /tmp/pwned",
            "-oProxyCommand=touch@host:x",
            "-u@git.invalid:x.git",
            "ssh://-oProxyCommand=touch%20%2Ftmp%2Fpwned/x.git",
            "ssh://-git.invalid/x.git",
            "https://git.invalid:99999/x.git",
            "https://git.invalid:0/x.git",
            "transport::git.invalid/x",
        ]
    ):
        yield f"git-url-{index}", "git-url", _git_source(url=url), "spec.source", None
    for index, url in enumerate(
        ["file:///srv/catalog.git", "ext::sh -c id", "ssh://-oProxyCommand=id/x", "-x@h:y"]
    ):
        yield f"catalog-url-{index}", "git-url", _catalog_git(url=url), "spec.catalog.git", None

    # -- credentials in URLs (each secret distinct, none may come back) ---------------------------
    for index, template in enumerate(
        [
            "https://robot:{s}@git.invalid/x.git",
            "https://{s}@git.invalid/x.git",
            "https://x-access-token:{s}@git.invalid/x.git",
            "HTTPS://ROBOT:{s}@git.invalid/x.git",
            "http://robot:{s}@git.invalid:8080/x.git",
            "https://robot:{s}%40more@git.invalid/x.git",
            "https://robot:{s}@git.invalid@other.invalid/x.git",
            "ssh://git:{s}@git.invalid/x.git",
            "https://robot:{s}@git.invalid",
        ]
    ):
        secret = f"hostile-s3cret-{index}-{rng.randrange(16**8):08x}"
        url = template.format(s=secret)
        yield (
            f"credentials-source-{index}",
            "credentials",
            _git_source(url=url),
            ("spec.source.git.url"),
            secret,
        )
        secret = f"hostile-s3cret-c{index}-{rng.randrange(16**8):08x}"
        url = template.format(s=secret)
        yield (
            f"credentials-catalog-{index}",
            "credentials",
            _catalog_git(url=url),
            ("spec.catalog.git.url"),
            secret,
        )
    secret = f"hostile-s3cret-base-{rng.randrange(16**8):08x}"
    yield (
        "credentials-base-image",
        "credentials",
        _from("${BASE_IMAGE}", BASE_IMAGE=f"https://robot:{secret}@registry.invalid/core:4.0"),
        "spec.buildArgs",
        secret,
    )

    # -- wrong types -----------------------------------------------------------------------------
    for name, path, value, field in [
        ("source-string", "source", "https://git.invalid/x.git", "spec.source"),
        ("build-args-list", "buildArgs", ["A=1"], "spec.buildArgs"),
        ("build-arg-int", "buildArgs", {"A": 1}, "spec.buildArgs"),
        ("platforms-string", "platforms", "linux/amd64", "spec.platforms"),
        ("suspend-string", "suspend", "yes", "spec.suspend"),
        ("history-string", "historyLimit", {"succeeded": "5"}, "spec.historyLimit"),
        ("timeout-int", "build.timeout", 300, "spec.build.timeout"),
        ("tag-int", "image.tag", 1, "spec.image.tag"),
        ("tolerations-object", "build.tolerations", {"key": "a"}, "spec.build.tolerations"),
        ("scripts-list", "source.inline.scripts", ["deploy.sh"], "spec.source.inline.scripts"),
        ("image-null-registry", "image.registry", None, "spec.image.registry"),
        ("quantity-float", "build.resources", {"limits": {"cpu": 0.5}}, "spec.build.resources"),
        ("quantity-bool", "build.resources", {"limits": {"cpu": True}}, "spec.build.resources"),
        ("node-selector-int", "build.nodeSelector", {"a": 1}, "spec.build.nodeSelector"),
    ]:
        yield f"type-{name}", "wrong-type", _set(path, value), field, None
    yield (
        "type-manifests-string",
        "wrong-type",
        _catalog(manifests="*.yaml"),
        ("spec.catalog.manifests"),
        None,
    )

    # -- numbers ---------------------------------------------------------------------------------
    for name, path, value, field in [
        ("history-negative", "historyLimit", {"succeeded": -1}, "spec.historyLimit.succeeded"),
        ("history-huge", "historyLimit", {"failed": 10**18}, "spec.historyLimit.failed"),
        ("history-float", "historyLimit", {"failed": 2.5}, "spec.historyLimit.failed"),
        ("history-int64-overflow", "historyLimit", {"failed": 2**64}, "spec.historyLimit"),
        (
            "toleration-seconds-overflow",
            "build.tolerations",
            [{"key": "a", "effect": "NoExecute", "tolerationSeconds": 2**63}],
            "spec.build.tolerations",
        ),
        (
            "quantity-negative",
            "build.resources",
            {"requests": {"cpu": "-1"}},
            "spec.build.resources.requests[cpu]",
        ),
        (
            "quantity-request-above-limit",
            "build.resources",
            {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
            "spec.build.resources.requests[memory]",
        ),
        (
            "quantity-huge-exponent",
            "build.resources",
            {"limits": {"memory": "1e999999999"}},
            "spec.build.resources.limits[memory]",
        ),
        ("registry-port-huge", "image.registry", "contoso.io:99999", "spec.image.registry"),
    ]:
        yield f"number-{name}", "number", _set(path, value), field, None

    # -- durations -------------------------------------------------------------------------------
    for index, text in enumerate(["", "5", "1d", "-5m", "1h-1m", "5 m", "1e3s", "PT5M", "5m\n"]):
        yield (
            f"duration-timeout-{index}",
            "duration",
            _set("build.timeout", text),
            ("spec.build.timeout"),
            None,
        )
    for name, edit, field in [
        ("timeout-zero", _set("build.timeout", "0s"), "spec.build.timeout"),
        ("timeout-huge", _set("build.timeout", "9" * 400 + "h"), "spec.build.timeout"),
        ("trigger-short", _set("triggers.source.interval", "1ms"), "spec.triggers.source.interval"),
        (
            "trigger-huge",
            _set("triggers.baseImage.interval", "9" * 400 + "h"),
            "spec.triggers.baseImage.interval",
        ),
        ("catalog-short", _catalog(interval="1s"), "spec.catalog.interval"),
        ("catalog-huge", _catalog(interval="9" * 400 + "h"), "spec.catalog.interval"),
        ("catalog-bad", _catalog(interval="soon"), "spec.catalog.interval"),
    ]:
        yield f"duration-{name}", "duration", edit, field, None

    # -- image references (the Dockerfile's base, the build arguments that make it) -------------
    for index, (reference, args) in enumerate(
        [
            ("../../etc/passwd", {}),
            ("UPPER/Case:1", {}),
            ("registry.invalid:99999999/core:4.0", {}),
            ("core@sha256:zzzz", {}),
            ("core:" + "t" * 200, {}),
            ("${BASE_IMAGE}", {"BASE_IMAGE": "not a reference!"}),
            ("${BASE_IMAGE}", {"BASE_IMAGE": ""}),
            ("${BASE_IMAGE}", {"BASE_IMAGE": "core:4.0\x00"}),
            ("${BASE_IMAGE}", {"BASE_IMAGE": "-core:4.0"}),
            ("https://registry.invalid/core:4.0", {}),
        ]
    ):
        yield (
            f"image-reference-{index}",
            "image-reference",
            _from(reference, **args),
            ("spec.buildArgs" if args else "spec.dockerfile"),
            None,
        )

    # -- ten thousand entries ----------------------------------------------------------------------
    many = 10_000
    for name, edit, field in [
        ("build-args", _set("buildArgs", {f"ARG_{i}": "x" for i in range(many)}), "spec.buildArgs"),
        (
            "build-args-65",
            _set("buildArgs", {f"ARG_{i}": "x" for i in range(65)}),
            "spec.buildArgs",
        ),
        (
            "scripts",
            _scripts(**{f"s{i}.sh": "#!/bin/sh\n" for i in range(many)}),
            "spec.source.inline.scripts",
        ),
        ("manifests", _catalog(manifests=[f"E/{i}.yaml" for i in range(many)]), "spec.catalog"),
        ("platforms", _set("platforms", [f"linux/a{i}" for i in range(many)]), "spec.platforms"),
        (
            "tolerations",
            _set("build.tolerations", [{"key": f"k{i}"} for i in range(many)]),
            "spec.build.tolerations",
        ),
        (
            "node-selector",
            _set("build.nodeSelector", {f"k{i}": "v" for i in range(many)}),
            "spec.build.nodeSelector",
        ),
        ("adopt", _catalog(adopt=[f"a{i}:*" for i in range(many)]), "spec.catalog.adopt"),
        (
            "resources",
            _set("build.resources", {"limits": {f"example.com/r{i}": "1" for i in range(many)}}),
            "spec.build.resources",
        ),
        (
            "scripts-16mib",
            _scripts(**{f"s{i}.sh": _huge(rng, 262144) for i in range(62)}),
            "spec.source.inline",
        ),
    ]:
        yield f"many-{name}", "many-entries", edit, field, None


def _legal(rng: random.Random) -> Iterator[tuple[str, str, Edit, str, str | None]]:
    """Odd but valid specs: each must settle as the sample does."""
    field = samples.SETTLED_FIELD
    big = {f"s{i}.sh": "#!/bin/sh\n" + _huge(rng, 200 * 1024) for i in range(3)}
    yield "large-inline-scripts", "legal", _scripts(**big), field, None
    yield (
        "build-args-64x4k",
        "legal",
        _set("buildArgs", {f"ARG_{i}": _huge(rng, 4096) for i in range(64)}),
        field,
        None,
    )
    yield (
        "unicode-commit",
        "legal",
        _commit(
            authorName="José Müller-Łukasiewicz",
            messageTemplate="Läuft: {image}\n\n\t\u05e9\u05dc\u05d5\u05dd 日本語 ({reason})",
        ),
        field,
        None,
    )
    yield (
        "build-arg-multiline",
        "legal",
        _set("buildArgs", {"NOTE": "line 1\nline 2 \u202e\u200b \x1b[0m"}),
        field,
        None,
    )
    yield (
        "script-crlf-nul",
        "legal",
        _scripts(**{"deploy.sh": "#!/bin/sh\r\necho \x00\u202e\r\n"}),
        field,
        None,
    )
    yield (
        "dockerfile-unicode-comment",
        "legal",
        _dockerfile("# 日本語 \u202e \u200b\nFROM scratch\nCOPY scripts/ /scripts/\n"),
        field,
        None,
    )


def cases(seed: int = SEED) -> list[Case]:
    """Every hostile case, named `h-NNN` in order (NNN from 000)."""
    rng = random.Random(seed)  # noqa: S311 (test data, not a secret)
    out: list[Case] = []
    for index, (name, kind, edit, field, secret) in enumerate([*_specs(rng), *_legal(rng)]):
        object_name = f"h-{index:03d}"
        body = samples.offline(object_name)
        edit(body["spec"])
        out.append(Case(name=name, kind=kind, body=body, field=field, secret=secret))
    assert len({case.name for case in out}) == len(out), "case names must be unique"
    return out
