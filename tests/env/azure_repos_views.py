"""The JSON of the Azure Repos emulator's pull requests (`tests.env.azure_repos_pulls`): a
GitPullRequest as a GET, a PATCH or a list shows it, its commits (GitCommitRef, newest first,
paged with a continuation token), its iterations (GitPullRequestIteration) and the changes of an
iteration (GitPullRequestIterationChanges: GitPullRequestChange entries whose `item` is a
GitItem with blob ids and a `/`-rooted path, and a `changeTrackingId` that stays the same for a
path across iterations), as the published description and its examples shape them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tests.env.azure_repos_git import Change
from tests.env.azure_repos_pulls import Iteration, Pull, PullRequests, query_int, short
from tests.env.azure_repos_shapes import AzureError

__all__ = ["Views"]


class Views:
    """The JSON of `pulls`' pull requests; `repository(name, brief)` is a repository's."""

    def __init__(
        self, pulls: PullRequests, repository: Callable[[str, bool], dict[str, Any]]
    ) -> None:
        self._pulls = pulls
        self._repository = repository

    def json(self, pull: Pull, *, brief: bool = False, links: bool = True) -> dict[str, Any]:
        """GitPullRequest as a GET shows it (`brief`: as lists do; `links`: with `_links`)."""
        site = self._pulls.site()
        url = site.pull_url(pull.repo, pull.id)
        data: dict[str, Any] = {
            "repository": self._repository(pull.repo, brief),
            "pullRequestId": pull.id,
            "codeReviewId": pull.id,
            "status": pull.status,
            "createdBy": site.identity(),
            "creationDate": pull.created,
        }
        if pull.closed is not None:
            data["closedDate"] = pull.closed
            data["closedBy"] = site.identity()
        data["title"] = pull.title
        if pull.description is not None:
            data["description"] = pull.description
        data.update(
            {
                "sourceRefName": pull.source_ref,
                "targetRefName": pull.target_ref,
                "mergeStatus": pull.merge_status,
                "isDraft": pull.is_draft,
                "mergeId": pull.merge_id,
                "lastMergeSourceCommit": site.commit_ref(pull.repo, pull.source),
                "lastMergeTargetCommit": site.commit_ref(pull.repo, pull.target),
            }
        )
        if pull.merge_commit is not None:
            data["lastMergeCommit"] = site.commit_ref(pull.repo, pull.merge_commit)
        if pull.queued is not None:
            data["completionQueueTime"] = pull.queued
        if pull.completion_options is not None:
            data["completionOptions"] = pull.completion_options
        data["reviewers"] = []
        data["labels"] = [
            {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "name": name, "active": True}
            for name in pull.labels
        ]
        data["url"] = url
        if links:
            data["_links"] = self._links(pull, url)
        data["supportsIterations"] = pull.supports_iterations
        data["artifactId"] = (
            f"vstfs:///Git/PullRequestId/{site.project_id}%2f{site.repo_id(pull.repo)}%2f{pull.id}"
        )
        return data

    def _links(self, pull: Pull, url: str) -> dict[str, Any]:
        site = self._pulls.site()
        api = site.repo_url(pull.repo)
        return {
            "self": {"href": url},
            "repository": {"href": api},
            "workItems": {"href": f"{url}/workitems"},
            "sourceBranch": {"href": f"{api}/refs/{short(pull.source_ref)}"},
            "targetBranch": {"href": f"{api}/refs/{short(pull.target_ref)}"},
            "statuses": {"href": f"{url}/statuses"},
            "sourceCommit": {"href": f"{api}/commits/{pull.source}"},
            "targetCommit": {"href": f"{api}/commits/{pull.target}"},
            "createdBy": {"href": site.identity()["url"]},
            "iterations": {"href": f"{url}/iterations"},
        }

    def commits(self, pull: Pull, query: Mapping[str, str]) -> tuple[list[dict[str, Any]], str]:
        """A page of the pull request's commits, newest first, and the continuation token of
        the next page ("" for none)."""
        self._pulls.refresh(pull)
        git = self._pulls.git(pull.repo)
        shas = git.commits_between(pull.target, pull.source)
        token = query.get("continuationToken", "0")
        if not token.isdigit():
            raise AzureError.bad_continuation()
        start, top = int(token), max(query_int(query, "$top", 100), 1)
        page = shas[start : start + top]
        site = self._pulls.site()
        listed = [site.commit_ref(pull.repo, sha, git.commit(sha)) for sha in page]
        more = start + top < len(shas)
        return listed, str(start + top) if more else ""

    def iterations(self, pull: Pull, query: Mapping[str, str]) -> list[dict[str, Any]]:
        self._pulls.refresh(pull)
        with_commits = query.get("includeCommits", "false").lower() == "true"
        return [self._iteration_json(pull, it, with_commits) for it in pull.iterations]

    def _iteration_json(self, pull: Pull, it: Iteration, with_commits: bool) -> dict[str, Any]:
        site = self._pulls.site()
        git = self._pulls.git(pull.repo)
        data: dict[str, Any] = {
            "id": it.id,
            "description": git.commit(it.source).message.split("\n", 1)[0],
            "author": site.identity(),
            "createdDate": it.created,
            "updatedDate": it.created,
            "sourceRefCommit": {"commitId": it.source},
            "targetRefCommit": {"commitId": it.target},
        }
        if it.common is not None:
            data["commonRefCommit"] = {"commitId": it.common}
        data["hasMoreCommits"] = False
        data["reason"] = it.reason
        if it.old_target is not None and it.new_target is not None:
            data["oldTargetRefName"], data["newTargetRefName"] = it.old_target, it.new_target
        if with_commits:
            shas = git.commits_between(it.target, it.source)
            data["commits"] = [site.commit_ref(pull.repo, s, git.commit(s)) for s in shas]
        return data

    def changes(self, pull: Pull, number: str, query: Mapping[str, str]) -> dict[str, Any]:
        """GitPullRequestIterationChanges of iteration `number` since its common commit with
        the target (`$compareTo=0`) or since iteration `$compareTo`; `$top` (100, at most
        2000) and `$skip`."""
        self._pulls.refresh(pull)
        if not number.isdigit() or not 1 <= int(number) <= len(pull.iterations):
            raise AzureError.iteration_not_found(number)
        iteration = pull.iterations[int(number) - 1]
        compare = query_int(query, "$compareTo", 0)
        if not 0 <= compare < iteration.id:
            raise AzureError.invalid_argument("$compareTo")
        since: str | None = pull.iterations[compare - 1].source if compare else iteration.common
        entries = self._pulls.git(pull.repo).changes(since, iteration.source)
        for entry in entries:
            pull.tracking.setdefault(entry.path, len(pull.tracking) + 1)
        skip = max(query_int(query, "$skip", 0), 0)
        top = min(max(query_int(query, "$top", 100), 1), 2000)
        page = entries[skip : skip + top]
        data: dict[str, Any] = {
            "changeEntries": [
                self._change_json(pull, entry, skip + index + 1) for index, entry in enumerate(page)
            ]
        }
        if skip + top < len(entries):
            data["nextSkip"], data["nextTop"] = skip + top, top
        return data

    @staticmethod
    def _change_json(pull: Pull, entry: Change, change_id: int) -> dict[str, Any]:
        item: dict[str, Any] = {}
        if entry.new_blob is not None:
            item["objectId"] = entry.new_blob
        if entry.old_blob is not None and entry.kind != "add":
            item["originalObjectId"] = entry.old_blob
        item["path"] = f"/{entry.path}"
        data: dict[str, Any] = {
            "changeTrackingId": pull.tracking[entry.path],
            "changeId": change_id,
            "item": item,
            "changeType": entry.kind,
        }
        if entry.original_path is not None:
            data["originalPath"] = f"/{entry.original_path}"
        return data
