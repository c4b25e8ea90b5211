"""Pull requests as the catalog write-back uses them: the model, the host seam, the verdict and
the text (pure).

With `spec.catalog.pullRequest` the operator's commits go to its push branch, and one pull
request from that branch into the base branch carries them to the catalog: opened when there is
none, updated (title and body) when the branch moved, never duplicated — every RunnerImage that
pushes the branch finds the same one by its head and base. `verdict` tells what a pull request
means for the commit the operator pushed last; `describe` writes its title and body from what the
pull request holds (every commit's subject and every file), so any RunnerImage sharing the branch
writes the same text and nobody rewrites it back and forth.

A host (`Host`) is reached through an adapter (`controller.hosting.github`); its failures are
`errors.StalledError` (credentials, a missing repository, a refusal) or `errors.TransientError`
(unreachable, 5xx, rate limits, paced by the host's Retry-After).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal, Protocol

from controller import errors

State = Literal["open", "merged", "closed"]
Verdict = Literal["merged", "open", "closed", "new"]

MARKER = "<!-- ade-runner-operator: this description is rewritten on every push -->"
MAX_LISTED = 50
"""Commits and files listed in a body at most (the rest are counted)."""


@dataclasses.dataclass(frozen=True, repr=False)
class GitHubApp:
    """A GitHub App installation (Flux's Secret keys `githubAppID`, `githubAppInstallationID`,
    `githubAppPrivateKey`): short-lived installation tokens are asked for with the key."""

    app_id: int
    installation_id: int
    private_key: str

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self.app_id}, installation_id={self.installation_id})"


Credential = str | GitHubApp
"""A token (a PAT, an installation token), or a GitHub App that makes its own."""

APP_KEYS = ("githubAppID", "githubAppInstallationID", "githubAppPrivateKey")


def credential_from_secret(data: Mapping[str, bytes], *, secret: str, field: str) -> Credential:
    """The API credential in a Secret's decoded `data`: key `token`, or Flux's GitHub App keys
    (`APP_KEYS`, all three); `errors.StalledError` naming the key at fault, never a value."""

    def problem(text: str) -> errors.StalledError:
        return errors.StalledError("SecretInvalid", f"{field}: Secret {secret!r} {text}")

    given = [key for key in APP_KEYS if data.get(key)]
    if given:
        missing = [key for key in APP_KEYS if key not in given]
        if missing:
            raise problem(f"has {', '.join(given)} but not {', '.join(missing)}")
        numbers = []
        for key in APP_KEYS[:2]:
            text = data[key].decode(errors="replace").strip()
            if not text.isdigit():
                raise problem(f"key {key!r} must be a number")
            numbers.append(int(text))
        key = data[APP_KEYS[2]].decode(errors="replace").strip()
        if "PRIVATE KEY-----" not in key:
            raise problem(f"key {APP_KEYS[2]!r} is not a PEM private key")
        return GitHubApp(numbers[0], numbers[1], key + "\n")
    token = (data.get("token") or b"").decode(errors="replace").strip()
    if not token:
        raise problem(f"has neither key 'token' nor the GitHub App keys {', '.join(APP_KEYS)}")
    return token


@dataclasses.dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: State
    head_sha: str
    """The head branch's commit the pull request was last at (merged: the one merged)."""
    title: str = ""
    body: str = ""


@dataclasses.dataclass(frozen=True)
class Contents:
    """What a pull request holds: its commits (sha, subject), oldest first, and its files."""

    commits: tuple[tuple[str, str], ...]
    files: tuple[str, ...]


class Host(Protocol):
    """One repository on a git host, with the operator's credentials."""

    @property
    def name(self) -> str: ...

    async def find_open(self, *, head: str, base: str) -> PullRequest | None:
        """The open pull request from branch `head` into `base`, if any."""
        ...

    async def get(self, number: int) -> PullRequest | None:
        """Pull request `number` (None: it does not exist)."""
        ...

    async def open(self, *, head: str, base: str, title: str, body: str) -> PullRequest | None:
        """Open a pull request; the open one if another writer opened it meanwhile; None when
        `head` holds no commit `base` lacks (nothing to merge)."""
        ...

    async def contents(self, number: int) -> Contents: ...

    async def edit(self, number: int, *, title: str, body: str) -> PullRequest: ...


def verdict(found: PullRequest | None, holds: bool) -> Verdict:
    """What `found` (the pull request of the push branch: the recorded one, or the open one)
    means for the push branch's commit the operator pushed last, which it `holds` (an open one
    always will): "merged" (the catalog has it), "open" (waiting for review), "closed" (closed
    without merging it: a person said no), or "new" (none carries it: open one)."""
    if found is None or not holds:
        return "new"
    return found.state


def describe(contents: Contents, *, title: str = "") -> tuple[str, str]:
    """The title and body of a pull request that holds `contents`: the spec's `title`, else the
    one commit's subject, else a count; the body lists every commit and file."""
    commits, files = contents.commits, contents.files
    if not title:
        title = (
            commits[0][1] if len(commits) == 1 else f"Update runner images ({len(commits)} commits)"
        )
    lines = [
        "The ade-runner-operator built and verified these runner images and points the catalog"
        " at them. Merging this pull request makes them live.",
        "",
        "Commits:",
    ]
    lines += [f"- {sha[:12]} {subject}" for sha, subject in commits[:MAX_LISTED]]
    if len(commits) > MAX_LISTED:
        lines.append(f"- ... and {len(commits) - MAX_LISTED} more")
    lines += ["", "Files:"]
    lines += [f"- `{path}`" for path in files[:MAX_LISTED]]
    if len(files) > MAX_LISTED:
        lines.append(f"- ... and {len(files) - MAX_LISTED} more")
    lines += ["", MARKER]
    return title[:256], "\n".join(lines)
