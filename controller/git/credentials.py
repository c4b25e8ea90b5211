"""Git credentials read from a Kubernetes Secret, with Flux's key conventions (pure).

| key           | transport | meaning                                                         |
| ------------- | --------- | --------------------------------------------------------------- |
| `username`    | HTTP(S)   | HTTP Basic user (`password` requires it)                        |
| `password`    | HTTP(S)   | HTTP Basic password or personal access token                    |
| `bearerToken` | HTTP(S)   | `Authorization: Bearer`; wins over username/password, as in Flux |
| `identity`    | SSH       | private key (PEM / OpenSSH), not passphrase-protected           |
| `known_hosts` | SSH       | the server's host keys; required, hosts are always checked      |

Which keys are used is decided by the URL's transport (`for_transport`), as in Flux, so one
Secret may serve both. Pure: no I/O. A `Credentials` never shows a secret in its `repr`, and
`secrets()` lists every literal a message must not contain (including the Basic header value);
`scrub` takes them, and any credentials in URLs, out of a text. Shared by every user of git (build
sources and the catalog writer); `controller.git.environment` places them for git.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Mapping
from typing import Literal

from controller import errors

Transport = Literal["http", "ssh"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CredentialsInvalid(errors.StalledError):
    """The Secret cannot authenticate this transport: a key is missing or malformed.

    `key` names the Secret key at fault; the message never contains a value.
    """

    def __init__(self, key: str, problem: str, *, secret: str | None = None) -> None:
        where = f"Secret {secret!r}" if secret else "the credentials Secret"
        super().__init__("SourceSecretInvalid", f"{where}: key {key!r} {problem}")
        self.key = key
        self.secret = secret


@dataclasses.dataclass(frozen=True, repr=False)
class Credentials:
    """What a Secret holds for git; every field optional (empty: anonymous HTTP)."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    identity: bytes | None = None
    known_hosts: bytes | None = None
    secret: str | None = None
    """The Secret's name, for messages only."""

    def __repr__(self) -> str:
        shown = [
            f"{name}=***" if name != "username" else f"username={self.username!r}"
            for name in ("username", "password", "bearer_token", "identity", "known_hosts")
            if getattr(self, name) is not None
        ]
        if self.secret:
            shown.append(f"secret={self.secret!r}")
        return f"Credentials({', '.join(shown)})"

    __str__ = __repr__

    @property
    def basic_header(self) -> str | None:
        """`Basic base64(username:password)`, when a username is set."""
        if self.username is None:
            return None
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def secrets(self) -> tuple[str, ...]:
        """Every literal that must never appear in a message or a log, longest first."""
        found: list[str] = []
        for value in (self.password, self.bearer_token):
            if value:
                found.append(value)
        if self.password and self.basic_header:
            found.append(self.basic_header.removeprefix("Basic "))
        if self.identity:
            key = self.identity.decode(errors="replace")
            found.append(key.strip())
            found.extend(line.strip() for line in key.splitlines() if len(line.strip()) >= 16)
        return tuple(sorted(set(found), key=len, reverse=True))

    def for_transport(self, transport: Transport) -> Credentials:
        """Only the fields `transport` uses, checked; raises `CredentialsInvalid`."""
        if transport == "ssh":
            if not self.identity:
                raise CredentialsInvalid(
                    "identity", "is required for an SSH URL", secret=self.secret
                )
            if not self.known_hosts:
                raise CredentialsInvalid(
                    "known_hosts",
                    "is required for an SSH URL (host keys are always verified)",
                    secret=self.secret,
                )
            if b"ENCRYPTED" in self.identity or (
                b"OPENSSH PRIVATE KEY" in self.identity and _openssh_encrypted(self.identity)
            ):
                raise CredentialsInvalid(
                    "identity", "is passphrase-protected; this is not supported", secret=self.secret
                )
            return Credentials(
                identity=self.identity, known_hosts=self.known_hosts, secret=self.secret
            )
        if self.bearer_token:
            return Credentials(bearer_token=self.bearer_token, secret=self.secret)
        if self.password is not None and self.username is None:
            raise CredentialsInvalid("username", "is required with 'password'", secret=self.secret)
        return Credentials(username=self.username, password=self.password, secret=self.secret)


def _openssh_encrypted(identity: bytes) -> bool:
    """Whether an OpenSSH-format key names a cipher other than "none"."""
    body = b"".join(line for line in identity.splitlines() if line and not line.startswith(b"-"))
    try:
        raw = base64.b64decode(body)
    except ValueError:
        return False
    magic = b"openssh-key-v1\x00"
    if not raw.startswith(magic) or len(raw) < len(magic) + 4:
        return False
    size = int.from_bytes(raw[len(magic) : len(magic) + 4], "big")
    cipher = raw[len(magic) + 4 : len(magic) + 4 + size]
    return cipher != b"none"


def credentials_from_secret(data: Mapping[str, bytes], *, secret: str | None = None) -> Credentials:
    """Read the Flux keys of a Secret's decoded `data`; unknown keys are ignored.

    Empty values count as absent. Raises `CredentialsInvalid` naming the key when a value cannot
    be used (not UTF-8, control characters in a header value, ":" in a username).
    """

    def text(key: str) -> str | None:
        raw = data.get(key)
        if not raw:
            return None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise CredentialsInvalid(key, "is not UTF-8 text", secret=secret) from None

    username = text("username")
    if username is not None:
        username = username.strip()
        if ":" in username or _CONTROL.search(username):
            raise CredentialsInvalid(
                "username", "must not contain ':' or control characters", secret=secret
            )
    token = text("bearerToken")
    if token is not None:
        token = token.strip()  # a trailing newline from `--from-file` is common
        if not token or re.search(r"\s", token) or _CONTROL.search(token):
            raise CredentialsInvalid(
                "bearerToken", "must be one token without spaces or control characters",
                secret=secret,
            )  # fmt: skip
    return Credentials(
        username=username or None,
        password=text("password"),
        bearer_token=token,
        identity=data.get("identity") or None,
        known_hosts=data.get("known_hosts") or None,
        secret=secret,
    )


def scrub(text: str, credentials: Credentials | None) -> str:
    """`errors.redact(text)` with every literal secret of `credentials` replaced by `***`."""
    text = errors.redact(text)
    if credentials is not None:
        for value in credentials.secrets():
            text = text.replace(value, "***")
    return text
