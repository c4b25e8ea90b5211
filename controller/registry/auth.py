"""Registry authentication data (pure): challenges, credentials, docker config payloads.

- `parse_challenges` reads a `WWW-Authenticate` header (RFC 7235): one or several challenges,
  `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`, quoted values that hold
  commas, spaces and escaped quotes, unquoted tokens, parameter names in any case.
- `Credentials` is a user name with a password, or an identity token (a refresh token, as
  `docker login` stores for Azure Container Registry). Its `repr` and `str` never show a secret.
- `parse_docker_config` reads the payload of a `kubernetes.io/dockerconfigjson` Secret (the
  `.dockerconfigjson` key; the older `.dockercfg` shape without `auths` too) into credentials per
  registry host. Keys may be hosts (`contoso.azurecr.io`, `127.0.0.1:5000`) or URLs
  (`https://index.docker.io/v1/`); `auth` (base64 of `user:password`) wins over `username` /
  `password`, as in Docker. Errors name the entry, never its content (nor user information a
  URL key may hold). Any payload gives a store or a `DockerConfigError`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from controller.registry import reference


class DockerConfigError(ValueError):
    """A docker config payload that cannot be read; the message quotes no secret."""


# -- challenges --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Challenge:
    """One authentication challenge; `scheme` lower-cased, parameter names lower-cased."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.params if key == name), None)

    @property
    def realm(self) -> str | None:
        return self.get("realm")

    @property
    def service(self) -> str | None:
        return self.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The `scope` parameter split on spaces (a registry may ask for several)."""
        return tuple((self.get("scope") or "").split())

    @property
    def error(self) -> str | None:
        """`error="insufficient_scope"` and the like, when the registry says why."""
        return self.get("error")


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    def quoted(self) -> str:
        assert self.peek() == '"'
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                return "".join(out)
            else:
                out.append(char)
        return "".join(out)  # unterminated: take what is there


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a `WWW-Authenticate` value, in order; unknown syntax is skipped."""
    scanner = _Scanner(header)
    challenges: list[Challenge] = []
    while True:
        scanner.skip(" \t,")
        scheme = scanner.match(_TOKEN)
        if scheme is None:
            break
        params: list[tuple[str, str]] = []
        scanner.skip(" \t")
        # A token68 (`Basic dXNlcg==`) or a list of name=value parameters.
        start = scanner.pos
        word = scanner.match(_TOKEN68)
        scanner.skip(" \t")
        if word is not None and scanner.peek() in ("", ","):
            params.append(("token68", word))
        else:
            scanner.pos = start
            while True:
                scanner.skip(" \t")
                mark = scanner.pos
                name = scanner.match(_TOKEN)
                scanner.skip(" \t")
                if name is None or scanner.peek() != "=":
                    scanner.pos = mark  # the next challenge starts here
                    break
                scanner.pos += 1
                scanner.skip(" \t")
                quoted = scanner.peek() == '"'
                value = scanner.quoted() if quoted else (scanner.match(_TOKEN) or "")
                params.append((name.lower(), value))
                scanner.skip(" \t")
                if scanner.peek() != ",":
                    break
                scanner.pos += 1
                # A comma may also end this challenge: the loop finds out from what follows.
        challenges.append(Challenge(scheme.lower(), tuple(params)))
        if scanner.pos >= len(header):
            break
    return challenges


# -- credentials -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class Credentials:
    """A user name and password, or an identity (refresh) token; secrets never in `repr`."""

    username: str = ""
    password: str = ""
    identity_token: str | None = None

    def __repr__(self) -> str:
        secret = "identity_token=<redacted>" if self.identity_token else "password=<redacted>"
        return f"Credentials(username={self.username!r}, {secret})"

    __str__ = __repr__

    @property
    def basic(self) -> str:
        """The `Authorization` value for HTTP Basic (a secret: never log it)."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


class CredentialStore(Mapping[str, Credentials]):
    """Credentials by normalized registry host (`docker.io`, `contoso.azurecr.io`, `host:port`)."""

    def __init__(self, entries: Mapping[str, Credentials] | None = None) -> None:
        self._entries = {normalize_host(key): value for key, value in (entries or {}).items()}

    def __getitem__(self, host: str) -> Credentials:
        return self._entries[normalize_host(host)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, host: str) -> Credentials | None:
        """The credentials for `host`, or None (the client then goes anonymous)."""
        return self._entries.get(normalize_host(host))

    def __repr__(self) -> str:
        return f"CredentialStore(hosts={sorted(self._entries)!r})"

    __str__ = __repr__


def normalize_host(key: str) -> str:
    """A docker config key or a host to the form references use: `https://x/v1/` -> `x`
    (user information, `https://user:password@x/`, is no part of the host)."""
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.rpartition("@")[2].split("/", 1)[0]
    return reference.normalize_registry(text).lower()


def _shown(key: str) -> str:
    """A docker config key as an error may quote it: anything up to the last "@" masked (user
    information, whatever it holds, even a "/" a URL would have escaped)."""
    scheme, sep, rest = key.rpartition("://") if "://" in key else ("", "", key)
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return repr(f"{scheme}{sep}{rest}")


def _entry(key: str, entry: Any) -> Credentials | None:
    host = _shown(key)
    if not isinstance(entry, Mapping):
        raise DockerConfigError(f"entry {host} is not an object")
    username, password = entry.get("username") or "", entry.get("password") or ""
    encoded = entry.get("auth")
    if encoded:
        if not isinstance(encoded, str):
            raise DockerConfigError(f"entry {host}: auth is not a string")
        try:
            decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            text = decoded.decode()
        except ValueError:  # binascii.Error, non-ASCII text, UnicodeDecodeError
            raise DockerConfigError(f"entry {host}: auth is not base64 of user:password") from None
        username, sep, password = text.partition(":")
        if not sep:
            raise DockerConfigError(f"entry {host}: auth is not base64 of user:password")
    token = entry.get("identitytoken") or None
    for name, value in (("username", username), ("password", password), ("identitytoken", token)):
        if value is not None and not isinstance(value, str):
            raise DockerConfigError(f"entry {host}: {name} is not a string")
    if not (username or password or token):
        return None  # e.g. only a credential helper or a registrytoken: nothing usable here
    return Credentials(username=username, password=password, identity_token=token)


def parse_docker_config(payload: bytes | str | Mapping[str, Any]) -> CredentialStore:
    """Credentials per host from a `.dockerconfigjson` (or legacy `.dockercfg`) payload."""
    if isinstance(payload, Mapping):
        document: Any = payload
    else:
        try:
            document = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise DockerConfigError("the docker config is not valid JSON") from None
    if not isinstance(document, Mapping):
        raise DockerConfigError("the docker config is not a JSON object")
    auths = document.get("auths", document if "auths" not in document else None)
    if not isinstance(auths, Mapping):
        raise DockerConfigError("auths is not an object")
    entries: dict[str, Credentials] = {}
    # A bare host key is the most specific way to say it: it wins over a URL form of the host.
    for key in sorted(auths, key=lambda k: "://" not in k):
        if not isinstance(key, str):
            continue
        credentials = _entry(key, auths[key])
        if credentials is not None:
            entries[normalize_host(key)] = credentials
    return CredentialStore(entries)
