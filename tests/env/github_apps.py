"""GitHub Apps for the GitHub emulator: installations, and the installation tokens they ask for.

`POST /app/installations/{installation_id}/access_tokens` is authenticated by the App itself: a
JSON Web Token signed RS256 with the App's private key, `iss` the App's id, `iat`/`exp` at most
ten minutes apart, checked with the App's public key (as GitHub does; a bad or expired one is
401 "A JSON web token could not be decoded", an installation of another App 404). The answer is
an installation token (`ghs_...`, one hour) that the emulator then accepts like its own token,
until it expires. The App's JWT itself opens nothing else.
"""

from __future__ import annotations

import dataclasses
import datetime
import hmac
import secrets
import threading
from typing import Any

import jwt

from tests.env.github_shapes import GitHubError, doc_url

ACCESS_TOKENS = "/app/installations/{installation_id}/access_tokens"
TOKEN_LIFETIME = datetime.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class Installation:
    app_id: int
    installation_id: int
    public_key: bytes


class Apps:
    """The Apps installed on the emulated organization, and the tokens they were given."""

    def __init__(self) -> None:
        self._installations: dict[int, Installation] = {}
        self._tokens: dict[str, datetime.datetime] = {}
        self._lock = threading.Lock()
        self.issued = 0
        """How many installation tokens were given out."""

    def install(self, app_id: int, installation_id: int, public_key: bytes) -> None:
        with self._lock:
            self._installations[installation_id] = Installation(app_id, installation_id, public_key)

    def accepts(self, token: str) -> bool:
        """Whether `token` is an installation token given out and not expired."""
        now = datetime.datetime.now(datetime.UTC)
        with self._lock:
            return any(
                hmac.compare_digest(token.encode(), known.encode()) and expires > now
                for known, expires in self._tokens.items()
            )

    def issue(self, authorization: str, installation_id: str) -> dict[str, Any]:
        """The body of a 201 for a token request carrying `authorization`; `GitHubError` for a
        request GitHub would refuse."""
        doc = doc_url("POST", ACCESS_TOKENS)
        scheme, _, token = authorization.partition(" ")
        installation = (
            self._installations.get(int(installation_id)) if installation_id.isdigit() else None
        )
        if scheme.lower() != "bearer" or token.count(".") != 2:
            raise GitHubError(401, "A JSON web token could not be decoded", documentation_url=doc)
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise GitHubError(
                401, "A JSON web token could not be decoded", documentation_url=doc
            ) from None
        if installation is None or str(unverified.get("iss")) != str(installation.app_id):
            raise GitHubError(404, "Not Found", documentation_url=doc)
        try:
            claims = jwt.decode(
                token,
                installation.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=60,
            )
        except jwt.PyJWTError as error:
            raise GitHubError(
                401, f"A JSON web token could not be decoded ({type(error).__name__})",
                documentation_url=doc,
            ) from None  # fmt: skip
        if int(claims["exp"]) - int(claims["iat"]) > 660:
            raise GitHubError(
                401,
                "'Expiration time' claim ('exp') is too far in the future",
                documentation_url=doc,
            )
        given = "ghs_" + secrets.token_urlsafe(27)
        expires = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + TOKEN_LIFETIME
        with self._lock:
            self._tokens[given] = expires
            self.issued += 1
        return {
            "token": given,
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
            "permissions": {"contents": "write", "pull_requests": "write", "metadata": "read"},
            "repository_selection": "all",
        }
