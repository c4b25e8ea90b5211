"""Image references and digests (pure): parse, validate, normalize and format.

`host[:port]/path[:tag][@algorithm:hex]` as Docker and the OCI distribution spec read them:

- The first path component is a registry only when it has a "." or a ":", is `localhost`, or
  holds an upper-case letter; otherwise the reference is on Docker Hub (`docker.io`), and a
  one-component Docker Hub repository gets the `library/` prefix (`alpine` ->
  `docker.io/library/alpine`). `index.docker.io` is folded into `docker.io`; the HTTP endpoint for
  Docker Hub is `registry-1.docker.io` (`Reference.endpoint`).
- Repository components are lower-case `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
- A tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. A digest is `sha256:` + 64 or `sha512:` + 128
  lower-case hex characters (the algorithms registries verify); anything else is refused.

Every error is a `InvalidReference` (a `ValueError`) that quotes the text it could not read.
"""

from __future__ import annotations

import dataclasses
import re

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"(?P<algorithm>[a-z0-9]+):(?P<hex>[a-f0-9]+)")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(
    rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[a-fA-F0-9:]+\])(?::(?P<port>[0-9]{{1,5}}))?"
)


class InvalidReference(ValueError):
    """Text that is not an image reference, repository, tag or digest."""


def validate_digest(text: str) -> str:
    """Return `text` if it is a digest this client can verify (`sha256:<64 hex>`, ...)."""
    match = _DIGEST.fullmatch(text)
    if match is None:
        raise InvalidReference(f"{text!r} is not a digest (algorithm:hex)")
    algorithm = match["algorithm"]
    if algorithm not in _DIGEST_LENGTHS:
        raise InvalidReference(f"{text!r}: unsupported digest algorithm {algorithm!r}")
    if len(match["hex"]) != _DIGEST_LENGTHS[algorithm]:
        raise InvalidReference(
            f"{text!r}: a {algorithm} digest has {_DIGEST_LENGTHS[algorithm]} hex characters"
        )
    return text


def is_digest(text: str) -> bool:
    try:
        validate_digest(text)
    except InvalidReference:
        return False
    return True


def validate_tag(text: str) -> str:
    if _TAG.fullmatch(text) is None:
        raise InvalidReference(f"{text!r} is not a valid tag")
    return text


def normalize_registry(host: str) -> str:
    """Docker Hub's aliases become `docker.io`; other hosts are kept as written (as Docker does:
    lower-casing `Upper/x` would turn its registry into a Docker Hub namespace). Compare hosts
    case-insensitively (`auth.normalize_host`)."""
    return DOCKER_HUB if host.lower() in _DOCKER_HUB_ALIASES else host


def validate_registry(host: str) -> str:
    match = _HOST.fullmatch(host)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise InvalidReference(f"{host!r} is not a registry host[:port]")
    return normalize_registry(host)


def validate_repository(path: str) -> str:
    if not path or any(_COMPONENT.fullmatch(part) is None for part in path.split("/")):
        raise InvalidReference(
            f"{path!r} is not a repository (lower-case components separated by '/')"
        )
    return path


@dataclasses.dataclass(frozen=True)
class Reference:
    """A normalized reference; `tag` and `digest` are both optional (a bare repository)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "registry", validate_registry(self.registry))
        validate_repository(self.repository)
        if self.tag is not None:
            validate_tag(self.tag)
        if self.digest is not None:
            validate_digest(self.digest)
        if len(self.name) > MAX_NAME_LENGTH:
            raise InvalidReference(f"{self.name!r} is longer than {MAX_NAME_LENGTH} characters")

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def endpoint(self) -> str:
        """The host[:port] to send HTTP requests to (Docker Hub's differs from its name)."""
        return DOCKER_HUB_ENDPOINT if self.registry == DOCKER_HUB else self.registry

    @property
    def identifier(self) -> str:
        """What goes after `/manifests/`: the digest if any, else the tag, else `latest`."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        """The same image pinned by digest (the tag is kept for readability)."""
        return dataclasses.replace(self, digest=validate_digest(digest))

    def with_tag(self, tag: str) -> Reference:
        return dataclasses.replace(self, tag=validate_tag(tag), digest=None)

    def repository_only(self) -> Reference:
        return dataclasses.replace(self, tag=None, digest=None)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _split_registry(name: str, default_registry: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and (any(c in first for c in ".:") or first == "localhost" or first != first.lower()):
        return validate_registry(first), rest
    return normalize_registry(default_registry), name


def parse(text: str, *, default_registry: str = DOCKER_HUB) -> Reference:
    """Parse `text` into a normalized `Reference` (see the module docstring for the rules)."""
    if not text or text != text.strip():
        raise InvalidReference(f"{text!r} is not an image reference")
    remainder, at, digest = text.partition("@")
    try:
        if at:
            validate_digest(digest)
        # A ":" after the last "/" starts the tag; one before it belongs to host:port.
        slash = remainder.rfind("/")
        colon = remainder.rfind(":")
        tag: str | None = None
        if colon > slash:
            remainder, tag = remainder[:colon], validate_tag(remainder[colon + 1 :])
        registry, repository = _split_registry(remainder, default_registry)
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        return Reference(registry, validate_repository(repository), tag, digest if at else None)
    except InvalidReference as error:
        raise InvalidReference(f"{text!r} is not an image reference: {error}") from None


def format_familiar(ref: Reference) -> str:
    """The short form people type: Docker Hub's registry and `library/` left out."""
    text = str(ref)
    if ref.registry != DOCKER_HUB:
        return text
    first = ref.repository.split("/", 1)[0]
    if "/" in ref.repository and (any(c in first for c in ".:") or first == "localhost"):
        return text  # `docker.io/a.b/c` without its registry would read `a.b` as one
    text = text.removeprefix(f"{DOCKER_HUB}/")
    short = text.removeprefix("library/")
    return short if "/" not in ref.repository.removeprefix("library/") else text
