"""The pull requests of the Azure Repos emulator (`tests.env.azure_repos`): their state and its
changes (create, search, update, retarget, abandon, reactivate, complete), as Azure DevOps keeps
them (their JSON: `tests.env.azure_repos_views`).

Pull requests live in memory, numbered from 1 across the organization (Azure numbers them per
collection). While active, one follows its branches: each read takes the heads afresh, a new
source head adds an iteration (`push`, or `forcePush` when the old head is not an ancestor), and
the service's test merge is made (`merge-tree`, a commit kept at `refs/pull/{id}/merge` as Azure
does), giving `mergeStatus` `succeeded` (with `lastMergeCommit`) or `conflicts`. Just created, a
pull request shows `mergeStatus: queued`, as the service answers the POST. Once abandoned or
completed it keeps the heads it had.

Choices, as the service behaves where known (its published examples and answers): a pull request
with no commits between its branches is created (Azure allows it; completing it still makes a
commit, with the target's tree, whose duplicate parent git drops); completing (`status:
completed` with a 40-hex `lastMergeSourceCommit`) is refused with 409 if the source moved since,
then merges for real, with `completionOptions.mergeStrategy` (`noFastForward`, the default,
`squash`, `rebase`, `rebaseMerge`); the target moves by compare-and-swap. Azure completes
asynchronously and answers the PATCH with the pull request still `active` (and
`completionQueueTime` set): so does the emulator unless `synchronous_completion`; the merge
itself is done before the answer, so the next GET shows it `completed`. A conflict leaves it
`active` with `mergeStatus: conflicts`.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tests.env.azure_repos_git import RepoGit
from tests.env.azure_repos_shapes import AzureError, Site
from tests.env.bare_repo import identity_env

__all__ = ["Iteration", "Pull", "PullRequests", "now", "query_int", "short"]

MAX_DESCRIPTION = 4000
_UPDATABLE = frozenset(
    {"title", "description", "status", "isDraft", "lastMergeSourceCommit", "completionOptions",
     "mergeOptions", "targetRefName", "autoCompleteSetBy", "labels"}
)  # fmt: skip
_INVALID_UPDATE = "The pull request to update was not valid."
_STRATEGIES = ("noFastForward", "squash", "rebase", "rebaseMerge")


def now() -> str:
    """The present as Azure DevOps writes it (seven decimals, `Z`)."""
    moment = datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


@dataclasses.dataclass
class Iteration:
    id: int
    source: str
    target: str
    common: str | None
    reason: str
    created: str
    old_target: str | None = None
    new_target: str | None = None


@dataclasses.dataclass
class Pull:
    id: int
    repo: str
    title: str
    description: str | None
    source_ref: str
    target_ref: str
    source: str
    """Source head sha: live while active, as it was when closed."""
    target: str
    created: str
    merge_id: str
    is_draft: bool = False
    supports_iterations: bool = True
    labels: list[str] = dataclasses.field(default_factory=list)
    status: str = "active"
    merge_status: str = "queued"
    merge_commit: str | None = None
    """The test merge while active; the real merge commit once completed."""
    closed: str | None = None
    queued: str | None = None
    completion_options: dict[str, Any] | None = None
    iterations: list[Iteration] = dataclasses.field(default_factory=list)
    tracking: dict[str, int] = dataclasses.field(default_factory=dict)


def short(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


def _text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise AzureError.invalid_argument(_INVALID_UPDATE)
    return value


def query_int(query: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(query.get(key, default))
    except ValueError:
        raise AzureError.invalid_argument(key) from None


class PullRequests:
    """The organization's pull requests over its repositories (`repo_git(name)`)."""

    def __init__(self, site: Callable[[], Site], repo_git: Callable[[str], RepoGit]) -> None:
        self.site = site
        self.git = repo_git
        self._pulls: dict[int, Pull] = {}
        self._merges: dict[tuple[str, str, str], str | None] = {}

    def of(self, repo: str) -> list[Pull]:
        return [pull for pull in self._pulls.values() if pull.repo == repo]

    def find(self, repo: str, number: str | int) -> Pull:
        pull = self._pulls.get(int(number)) if str(number).isdigit() else None
        if pull is None or pull.repo != repo:
            raise AzureError.pull_not_found()
        return pull

    # -- creating and listing ----------------------------------------------------------------

    def create(self, repo: str, body: Mapping[str, Any], query: Mapping[str, str]) -> Pull:
        source_ref, target_ref = _text(body, "sourceRefName"), _text(body, "targetRefName")
        if not source_ref or not target_ref:
            raise AzureError.invalid_argument("A pull request needs a source and a target ref.")
        title = _text(body, "title")
        if not title or not title.strip():
            raise AzureError.invalid_argument("The title of the pull request is missing.")
        repository = body.get("repository") or {}
        if repository.get("id") not in (None, "", self.site().repo_id(repo)):
            raise AzureError.invalid_argument("The repository id does not match the route.")
        description = _text(body, "description")
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise AzureError.invalid_argument(
                f"The description is longer than {MAX_DESCRIPTION} characters."
            )
        if source_ref == target_ref:
            raise AzureError.invalid_argument("The source and target refs are the same.")
        git = self.git(repo)
        source, target = git.sha(source_ref), git.sha(target_ref)
        if source is None or target is None:
            raise AzureError.cannot_activate()
        self._refuse_duplicate(repo, source_ref, target_ref)
        created = now()
        pull = Pull(
            id=len(self._pulls) + 1,
            repo=repo,
            title=title,
            description=description,
            source_ref=source_ref,
            target_ref=target_ref,
            source=source,
            target=target,
            created=created,
            merge_id=str(uuid.uuid4()),
            is_draft=bool(body.get("isDraft", False)),
            supports_iterations=query.get("supportsIterations", "true").lower() != "false",
            labels=[str(label.get("name")) for label in body.get("labels") or []],
        )
        pull.iterations.append(self._iteration(pull, "create"))
        self._pulls[pull.id] = pull
        return pull

    def _refuse_duplicate(self, repo: str, source_ref: str, target_ref: str) -> None:
        for other in self.of(repo):
            same = (other.source_ref, other.target_ref) == (source_ref, target_ref)
            if same and other.status == "active":
                raise AzureError.pull_exists()

    def search(self, repo: str, query: Mapping[str, str]) -> list[Pull]:
        """`searchCriteria.*`, `$top` (101 by default, at most 1000), `$skip`; newest first."""
        status = query.get("searchCriteria.status", "active")
        if status not in ("notSet", "active", "abandoned", "completed", "all"):
            raise AzureError.invalid_argument("Status")
        site = self.site()
        wanted: dict[str, Callable[[Pull], str]] = {
            "searchCriteria.sourceRefName": lambda p: p.source_ref,
            "searchCriteria.targetRefName": lambda p: p.target_ref,
            "searchCriteria.creatorId": lambda p: site.user_id,
            "searchCriteria.repositoryId": lambda p: site.repo_id(p.repo),
            "searchCriteria.sourceRepositoryId": lambda p: site.repo_id(p.repo),
        }
        found = []
        for pull in sorted(self.of(repo), key=lambda p: -p.id):
            self.refresh(pull)
            if status != "all" and pull.status != ("active" if status == "notSet" else status):
                continue
            if all(
                get(pull).lower() == query[key].lower()
                for key, get in wanted.items()
                if key in query
            ):
                found.append(pull)
        skip = max(query_int(query, "$skip", 0), 0)
        top = min(query_int(query, "$top", 101), 1000)
        return found[skip : skip + top]

    # -- following the branches --------------------------------------------------------------

    def refresh(self, pull: Pull) -> None:
        """While active: the heads afresh, a new iteration for a new source head, the test
        merge (`mergeStatus`, `lastMergeCommit`)."""
        if pull.status != "active":
            return
        git = self.git(pull.repo)
        source, target = git.sha(pull.source_ref), git.sha(pull.target_ref)
        if source is None or target is None:
            return  # a branch is gone: the pull request keeps what it last saw
        moved = source != pull.source
        pull.source, pull.target = source, target
        if moved:
            forced = not git.is_ancestor(pull.iterations[-1].source, source)
            pull.iterations.append(self._iteration(pull, "forcePush" if forced else "push"))
        key = (pull.repo, target, source)
        if key not in self._merges:
            self._merges[key] = self._test_merge(pull)
        pull.merge_commit = self._merges[key]
        pull.merge_status = "conflicts" if pull.merge_commit is None else "succeeded"

    def _test_merge(self, pull: Pull) -> str | None:
        git = self.git(pull.repo)
        tree = git.merge_tree(pull.target, pull.source)
        if tree is None:
            return None
        site = self.site()
        message = (
            f"Merge pull request {pull.id} from {short(pull.source_ref)} into "
            f"{short(pull.target_ref)}"
        )
        who = (site.user, site.email)
        sha = git.commit_tree(tree, [pull.target, pull.source], message, identity_env(who, who))
        git.move(f"refs/pull/{pull.id}/merge", sha, None, "test merge")
        return sha

    def _iteration(self, pull: Pull, reason: str, old_target: str | None = None) -> Iteration:
        common = self.git(pull.repo).merge_base(pull.target, pull.source)
        return Iteration(
            id=len(pull.iterations) + 1,
            source=pull.source,
            target=pull.target,
            common=common,
            reason=reason,
            created=now(),
            old_target=old_target,
            new_target=pull.target_ref if old_target else None,
        )

    # -- updating ----------------------------------------------------------------------------

    def update(self, pull: Pull, body: Mapping[str, Any]) -> Pull | None:
        """Apply a PATCH; the pull request as the answer shows it before a completion (None:
        as it is now)."""
        if set(body) - _UPDATABLE or (
            "lastMergeSourceCommit" in body and body.get("status") != "completed"
        ):
            raise AzureError.invalid_argument(_INVALID_UPDATE)
        title, description = _text(body, "title"), _text(body, "description")
        if title is not None and not title.strip():
            raise AzureError.invalid_argument("The title of the pull request is missing.")
        if pull.status == "completed":
            raise AzureError.not_editable()
        self.refresh(pull)
        status = body.get("status")
        if status == "completed":
            commit = body.get("lastMergeSourceCommit") or {}
            expected = commit.get("commitId") if isinstance(commit, dict) else None
            if not isinstance(expected, str) or len(expected) != 40:
                raise AzureError.invalid_argument(
                    "You must specify a valid LastMergeSourceCommit to perform this operation."
                )
            return self.complete(pull, expected, body.get("completionOptions") or {})
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise AzureError.invalid_argument(
                f"The description is longer than {MAX_DESCRIPTION} characters."
            )
        if status in ("abandoned", "active"):
            self._set_status(pull, status)
        elif status not in (None, "notSet"):
            raise AzureError.invalid_argument("Status")
        if "targetRefName" in body:
            self._retarget(pull, str(body["targetRefName"]))
        if title is not None:
            pull.title = title
        if description is not None:
            pull.description = description
        if isinstance(body.get("isDraft"), bool):
            pull.is_draft = body["isDraft"]
        if "completionOptions" in body:
            pull.completion_options = dict(body["completionOptions"] or {})
        return None

    def _set_status(self, pull: Pull, status: str) -> None:
        if status == pull.status:
            return
        if status == "abandoned":
            pull.status, pull.closed = "abandoned", now()
            return
        git = self.git(pull.repo)
        if git.sha(pull.source_ref) is None or git.sha(pull.target_ref) is None:
            raise AzureError.cannot_activate()
        self._refuse_duplicate(pull.repo, pull.source_ref, pull.target_ref)
        pull.status, pull.closed, pull.queued = "active", None, None
        self.refresh(pull)

    def _retarget(self, pull: Pull, target_ref: str) -> None:
        if target_ref == pull.target_ref:
            return
        if pull.status != "active":
            raise AzureError.not_editable()
        target = self.git(pull.repo).sha(target_ref)
        if target is None or target_ref == pull.source_ref:
            raise AzureError.cannot_activate()
        self._refuse_duplicate(pull.repo, pull.source_ref, target_ref)
        old = pull.target_ref
        pull.target_ref, pull.target = target_ref, target
        pull.iterations.append(self._iteration(pull, "retarget", old_target=old))
        self.refresh(pull)

    def complete(self, pull: Pull, expected: str, options: Mapping[str, Any]) -> Pull:
        """Complete (merge) `pull` if its source is still `expected`; the pull request as it was
        when the completion was queued (what the service answers)."""
        if pull.status != "active":
            raise AzureError.not_editable()
        self.refresh(pull)
        git = self.git(pull.repo)
        if git.sha(pull.source_ref) is None or git.sha(pull.target_ref) is None:
            raise AzureError.cannot_activate()
        if expected != pull.source:
            raise AzureError.stale()
        strategy = options.get("mergeStrategy") or (
            "squash" if options.get("squashMerge") else "noFastForward"
        )
        if strategy not in _STRATEGIES:
            raise AzureError.invalid_argument("MergeStrategy")
        pull.queued = now()
        pull.completion_options = dict(options)
        before = dataclasses.replace(pull, iterations=list(pull.iterations))
        merged = self._merge(pull, strategy, options)
        if merged is None:
            pull.merge_status = "conflicts"
            return before
        if not git.move(pull.target_ref, merged, pull.target, f"complete PR {pull.id}"):
            raise AzureError.ref_stale(pull.target_ref)
        if options.get("deleteSourceBranch"):
            git.delete(pull.source_ref, pull.source)
        pull.status, pull.closed = "completed", now()
        pull.merge_commit, pull.merge_status = merged, "succeeded"
        return before

    def _merge(self, pull: Pull, strategy: str, options: Mapping[str, Any]) -> str | None:
        git = self.git(pull.repo)
        site = self.site()
        who = (site.user, site.email)
        people = identity_env(who, who)
        message = str(options.get("mergeCommitMessage") or f"Merged PR {pull.id}: {pull.title}")
        if strategy in ("rebase", "rebaseMerge"):
            rebased = git.rebase(pull.target, pull.source, identity_env(who))
            if rebased is None or strategy == "rebase":
                return rebased
            rebased_tree = git.commit(rebased).tree
            return git.commit_tree(rebased_tree, [pull.target, rebased], message, people)
        tree = git.merge_tree(pull.target, pull.source)
        if tree is None:
            return None
        parents = [pull.target] if strategy == "squash" else [pull.target, pull.source]
        return git.commit_tree(tree, parents, message, people)
