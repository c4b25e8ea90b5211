"""The operator's clients of git hosts' APIs: one per provider, API, repository and token, kept
for reuse (bounded), made on first use."""

from __future__ import annotations

import collections
import hashlib

from controller.hosting import github, pulls

MAX_CLIENTS = 256


class Hosts:
    def __init__(self) -> None:
        self._clients: collections.OrderedDict[tuple[str, str, str, str], pulls.Host] = (
            collections.OrderedDict()
        )

    def get(self, *, provider: str, api_url: str, repository: str, token: str) -> pulls.Host:
        """The client of `repository` at `api_url` with `token` (`provider`: "GitHub")."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        key = (provider, api_url, repository, digest)
        client = self._clients.get(key)
        if client is None:
            if provider != "GitHub":
                raise ValueError(f"unknown pull request provider {provider!r}")
            client = github.GitHubRepository(api_url=api_url, repository=repository, token=token)
            self._clients[key] = client
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client
