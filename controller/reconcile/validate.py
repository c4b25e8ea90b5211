"""Validation of a RunnerImage spec beyond what the CRD schema can say. Pure.

Every problem names the field by its full path (`spec.catalog.manifests[1]: ...`) so that the
`Stalled` condition tells the user exactly what to fix. Problems are collected, not stopped at
the first, so one edit can fix them all.
"""

from __future__ import annotations

import decimal
import posixpath
import re
import string
import unicodedata
from collections.abc import Generator, Iterable, Iterator

from controller import durations, errors
from controller.api import spec as model
from controller.catalog import manifests, yamlpath
from controller.git import refs

TAG_PLACEHOLDERS = {
    "revision": 40,
    "shortRevision": 12,
    "buildKey": 64,
    "shortBuildKey": 12,
    "timestamp": 14,
}
"""Tag template placeholders and the longest text each can expand to."""

COMMIT_PLACEHOLDERS = frozenset({"image", "digest", "reason", "files", "name", "namespace"})

MIN_TRIGGER_INTERVAL = 60.0
MIN_CATALOG_INTERVAL = 10.0
MAX_BUILD_TIMEOUT = 24 * 3600.0
MIN_BUILD_TIMEOUT = 60.0

_URL_CREDENTIALS = re.compile(
    r"^(https?://[^/\s]*@|[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s]*:[^/\s]*@)", re.IGNORECASE
)
"""Any user information in an http(s) URL (a token is often the user name), or a password in any."""
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)")
_SCP_LIKE = re.compile(r"(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):.+")
"""The URLs git is given (as `controller.git.environment.transport` reads them): a scheme and
its authority ([user@]host[:port]), or scp-like user@host:path (SSH)."""
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Unicode categories refused in names, paths, refs and URLs: control characters (NUL, ESC, DEL,
newlines), and invisible formatting ones (bidi overrides such as U+202E, zero-width spaces, the
BOM) that make a value read differently from what git, the registry or a shell is given."""
MAX_QUANTITY = decimal.Decimal(2**63 - 1)
"""The largest quantity Kubernetes holds (an int64 of base units)."""


def problems(spec: model.RunnerImageSpec) -> list[errors.SpecError]:
    """Every rule the spec breaks; empty when the spec can be acted on."""
    return list(_problems(spec))


def check(spec: model.RunnerImageSpec) -> None:
    """Raise one SpecError that lists every problem of the spec, if any."""
    found = problems(spec)
    if len(found) == 1:
        raise found[0]
    if found:
        first = found[0]
        error = errors.SpecError(first.field, first.problem)
        error.message = "; ".join(problem.message for problem in found)
        raise error


def _problems(spec: model.RunnerImageSpec) -> Iterator[errors.SpecError]:
    yield from _hidden(_texts(spec))
    yield from _relative_path("spec.dockerfile", spec.dockerfile)
    git = spec.source.git
    if git is not None:
        yield from _url("spec.source.git.url", git.url, "spec.source.git.secretRef", git.secret_ref)
        yield from _relative_path("spec.source.git.path", git.path, allow_dot=True)
        yield from _ref("spec.source.git.ref", git.ref, "git branch, tag or commit")
    for name, value in spec.build_args.items():
        if "\x00" in value:
            yield errors.SpecError(
                f"spec.buildArgs.{name}", "must not contain NUL (it cannot be passed to a build)"
            )
    yield from _registry("spec.image.registry", spec.image.registry)
    if spec.source.inline is not None and spec.dockerfile != "Dockerfile":
        yield errors.SpecError(
            "spec.dockerfile", "must be Dockerfile (or unset) with spec.source.inline"
        )
    yield from _tag_template("spec.image.tag", spec.image.tag)
    if spec.catalog is not None:
        yield from _catalog(spec.catalog)
    for name, trigger in (
        ("baseImage", spec.triggers.base_image),
        ("source", spec.triggers.source),
    ):
        if trigger.interval is not None:
            yield from _duration(
                f"spec.triggers.{name}.interval", trigger.interval, MIN_TRIGGER_INTERVAL, None
            )
    yield from _build(spec.build)
    if spec.retention is not None:
        yield from _duration("spec.retention.keepFor", spec.retention.keep_for, 0.0, None)
        yield from _duration(
            "spec.retention.interval", spec.retention.interval, MIN_TRIGGER_INTERVAL, None
        )
        if spec.retention.keep_last < 1:
            yield errors.SpecError("spec.retention.keepLast", "must be at least 1")


def _build(build: model.BuildSpec) -> Iterator[errors.SpecError]:
    """The build's timeout, and the build pod's resources and placement (the Job backend's; they
    are checked whatever the backend, as the schema checks them)."""
    yield from _duration("spec.build.timeout", build.timeout, MIN_BUILD_TIMEOUT, MAX_BUILD_TIMEOUT)
    yield from _resources("spec.build.resources", build.resources)
    for key, value in build.node_selector.items():
        field = f"spec.build.nodeSelector[{key}]"
        yield from _problem(field, _label_key_problem(key))
        yield from _problem(field, _label_value_problem(value))
    for index, toleration in enumerate(build.tolerations):
        yield from _toleration(f"spec.build.tolerations[{index}]", toleration)
    if build.service_account_name is not None:
        name = build.service_account_name
        yield from _problem("spec.build.serviceAccountName", _subdomain_problem(name))


def _problem(field: str, problem: str | None) -> Iterator[errors.SpecError]:
    if problem is not None:
        yield errors.SpecError(field, problem)


def _resources(field: str, resources: model.ResourceRequirements) -> Iterator[errors.SpecError]:
    amounts: dict[str, dict[str, decimal.Decimal]] = {"requests": {}, "limits": {}}
    for section, entries in (("requests", resources.requests), ("limits", resources.limits)):
        for name, quantity in entries.items():
            entry = f"{field}.{section}[{name}]"
            name_problem = _resource_name_problem(name)
            if name_problem is not None:
                yield errors.SpecError(entry, name_problem)
                continue
            amount = parse_quantity(quantity)
            if amount is None:
                yield errors.SpecError(
                    entry, f"{quantity!r} is not a quantity (e.g. 500m, 2, 1.5Gi, 512Mi)"
                )
            elif amount < 0:
                yield errors.SpecError(entry, f"must not be negative (got {quantity})")
            elif amount > MAX_QUANTITY:
                yield errors.SpecError(entry, f"is too large (got {quantity})")
            else:
                amounts[section][name] = amount
    for name, request in amounts["requests"].items():
        limit = amounts["limits"].get(name)
        if limit is not None and request > limit:
            yield errors.SpecError(
                f"{field}.requests[{name}]",
                f"must be at most its limit, {resources.limits[name]}"
                f" (got {resources.requests[name]})",
            )


def _toleration(field: str, toleration: model.Toleration) -> Iterator[errors.SpecError]:
    exists = toleration.operator is model.TolerationOperator.EXISTS
    if toleration.key:
        yield from _problem(f"{field}.key", _label_key_problem(toleration.key))
    elif not exists:
        yield errors.SpecError(
            f"{field}.operator", "must be Exists when key is empty (which tolerates every taint)"
        )
    if exists and toleration.value:
        yield errors.SpecError(f"{field}.value", "must be empty when operator is Exists")
    elif not exists:
        yield from _problem(f"{field}.value", _label_value_problem(toleration.value))
    if (
        toleration.toleration_seconds is not None
        and toleration.effect is not model.TaintEffect.NO_EXECUTE
    ):
        yield errors.SpecError(
            f"{field}.tolerationSeconds", "is allowed only with effect NoExecute"
        )


def _catalog(catalog: model.Catalog) -> Iterator[errors.SpecError]:
    yield from _url(
        "spec.catalog.git.url",
        catalog.git.url,
        "spec.catalog.git.secretRef",
        catalog.git.secret_ref,
    )
    for index, glob in enumerate(catalog.manifests):
        field = f"spec.catalog.manifests[{index}]"
        if glob.startswith("/") or "\\" in glob:
            yield errors.SpecError(field, "must be a relative path with forward slashes")
        elif _escapes(glob):
            yield errors.SpecError(field, "glob matches outside the repository")
    yield from _template(
        "spec.catalog.commit.messageTemplate", catalog.commit.message_template, COMMIT_PLACEHOLDERS
    )
    yield from _catalog_fields(catalog)
    if catalog.interval is not None:
        yield from _duration("spec.catalog.interval", catalog.interval, MIN_CATALOG_INTERVAL, None)
    pull = catalog.pull_request
    if pull is not None and pull.interval is not None:
        field = "spec.catalog.pullRequest.interval"
        yield from _duration(field, pull.interval, MIN_CATALOG_INTERVAL, None)
    if pull is not None and not catalog.push_branch:
        yield errors.SpecError("spec.catalog.pullRequest", "needs spec.catalog.pushBranch")
    if catalog.push_branch and catalog.push_branch == catalog.git.branch:
        yield errors.SpecError(
            "spec.catalog.pushBranch", "must differ from spec.catalog.git.branch (or be empty)"
        )
    for field, branch in (
        ("spec.catalog.git.branch", catalog.git.branch),
        ("spec.catalog.pushBranch", catalog.push_branch),
    ):
        if branch:
            yield from _ref(field, branch, "git branch name")


def _catalog_fields(catalog: model.Catalog) -> Iterator[errors.SpecError]:
    if catalog.format is not model.CatalogFormat.YAML:
        if not manifests.FIELD_PATTERN.fullmatch(catalog.field):
            yield errors.SpecError(
                "spec.catalog.field", "must be a top-level key with format EnvironmentDefinition"
            )
        elif catalog.field in manifests.RESERVED_FIELDS:
            yield errors.SpecError(
                "spec.catalog.field", str(manifests.field_problem(catalog.field))
            )
        if catalog.repository_field:
            yield errors.SpecError("spec.catalog.repositoryField", "needs format YAML")
        return
    for name, path in (
        ("spec.catalog.field", catalog.field),
        ("spec.catalog.repositoryField", catalog.repository_field),
    ):
        if name == "spec.catalog.field" or path:
            try:
                yamlpath.parse_path(path)
            except ValueError as error:
                yield errors.SpecError(name, str(error))


def _escapes(path: str) -> bool:
    # Any ".." segment is refused, not only one that normalizes outside: "**/../x" matches "../x"
    # because "**" may match no folder at all.
    return ".." in path.split("/")


def _relative_path(field: str, path: str, *, allow_dot: bool = False) -> Iterator[errors.SpecError]:
    if path.startswith("/") or "\\" in path:
        yield errors.SpecError(field, "must be a relative path with forward slashes")
    elif _escapes(path):
        yield errors.SpecError(field, "must stay inside the source folder (no ..)")
    elif not allow_dot and posixpath.normpath(path) == ".":
        yield errors.SpecError(field, "must name a file")


def _url(
    field: str, url: str, secret_field: str, secret: model.SecretRef | None
) -> Iterator[errors.SpecError]:
    if _URL_CREDENTIALS.match(url):
        # Never echo the URL: it carries a credential.
        yield errors.SpecError(
            field,
            f"must not embed credentials in the URL; put them in a Secret named by {secret_field}",
        )
        return
    if _hidden_char(url):
        return  # said by _hidden
    if url.startswith("-"):
        yield errors.SpecError(field, "must not start with '-'")
        return
    found = _URL.match(url)
    scp = None if found else _SCP_LIKE.fullmatch(url)
    scheme = found["scheme"].lower() if found else "ssh" if scp else ""
    if scheme not in ("http", "https", "ssh"):
        yield errors.SpecError(
            field,
            "unsupported git URL: use https://, http:// or ssh (ssh://host/path or"
            " user@host:path); file://, ext:: and other transports are refused",
        )
        return
    if found:
        user, _, host = found["authority"].rpartition("@")
    else:
        assert scp is not None
        user, host = scp["user"], scp["host"]
    if user.startswith("-") or host.startswith("-"):
        yield errors.SpecError(field, "the host and user must not start with '-'")
        return
    port = host.rpartition("]")[2].partition(":")[2] if found else ""
    if ":" in host.rpartition("]")[2] and not (port.isdigit() and 0 < int(port) < 65536):
        yield errors.SpecError(field, "the port must be a number from 1 to 65535")
    if scheme == "ssh" and secret is None:
        yield errors.SpecError(
            secret_field, "is required for an SSH URL (a Secret with identity and known_hosts)"
        )


def _registry(field: str, registry: str) -> Iterator[errors.SpecError]:
    _, colon, port = registry.rpartition(":")
    if colon and port.isdigit() and not 0 < int(port) < 65536:
        yield errors.SpecError(field, "the port must be a number from 1 to 65535")


def _texts(spec: model.RunnerImageSpec) -> Iterator[tuple[str, str, str]]:
    """(field, value, characters allowed) of every name, path, ref and URL of the spec."""
    yield "spec.dockerfile", spec.dockerfile, ""
    if spec.target is not None:
        yield "spec.target", spec.target, ""
    if spec.source.git is not None:
        git = spec.source.git
        yield from (
            ("spec.source.git.url", git.url, ""),
            ("spec.source.git.path", git.path, ""),
        )
    catalog = spec.catalog
    if catalog is None:
        return
    yield from (
        ("spec.catalog.git.url", catalog.git.url, ""),
        ("spec.catalog.field", catalog.field, ""),
        ("spec.catalog.repositoryField", catalog.repository_field, ""),
        ("spec.catalog.commit.authorName", catalog.commit.author_name, ""),
        ("spec.catalog.commit.authorEmail", catalog.commit.author_email, ""),
        # a commit message may span lines (and be in any script); nothing else unprintable
        ("spec.catalog.commit.messageTemplate", catalog.commit.message_template, "\n\t"),
    )
    for index, glob in enumerate(catalog.manifests):
        yield f"spec.catalog.manifests[{index}]", glob, ""
    for index, value in enumerate(catalog.adopt):
        yield f"spec.catalog.adopt[{index}]", value, ""


def _ref(field: str, name: str, what: str) -> Iterator[errors.SpecError]:
    """A branch, tag or commit git can be given: as `git check-ref-format --branch` allows (no
    leading "-", no "..", no control character, ...), and no invisible formatting character."""
    if not refs.valid_branch(name):
        yield errors.SpecError(field, f"{name!r} is not a valid {what}")
    else:
        yield from _hidden([(field, name, "")])


def _hidden_char(text: str, allowed: str = "") -> str | None:
    return next((c for c in text if c not in allowed and unicodedata.category(c) in _HIDDEN), None)


def _hidden(texts: Iterable[tuple[str, str, str]]) -> Iterator[errors.SpecError]:
    for field, value, allowed in texts:
        found = _hidden_char(value, allowed)
        if found is not None:
            yield errors.SpecError(
                field,
                f"must not contain control or invisible formatting characters"
                f" (found U+{ord(found):04X} at position {value.index(found)})",
            )


def _tag_template(field: str, template: str) -> Iterator[errors.SpecError]:
    names = yield from _template(field, template, frozenset(TAG_PLACEHOLDERS))
    if names is None:
        return
    longest = _render(template, {name: "x" * size for name, size in TAG_PLACEHOLDERS.items()})
    # Two builds that differ in every character of every value (revisions, keys and timestamps
    # are hex or digits): each must render to a valid tag, and the two tags must differ, else
    # the template gives every build the same tag (`v{timestamp:.0}` as much as `v1`).
    first, second = (
        _render(template, {name: char * size for name, size in TAG_PLACEHOLDERS.items()})
        for char in "01"
    )
    if len(longest) > 128:
        yield errors.SpecError(
            field, f"can expand to {len(longest)} characters; a tag has at most 128"
        )
    elif not _TAG.match(first) or not _TAG.match(second):
        yield errors.SpecError(field, "does not render to a valid tag")
    elif not names or first == second:
        yield errors.SpecError(
            field,
            "must contain a placeholder ({shortRevision}, {shortBuildKey}, ...) so that every build"
            " gets its own tag; a fixed tag would be overwritten",
        )


def _render(template: str, values: dict[str, str]) -> str:
    """`template` with `values` (a template `_template` accepted renders without error)."""
    return string.Formatter().vformat(template, (), values)


def _template(
    field: str, template: str, allowed: frozenset[str]
) -> Generator[errors.SpecError, None, frozenset[str] | None]:
    """Yield a problem with `template`; return the placeholder names it uses when it is valid:
    known names only, and a conversion or format spec that formatting a string accepts
    (`{image!z}`, `{revision:d}` raised only when the template was used)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        yield errors.SpecError(field, f"is not a valid template: {error}")
        return None
    names = frozenset(name for _, name, _, _ in parts if name is not None)
    unknown = sorted(name for name in names if name not in allowed)
    if unknown:
        known = ", ".join("{" + name + "}" for name in sorted(allowed))
        yield errors.SpecError(field, f"unknown placeholder {{{unknown[0]}}} (known: {known})")
        return None
    try:
        _render(template, dict.fromkeys(allowed, "x"))
    except (ValueError, TypeError, IndexError, KeyError) as error:
        yield errors.SpecError(field, f"is not a valid template: {error}")
        return None
    return names


def _duration(
    field: str, text: str, minimum: float, maximum: float | None
) -> Iterator[errors.SpecError]:
    try:
        seconds = durations.parse(text)
    except ValueError as error:
        yield errors.SpecError(field, str(error))
        return
    if seconds < minimum:
        yield errors.SpecError(field, f"must be at least {int(minimum)}s (got {text})")
    elif maximum is not None and seconds > maximum:
        yield errors.SpecError(field, f"must be at most {int(maximum // 3600)}h (got {text})")


# --- Kubernetes names and quantities (as k8s.io/apimachinery validates them) -------------------

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+))?$"
)
_SUFFIXES = {
    "": decimal.Decimal(1),
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    **{s: decimal.Decimal(10) ** (3 * (i + 1)) for i, s in enumerate("kMGTPE")},
    **{f"{s}i": decimal.Decimal(2) ** (10 * (i + 1)) for i, s in enumerate("KMGTPE")},
}
_STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})


def parse_quantity(text: str) -> decimal.Decimal | None:
    """The value of a Kubernetes quantity (`500m`, `2`, `1.5Gi`, `1e3`); None when it is not one."""
    found = _QUANTITY.match(text)
    if found is None:
        return None
    suffix = found["suffix"] or ""
    try:
        if suffix[:1] in ("e", "E"):
            return decimal.Decimal(text)  # an integral exponent, or InvalidOperation
        return decimal.Decimal(found["number"]) * _SUFFIXES[suffix]
    except ArithmeticError:  # decimal.InvalidOperation, decimal.Overflow
        return None


def _subdomain_problem(name: str) -> str | None:
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return (
            f"{name!r} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at"
            " most 253 characters)"
        )
    return None


def _label_key_problem(key: str) -> str | None:
    """A label key (also a taint key, a resource name): `[prefix/]name`, the prefix a subdomain."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or _subdomain_problem(prefix) is not None):
        return f"{key!r}: the prefix before '/' must be a DNS-1123 subdomain"
    if len(name) > 63 or not _NAME.match(name):
        return (
            f"{key!r} is not a valid key: the name (after any prefix/) has at most 63 letters,"
            " digits, '-', '_' or '.', and begins and ends with a letter or digit"
        )
    return None


def _label_value_problem(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            f"{value!r} is not a valid label value: at most 63 letters, digits, '-', '_' or '.',"
            " beginning and ending with a letter or digit"
        )
    return None


def _resource_name_problem(name: str) -> str | None:
    """A container resource: a standard one, `hugepages-<size>`, or a `domain/name` extended one."""
    if name in _STANDARD_RESOURCES or name.startswith("hugepages-"):
        return None
    if "/" in name:
        return _label_key_problem(name)
    return (
        f"unknown resource {name!r}: use cpu, memory, ephemeral-storage, hugepages-<size> or an"
        " extended resource with its domain (example.com/gpu)"
    )
