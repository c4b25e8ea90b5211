"""The operator's clients of git hosts' APIs: where a repository's API is (`locate`), and one
client per provider, API, repository and token, kept for reuse (bounded), made on first use."""

from __future__ import annotations

import collections
import hashlib

from controller.hosting import pulls

MAX_CLIENTS = 256
GITHUB, AZURE_REPOS = "GitHub", "AzureRepos"


class Unlocated(ValueError):
    """The spec must name it: `field` (`apiUrl` or `repository`) cannot be told from the URL."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def locate(provider: str, *, git_url: str, api_url: str, repository: str) -> tuple[str, str]:
    """(the API's URL, the repository) of `git_url` on `provider`: as given, else told from the
    URL: GitHub's `https://api.github.com` and `owner/name` for github.com; Azure Repos'
    organization URL and `project/name` for dev.azure.com and *.visualstudio.com."""
    # Each provider's adapter (and its client library, PyGithub or azure-devops: megabytes) is
    # imported when a RunnerImage first uses it, not at start-up.
    if provider == AZURE_REPOS:
        from controller.hosting import azure_repos  # noqa: PLC0415

        found = azure_repos.location_of(git_url)
        api_url = api_url or (found[0] if found else "")
        repository = repository or (f"{found[1]}/{found[2]}" if found else "")
        where = "outside dev.azure.com (the organization URL, e.g. https://dev.azure.com/ORG)"
        if not api_url:
            raise Unlocated("apiUrl", f"is required for a repository {where}")
        if not repository:
            raise Unlocated("repository", "is required (PROJECT/REPOSITORY) for this git URL")
        return api_url, repository
    from controller.hosting import github  # noqa: PLC0415

    api_url = api_url or github.api_url_of(git_url) or ""
    if not api_url:
        raise Unlocated(
            "apiUrl",
            "is required for a repository outside github.com (GitHub Enterprise: "
            "https://HOST/api/v3)",
        )
    if not repository:
        try:
            repository = github.repository_of(git_url)
        except ValueError as error:
            raise Unlocated("repository", f"is required: {error}") from None
    return api_url, repository


class Hosts:
    def __init__(self) -> None:
        self._clients: collections.OrderedDict[tuple[str, str, str, str], pulls.Host] = (
            collections.OrderedDict()
        )

    def get(
        self, *, provider: str, api_url: str, repository: str, token: pulls.Credential
    ) -> pulls.Host:
        """The client of `repository` at `api_url` with `token` (`provider`: GitHub or
        AzureRepos, whose `repository` is `project/name`; a GitHub App only for GitHub)."""
        material = token if isinstance(token, str) else repr(token) + token.private_key
        digest = hashlib.sha256(material.encode()).hexdigest()
        key = (provider, api_url, repository, digest)
        client = self._clients.get(key)
        if client is None:
            client = _client(provider, api_url=api_url, repository=repository, token=token)
            self._clients[key] = client
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client


def _client(provider: str, *, api_url: str, repository: str, token: pulls.Credential) -> pulls.Host:
    if provider == GITHUB:
        from controller.hosting import github  # noqa: PLC0415

        return github.GitHubRepository(api_url=api_url, repository=repository, token=token)
    if provider == AZURE_REPOS:
        if not isinstance(token, str):
            raise ValueError("a GitHub App cannot sign in to Azure Repos: give a token (PAT)")
        from controller.hosting import azure_repos  # noqa: PLC0415

        project, _, name = repository.partition("/")
        return azure_repos.AzureReposRepository(
            organization_url=api_url, project=project, repository=name, token=token
        )
    raise ValueError(f"unknown pull request provider {provider!r}")
