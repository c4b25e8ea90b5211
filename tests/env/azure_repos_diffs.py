"""The commit diffs resource of the Azure Repos emulator (`tests.env.azure_repos`):
`GET .../diffs/commits` (the client's `get_commit_diffs`), which compares two versions of a
repository: how many commits the target is ahead of and behind the base, their merge base, and
the files changed, as GitCommitDiffs.

A version is `baseVersion`/`targetVersion` of `baseVersionType`/`targetVersionType` `branch` (the
default), `tag` or `commit`; one that is not given is the default branch (so a request that
names neither compares the default branch with itself: ahead 0, behind 0). One that does not
resolve is a 404 (GitUnresolvableToCommitException, TF401175). `diffCommonCommit=true` lists the
changes from the merge base to the target, otherwise (the default here) from the base; `$top`
(100) and `$skip` page them, `allChangesIncluded` telling whether the page holds them all. Only
files are listed (the service lists the folders of added and deleted files too), and
`changeCounts` counts them by change type (`{"Add": 2, "Edit": 1}`, as the service spells them).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from tests.env.azure_repos_git import RepoGit
from tests.env.azure_repos_pulls import query_int
from tests.env.azure_repos_shapes import AzureError, Site

__all__ = ["commit_diffs"]

_GIT = "Microsoft.TeamFoundation.Git.Server"


def _unresolvable(kind: str, version: str, repo: str) -> AzureError:
    return AzureError(
        404,
        f"TF401175:The version descriptor <{kind.capitalize()}: {version} > could not be "
        f"resolved to a version in the repository {repo}",
        f"{_GIT}.GitUnresolvableToCommitException, {_GIT}",
    )


def _resolve(git: RepoGit, query: Mapping[str, str], side: str) -> str:
    """The commit of `baseVersion` or `targetVersion` (`side`: `base` or `target`)."""
    kind = query.get(f"{side}VersionType", "branch").lower()
    version = query.get(f"{side}Version")
    if version is None:
        default = git.default_branch()
        found = git.sha(default) if default else None
        if found is None:
            raise _unresolvable("branch", "", git.name)
        return found
    if kind == "commit":
        found = git.run("rev-parse", "--verify", "--quiet", f"{version}^{{commit}}").stdout
    elif kind == "tag":
        found = git.run(
            "rev-parse", "--verify", "--quiet", f"refs/tags/{version}^{{commit}}"
        ).stdout
    else:
        name = version if version.startswith("refs/heads/") else f"refs/heads/{version}"
        found = git.sha(name) or ""
    if not found.strip():
        raise _unresolvable(kind, version, git.name)
    return found.strip()


def commit_diffs(site: Site, git: RepoGit, query: Mapping[str, str]) -> dict[str, Any]:
    """GitCommitDiffs of the versions `query` names."""
    base, target = _resolve(git, query, "base"), _resolve(git, query, "target")
    common = git.merge_base(base, target)
    from_common = query.get("diffCommonCommit", "false").lower() == "true"
    entries = git.changes(common if from_common else base, target)
    skip = max(query_int(query, "$skip", 0), 0)
    top = max(query_int(query, "$top", 100), 0)
    page = entries[skip : skip + top]
    counts: dict[str, int] = {}
    for entry in entries:
        key = ", ".join(word.capitalize() for word in entry.kind.split(", "))
        counts[key] = counts.get(key, 0) + 1
    items = f"{site.repo_url(git.name)}/items"
    changes = []
    for entry in page:
        quoted = urllib.parse.quote(entry.path)
        change: dict[str, Any] = {
            "item": {
                "gitObjectType": "blob",
                "commitId": target,
                "path": f"/{entry.path}",
                "url": f"{items}/{quoted}?versionType=Commit&version={target}",
            },
            "changeType": entry.kind,
        }
        if entry.original_path is not None:
            change["originalPath"] = f"/{entry.original_path}"
        changes.append(change)
    data: dict[str, Any] = {
        "allChangesIncluded": skip == 0 and len(page) == len(entries),
        "changeCounts": counts,
        "changes": changes,
        "commonCommit": common,
        "baseCommit": base,
        "targetCommit": target,
        "aheadCount": len(git.commits_between(base, target)),
        "behindCount": len(git.commits_between(target, base)),
    }
    if common is None:
        del data["commonCommit"]
    return data
