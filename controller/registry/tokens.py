"""The bearer tokens and auth challenges a registry client keeps, and may share with others.

A registry answers an unauthenticated request with a challenge (`WWW-Authenticate`); a client
remembers it per host, so later requests carry a token from the start, and keeps each token it
fetched until shortly before it expires. The operator makes a client per use (a digest lookup, a
verification, a retention pass), so kept per client every lookup paid the 401 and the token
request again. One `TokenStore` shared by the clients of one process (`reconcile.images`) saves
those two round trips per lookup: on a remote registry's token service they cost more than the
lookup itself.

A token is kept per (realm, service, scope, credentials): `credentials` is a SHA-256 of the
credentials that fetched it (never the credentials themselves), so a client with other
credentials, or none, never sends it. At most `MAX_TOKENS` are kept; expired ones go first, then
the least recently used. No `repr` shows a token.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib

from controller.registry import auth

MAX_TOKENS = 1024
"""Tokens kept at most (a few per RunnerImage: its repository, its base image's)."""

Key = tuple[str, str, str, str]
"""(realm, service, scope, credentials' fingerprint)."""


@dataclasses.dataclass(repr=False)
class Token:
    value: str
    expires: float
    """When to stop using it (the client's clock)."""

    def __repr__(self) -> str:
        return f"Token(expires={self.expires})"


def fingerprint(credentials: auth.Credentials | None) -> str:
    """Which credentials fetched a token, as a digest ("" for none)."""
    if credentials is None:
        return ""
    secret = "\0".join(
        (credentials.username, credentials.password, credentials.identity_token or "")
    )
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Challenges per registry host, tokens per `Key`: what clients that share it know."""

    def __init__(self, *, max_tokens: int = MAX_TOKENS) -> None:
        self.challenges: dict[str, auth.Challenge] = {}
        self._tokens: collections.OrderedDict[Key, Token] = collections.OrderedDict()
        self._locks: dict[Key, asyncio.Lock] = {}
        self._max = max_tokens

    def __repr__(self) -> str:
        return f"TokenStore(tokens={len(self._tokens)})"

    def __len__(self) -> int:
        return len(self._tokens)

    def lock(self, key: Key) -> asyncio.Lock:
        """The lock under which `key`'s token is fetched (one fetch at a time per key)."""
        return self._locks.setdefault(key, asyncio.Lock())

    def get(self, key: Key, *, now: float) -> Token | None:
        """The token kept for `key` if it has not expired by `now`."""
        token = self._tokens.get(key)
        if token is None or token.expires <= now:
            return None
        self._tokens.move_to_end(key)
        return token

    def put(self, key: Key, token: Token, *, now: float) -> None:
        """Keep `token` for `key`, dropping expired tokens, then the least recently used."""
        self._tokens[key] = token
        self._tokens.move_to_end(key)
        if len(self._tokens) > self._max:
            for old in [k for k, t in self._tokens.items() if t.expires <= now]:
                del self._tokens[old]
        while len(self._tokens) > self._max:
            self._tokens.popitem(last=False)
        if len(self._locks) > 2 * self._max:
            for old in [k for k, lock in self._locks.items() if not lock.locked()]:
                if old not in self._tokens:
                    del self._locks[old]

    def forget(self, value: str) -> None:
        """Drop every kept token with this value (a registry just refused it)."""
        for key in [k for k, token in self._tokens.items() if token.value == value]:
            del self._tokens[key]
