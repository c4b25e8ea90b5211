"""The HTTP surface of the Azure Repos emulator (`tests.env.azure_repos`): which paths and
methods exist (the description's templates, matched without regard to case as the service
does, and the two discovery calls), the api-version rules, authentication and its 401, the
answers `fail_next` injects, and the request handler (`tests.env.api_emulator`'s, with OPTIONS).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import http
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from tests.env import api_emulator
from tests.env import azure_repos_spec as spec
from tests.env.api_emulator import Fault
from tests.env.azure_repos_shapes import MAX_VERSION, AzureError

__all__ = [
    "LOCATIONS_TEMPLATE",
    "NOT_FOUND_PAGE",
    "OPERATIONS",
    "RESOURCE_AREAS_TEMPLATE",
    "Answer",
    "Fault",
    "Handler",
    "api_version",
    "authenticated",
    "check_version",
    "error_answer",
    "fault_answer",
    "refusal",
    "route",
]

LOCATIONS_TEMPLATE = "/{organization}/_apis"
RESOURCE_AREAS_TEMPLATE = "/{organization}/_apis/ResourceAreas"
OPERATIONS: Mapping[str, frozenset[str]] = {
    LOCATIONS_TEMPLATE: frozenset({"OPTIONS"}),
    RESOURCE_AREAS_TEMPLATE: frozenset({"GET"}),
    **{t: frozenset(m.upper() for m in methods) for t, methods in spec.OPERATIONS.items()},
}
_REPO = r"/(?P<project>[^/]+)/_apis/git/repositories/(?P<repositoryId>[^/]+)"
_PULL = _REPO + r"/pullrequests/(?P<pullRequestId>[^/]+)"
_ROUTES = [
    (re.compile(pattern + "/?", re.IGNORECASE), template)
    for pattern, template in (
        (r"/_apis", LOCATIONS_TEMPLATE),
        (r"/_apis/resourceareas", RESOURCE_AREAS_TEMPLATE),
        (_REPO, spec.REPOSITORY),
        (_REPO + "/pullrequests", spec.PULLS),
        (_REPO + "/diffs/commits", spec.DIFFS),
        (_PULL, spec.PULL),
        (_PULL + "/commits", spec.COMMITS),
        (_PULL + "/iterations", spec.ITERATIONS),
        (_PULL + r"/iterations/(?P<iterationId>[^/]+)/changes", spec.CHANGES),
    )
]
_VERSION = re.compile(r"(?P<number>\d+\.\d+)(?P<preview>-preview(\.\d+)?)?")
NOT_FOUND_PAGE = (
    b"<!DOCTYPE html><html><head><title>The resource cannot be found.</title></head>"
    b"<body><h1>404 - The resource cannot be found.</h1></body></html>"
)


@dataclasses.dataclass(frozen=True)
class Answer:
    """What to send: a status, a JSON `body` (or a `page`), extra headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    page: bytes | None = None
    """A body that is not JSON (HTML, or empty)."""


def route(path: str, organization: str) -> tuple[str | None, dict[str, str]]:
    """The template and parameters of a path under `/{organization}` (case does not matter)."""
    path = urllib.parse.unquote(path)
    prefix = f"/{organization}"
    if not path.lower().startswith(prefix.lower() + "/"):
        return None, {}
    rest = path[len(prefix) :]
    for pattern, template in _ROUTES:
        match = pattern.fullmatch(rest)
        if match:
            return template, {"organization": organization, **match.groupdict()}
    return None, {}


def api_version(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The api-version asked for: `?api-version=`, else `Accept: ...;api-version=`."""
    if "api-version" in query:
        return query["api-version"]
    found = re.search(r"api-version=([^;,\s]+)", headers.get("accept", ""))
    return found.group(1) if found else None


def check_version(method: str, version: str | None) -> None:
    """Refuse what the service refuses: no version on a write, a malformed one, one beyond
    `MAX_VERSION`, or one past the released version (7.1) without `-preview`."""
    if version is None:
        if method != "GET":
            raise AzureError.version_missing(method)
        return
    match = _VERSION.fullmatch(version)
    if match is None:
        raise AzureError.version_invalid(version)
    number = tuple(int(part) for part in match["number"].split("."))
    if number > tuple(int(part) for part in MAX_VERSION.split(".")) or number < (1, 0):
        raise AzureError.version_out_of_range(match["number"])
    if number > (7, 1) and not match["preview"]:
        raise AzureError.version_preview(match["number"])


def authenticated(headers: Mapping[str, str], token: str) -> bool:
    """HTTP Basic with any user and `token` as password, or `Bearer <token>`."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        offered = value.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        offered = decoded.partition(":")[2]
    else:
        return False
    return hmac.compare_digest(offered.encode(), token.encode())


def refusal(base_url: str) -> Answer:
    """401 with no body and the service's challenges (for a client that sent
    `X-TFS-FedAuthRedirect: Suppress`)."""
    challenges = "\n".join(
        (
            "Bearer authorization_uri=https://login.microsoftonline.com/common",
            f'Basic realm="{base_url.rsplit("/", 1)[0]}/"',
            "TFS-Federated",
        )
    )
    return Answer(
        401,
        None,
        {"WWW-Authenticate": challenges},
        page=b"",
    )


def error_answer(error: AzureError) -> Answer:
    headers = {**error.headers, "X-TFS-ServiceError": urllib.parse.quote(error.message)}
    return Answer(error.status, error.body, headers)


def fault_answer(fault: Fault, activity: str) -> Answer:
    """The answer to a request `fail_next` fails: 429 as the rate limiter's, 502 and 504 as the
    front door's HTML page, another 5xx as the service's error."""
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.status in (502, 504):
        phrase = http.HTTPStatus(fault.status).phrase
        page = f"<!DOCTYPE html><html><body><h1>{fault.status} {phrase}</h1></body></html>"
        return Answer(fault.status, None, headers, page=page.encode())
    if fault.status == 429:
        headers.update(
            {
                "X-RateLimit-Resource": "Core",
                "X-RateLimit-Limit": "200",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + (fault.retry_after or 300)),
            }
        )
        return error_answer(AzureError.rate_limited(headers))
    return error_answer(AzureError.server_error(fault.status, activity, headers))


class Handler(api_emulator.Handler):
    """The shared handler, answering OPTIONS too (the discovery of resource locations)."""

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server names it so
        self._serve()
