"""The JSON the Azure Repos emulator (`tests.env.azure_repos`) sends, other than pull requests:
identities, projects, repositories, commit references, the discovery answers (resource
locations, resource areas) and the error bodies, each shaped as the service sends it (the
published description `tests.env.azure_repos_spec` and its examples).

Ids are GUIDs derived from names (`uuid5`), so that they are stable across runs. Errors are
`AzureError`s: a status and a WrappedException body (`$id`, `innerException`, `message`,
`typeName`, `typeKey`, `errorCode`, `eventId`). Their messages are the service's where known
(TF401019, TF200016, TF401179, TF401180, TF401398, TF400733, the api-version ones and the
"Invalid argument value" form, all seen in published answers); those in `APPROXIMATE` are the
right exception with wording of our own.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from tests.env.azure_repos_git import CommitInfo

__all__ = [
    "APPROXIMATE",
    "GIT_AREA",
    "HOST",
    "LOCATIONS",
    "MAX_VERSION",
    "AzureError",
    "Site",
]

HOST = "dev.azure.example"
"""Where links that nothing follows point (web pages, SSH)."""
GIT_AREA = "4e080c62-fa21-4fbc-8fef-2a10a2b38049"
"""The resource area id of git (`GitClientBase.resource_area_identifier`)."""
MAX_VERSION = "7.2"
RELEASED_VERSION = "7.1"
_NAMESPACE = uuid.UUID("5b1f2c9e-8c9e-4a77-9a51-3d1c0e2f7a10")
_GIT = "Microsoft.TeamFoundation.Git.Server"
_WEB = "Microsoft.TeamFoundation.SourceControl.WebServer"
_VSS = "Microsoft.VisualStudio.Services.WebApi"

LOCATIONS: tuple[tuple[str, str, str, str, int, str, str], ...] = (
    # id, area, resourceName, routeTemplate, resourceVersion, minVersion, releasedVersion
    ("e81700f7-3be2-46de-8624-2eb35882fcaa", "Location", "ResourceAreas",
     "_apis/{resource}/{areaId}", 1, "3.2", "0.0"),
    ("225f7195-f9c7-4d14-ab28-a83f7ff77e1f", "git", "repositories",
     "{project}/_apis/{area}/{resource}/{repositoryId}", 1, "1.0", RELEASED_VERSION),
    ("9946fd70-0d40-406e-b686-b4744cbbcc37", "git", "pullRequests",
     "{project}/_apis/{area}/repositories/{repositoryId}/{resource}/{pullRequestId}", 1, "3.0",
     RELEASED_VERSION),
    ("52823034-34a8-4576-922c-8d8b77e9e4c4", "git", "pullRequestCommits",
     "{project}/_apis/{area}/repositories/{repositoryId}/pullRequests/{pullRequestId}/commits",
     1, "3.0", RELEASED_VERSION),
    ("d43911ee-6958-46b0-a42b-8445b8a0d004", "git", "pullRequestIterations",
     "{project}/_apis/{area}/repositories/{repositoryId}/pullRequests/{pullRequestId}"
     "/iterations/{iterationId}", 2, "3.0", RELEASED_VERSION),
    ("615588d5-c0c7-4b88-88f8-e625306446e8", "git", "commitDiffs",
     "{project}/_apis/{area}/repositories/{repositoryId}/diffs/commits", 1, "1.0",
     RELEASED_VERSION),
    ("4216bdcf-b6b1-4d59-8b82-c34cc183fc8b", "git", "pullRequestIterationChanges",
     "{project}/_apis/{area}/repositories/{repositoryId}/pullRequests/{pullRequestId}"
     "/iterations/{iterationId}/changes", 1, "3.0", RELEASED_VERSION),
)  # fmt: skip
"""The resource locations served (the client's location ids), as `OPTIONS {org}/_apis` lists
them: the resources the emulator answers (of pullRequestIterations, only the list: a single
iteration, `.../iterations/{iterationId}`, is not served)."""

APPROXIMATE = frozenset(
    {
        "GitPullRequestNotEditableException",
        "GitPullRequestStaleException",
        "GitReferenceStaleException",
        "GitPullRequestIterationNotFoundException",
        "GitPullRequestCommitsInvalidContinuationTokenException",
        "VssInvalidApiVersionException",
        "HttpResponseException",
        "VssServiceException",
        "GitServiceUnavailableException",
    }
)
"""typeKeys whose message wording is ours (the exception and status are the service's)."""


def guid(*parts: str) -> str:
    """A stable GUID for a named thing."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


class AzureError(Exception):
    """An error answer: `status`, the WrappedException `body`, extra `headers`."""

    def __init__(
        self,
        status: int,
        message: str,
        type_name: str,
        *,
        event_id: int = 3000,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.type_key = type_name.split(",", maxsplit=1)[0].rsplit(".", 1)[-1]
        self.body: dict[str, Any] = {
            "$id": "1",
            "innerException": None,
            "message": message,
            "typeName": type_name,
            "typeKey": self.type_key,
            "errorCode": 0,
            "eventId": event_id,
        }
        self.headers = dict(headers or {})

    # -- the service's errors ----------------------------------------------------------------

    @classmethod
    def invalid_argument(cls, text: str) -> AzureError:
        return cls(
            400,
            f"Invalid argument value.\r\nParameter name: {text}",
            f"{_WEB}.InvalidArgumentValueException, {_WEB}",
            event_id=0,
        )

    @classmethod
    def repository_not_found(cls, name: str) -> AzureError:
        return cls(
            404,
            f"TF401019: The Git repository with name or identifier {name} does not exist or you "
            "do not have permissions for the operation you are attempting.",
            f"{_GIT}.GitRepositoryNotFoundException, {_GIT}",
        )

    @classmethod
    def project_not_found(cls, name: str) -> AzureError:
        core = "Microsoft.TeamFoundation.Core.WebApi"
        return cls(
            404,
            f"TF200016: The following project does not exist: {name}. Verify that the name of "
            "the project is correct and that the project exists on the specified Azure DevOps "
            "Server.",
            f"{core}.ProjectDoesNotExistWithNameException, {core}",
        )

    @classmethod
    def pull_not_found(cls) -> AzureError:
        return cls(
            404,
            "TF401180: The requested pull request was not found.",
            f"{_GIT}.GitPullRequestNotFoundException, {_GIT}",
        )

    @classmethod
    def pull_exists(cls) -> AzureError:
        return cls(
            409,
            "TF401179: An active pull request for the source and target branch already exists.",
            f"{_GIT}.GitPullRequestExistsException, {_GIT}",
        )

    @classmethod
    def cannot_activate(cls) -> AzureError:
        return cls(
            400,
            "TF401398: The pull request cannot be activated because the source and/or the "
            "target branch no longer exists, or the requested refs are not branches",
            f"{_GIT}.GitPullRequestCannotBeActivated, {_GIT}",
        )

    @classmethod
    def not_editable(cls) -> AzureError:
        return cls(
            400,
            "TF401181: The pull request cannot be edited due to its state.",
            f"{_GIT}.GitPullRequestNotEditableException, {_GIT}",
        )

    @classmethod
    def stale(cls) -> AzureError:
        return cls(
            409,
            "TF401192: The source branch of the pull request has changed since "
            "lastMergeSourceCommit. Read the pull request again and retry.",
            f"{_GIT}.GitPullRequestStaleException, {_GIT}",
        )

    @classmethod
    def ref_stale(cls, ref: str) -> AzureError:
        return cls(
            409,
            f"TF401028: The reference '{ref}' has already been updated by another client, so "
            "you cannot update it. Please try again.",
            f"{_GIT}.GitReferenceStaleException, {_GIT}",
        )

    @classmethod
    def iteration_not_found(cls, number: str) -> AzureError:
        return cls(
            404,
            f"The pull request iteration {number} was not found.",
            f"{_GIT}.GitPullRequestIterationNotFoundException, {_GIT}",
        )

    @classmethod
    def bad_continuation(cls) -> AzureError:
        return cls(
            400,
            "The continuation token is not valid for this pull request.",
            f"{_GIT}.GitPullRequestCommitsInvalidContinuationTokenException, {_GIT}",
        )

    @classmethod
    def version_missing(cls, method: str) -> AzureError:
        return cls(
            400,
            f'No api-version was supplied for the "{method}" request. The version must be '
            'supplied either as part of the Accept header (e.g. "application/json; '
            'api-version=1.0") or as a query parameter (e.g. "?api-version=1.0").',
            f"{_VSS}.VssVersionNotSpecifiedException, {_VSS}",
        )

    @classmethod
    def version_invalid(cls, version: str) -> AzureError:
        return cls(
            400,
            f"The api-version '{version}' is not valid.",
            f"{_VSS}.VssInvalidApiVersionException, {_VSS}",
        )

    @classmethod
    def version_out_of_range(cls, version: str) -> AzureError:
        return cls(
            400,
            f"The requested REST API version of {version} is out of range for this server. The "
            f"latest REST API version this server supports is {MAX_VERSION}.",
            f"{_VSS}.VssVersionOutOfRangeException, {_VSS}",
        )

    @classmethod
    def version_preview(cls, version: str) -> AzureError:
        return cls(
            400,
            f'The requested version "{version}" of the resource is under preview. The -preview '
            f'flag must be supplied in the api-version for such requests. For example: "'
            f'{version}-preview"',
            f"{_VSS}.VssInvalidPreviewVersionException, {_VSS}",
        )

    @classmethod
    def method_not_allowed(cls, method: str) -> AzureError:
        return cls(
            405,
            f"The requested resource does not support http method '{method}'.",
            "System.Web.Http.HttpResponseException, System.Web.Http",
            event_id=0,
        )

    @classmethod
    def rate_limited(cls, headers: Mapping[str, str]) -> AzureError:
        framework = "Microsoft.TeamFoundation.Framework.Server"
        return cls(
            429,
            "TF400733: The request has been canceled: Request was blocked due to exceeding "
            "usage of resource 'Core' in namespace 'User'.",
            f"{framework}.RequestBlockedException, {framework}",
            headers=headers,
        )

    @classmethod
    def server_error(cls, status: int, activity: str, headers: Mapping[str, str]) -> AzureError:
        if status == 503:
            return cls(
                503,
                "The Git service is unavailable. Try again later.",
                f"{_GIT}.GitServiceUnavailableException, {_GIT}",
                headers=headers,
            )
        return cls(
            status,
            f"TF400898: An Internal Error Occurred. Activity Id: {activity}.",
            f"{_VSS}.VssServiceException, {_VSS}",
            headers=headers,
        )


@dataclasses.dataclass(frozen=True)
class Site:
    """The organization, project and user an emulator serves, and the URLs of its things."""

    base_url: str
    """The organization URL: `http://127.0.0.1:PORT/{organization}`."""
    organization: str
    project: str
    user: str
    created: str

    @property
    def project_id(self) -> str:
        return guid("project", self.organization.lower(), self.project.lower())

    @property
    def user_id(self) -> str:
        return guid("user", self.user)

    @property
    def email(self) -> str:
        return f"{self.user}@{HOST}"

    def repo_id(self, name: str) -> str:
        return guid("repository", self.organization.lower(), self.project.lower(), name)

    def repo_url(self, name: str) -> str:
        return f"{self.base_url}/{self.project_id}/_apis/git/repositories/{self.repo_id(name)}"

    def pull_url(self, name: str, number: int) -> str:
        return f"{self.repo_url(name)}/pullRequests/{number}"

    # -- shapes ------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """IdentityRef of the token's user (who creates, closes and merges)."""
        image = f"{self.base_url}/_api/_common/identityImage?id={self.user_id}"
        return {
            "displayName": self.user,
            "url": f"{self.base_url}/_apis/Identities/{self.user_id}",
            "_links": {"avatar": {"href": image}},
            "id": self.user_id,
            "uniqueName": self.email,
            "imageUrl": image,
            "descriptor": f"aad.{self.user_id.replace('-', '')}",
        }

    def project_json(self, *, brief: bool = False) -> dict[str, Any]:
        """TeamProjectReference: in full, or as lists show it (state `unchanged`)."""
        if brief:
            return {
                "id": self.project_id,
                "name": self.project,
                "state": "unchanged",
                "visibility": "private",
            }
        return {
            "id": self.project_id,
            "name": self.project,
            "url": f"{self.base_url}/_apis/projects/{self.project_id}",
            "state": "wellFormed",
            "revision": 1,
            "visibility": "private",
            "lastUpdateTime": self.created,
        }

    def repository_json(
        self,
        name: str,
        *,
        remote_url: str,
        default_branch: str | None,
        size: int,
        brief: bool = False,
        links: bool = False,
    ) -> dict[str, Any]:
        """GitRepository; `remote_url` is the real git server's (cloning it works)."""
        web = f"{self.base_url}/{self.project}/_git/{name}"
        data: dict[str, Any] = {
            "id": self.repo_id(name),
            "name": name,
            "url": self.repo_url(name),
            "project": self.project_json(brief=brief),
        }
        if default_branch is not None:
            data["defaultBranch"] = default_branch
        data.update(
            {
                "size": size,
                "remoteUrl": remote_url,
                "sshUrl": f"git@ssh.{HOST}:v3/{self.organization}/{self.project}/{name}",
                "webUrl": web,
                "isDisabled": False,
                "isInMaintenance": False,
            }
        )
        if links:
            api = self.repo_url(name)
            data["_links"] = {
                "self": {"href": api},
                "project": {"href": f"vstfs:///Classification/TeamProject/{self.project_id}"},
                "web": {"href": web},
                "commits": {"href": f"{api}/commits"},
                "refs": {"href": f"{api}/refs"},
                "pullRequests": {"href": f"{api}/pullRequests"},
                "items": {"href": f"{api}/items"},
                "pushes": {"href": f"{api}/pushes"},
            }
        return data

    def commit_ref(self, name: str, sha: str, info: CommitInfo | None = None) -> dict[str, Any]:
        """GitCommitRef: `{commitId, url}`, with author, committer and comment given `info`."""
        data: dict[str, Any] = {"commitId": sha}
        if info is not None:
            data["author"] = dataclasses.asdict(info.author)
            data["committer"] = dataclasses.asdict(info.committer)
            data["comment"] = info.message
        data["url"] = f"{self.repo_url(name)}/commits/{sha}"
        return data

    def locations(self) -> dict[str, Any]:
        """The answer to `OPTIONS {org}/_apis`: the resource locations served."""
        value = [
            {
                "id": id_,
                "area": area,
                "resourceName": resource,
                "routeTemplate": template,
                "resourceVersion": version,
                "minVersion": minimum,
                "maxVersion": MAX_VERSION,
                "releasedVersion": released,
            }
            for id_, area, resource, template, version, minimum, released in LOCATIONS
        ]
        return {"count": len(value), "value": value}

    def resource_areas(self) -> dict[str, Any]:
        """The answer to `GET {org}/_apis/ResourceAreas`: git lives at the organization URL."""
        value = [{"id": GIT_AREA, "name": "git", "locationUrl": f"{self.base_url}/"}]
        return {"count": len(value), "value": value}
