"""Whether an event comes from who holds the receiver's token, per the host's scheme.

GitHub and the generic form sign the raw body: `X-Hub-Signature-256` / `X-Signature`, both
`sha256=` and the hex HMAC-SHA256 of the body keyed with the token. Azure Repos service hooks and
ACR webhooks send a header the subscription was given: basic authentication with the token as
password (and the Secret's `username`, when it has one), or `Authorization: Bearer <token>`.
Every comparison takes constant time; no message repeats what was sent.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
from collections.abc import Mapping

from controller.receivers import events

MIN_TOKEN_LENGTH = 16


@dataclasses.dataclass(frozen=True)
class Credentials:
    token: str
    username: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"


def check(kind: str, headers: Mapping[str, str], body: bytes, credentials: Credentials) -> None:
    """Raise `events.Refused` (401) unless the event carries proof of `credentials`'s token.
    `headers` have lower-case names."""
    if kind == events.GITHUB:
        _signed(headers, "x-hub-signature-256", body, credentials.token)
    elif kind == events.GENERIC:
        _signed(headers, "x-signature", body, credentials.token)
    else:
        _authorized(headers, credentials)


def signature(body: bytes, token: str) -> str:
    """`sha256=` and the hex HMAC-SHA256 of `body` keyed with `token`."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def _signed(headers: Mapping[str, str], header: str, body: bytes, token: str) -> None:
    given = headers.get(header, "").strip()
    if not given:
        raise _unauthorized(f"the event has no {_title(header)} header")
    if not hmac.compare_digest(given.lower().encode(), signature(body, token).encode()):
        raise _unauthorized(f"{_title(header)} does not match the body and the receiver's token")


def _authorized(headers: Mapping[str, str], credentials: Credentials) -> None:
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        if hmac.compare_digest(value.encode(), credentials.token.encode()):
            return
        raise _unauthorized("the bearer token is not the receiver's token")
    if scheme.lower() == "basic" and value:
        try:
            username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized("the basic authorization header is not base64") from None
        good = hmac.compare_digest(password.encode(), credentials.token.encode())
        if credentials.username is not None:
            good &= hmac.compare_digest(username.encode(), credentials.username.encode())
        if good:
            return
        raise _unauthorized("the basic authorization's user name or password is not the receiver's")
    raise _unauthorized("the event has no Authorization header (Basic or Bearer)")


def _unauthorized(message: str) -> events.Refused:
    return events.Refused(401, events.UNAUTHORIZED, message)


def _title(header: str) -> str:
    return "-".join(part.capitalize() if part != "x" else "X" for part in header.split("-"))
