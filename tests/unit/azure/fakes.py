"""Fakes for the Azure unit tests: an HTTP response azure-core can build its errors from."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from azure.core import exceptions as azure_exceptions


@dataclasses.dataclass
class FakeResponse:
    """What `HttpResponseError` reads of a response (status, reason, text, headers)."""

    status_code: int
    body: Any = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    reason: str = "Reason"
    request: object = "GET https://management.azure.com/..."

    def text(self) -> str:
        if self.body is None:
            return ""
        return self.body if isinstance(self.body, str) else json.dumps(self.body)


def arm_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def http_error(
    status: int,
    code: str = "",
    message: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    cls: type[azure_exceptions.HttpResponseError] = azure_exceptions.HttpResponseError,
) -> azure_exceptions.HttpResponseError:
    """The exception an SDK operation raises for ARM's answer (as `map_error` builds it)."""
    body = arm_body(code, message) if code or message else None
    return cls(response=FakeResponse(status, body, dict(headers or {})))
