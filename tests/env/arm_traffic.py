"""Injected faults and the record of requests, for the ARM emulator (`tests.env.arm`).

A `Fault` answers the next `times` requests matching a method and a path substring with an
ARM error (code and wording by default ARM's for the status, `FAULT_DEFAULTS`). An answer with
`Retry-After` (a fault's, or any) is remembered per (method, path); when the same request comes
again, a `RetryObservation` says how long the client waited (`respected`: at least as long as
it was told). `RequestRecord`s never hold a token or a secret.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections.abc import Mapping
from typing import Any

from tests.env.arm_state import ArmError


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as recorded for tests: never a token or a secret."""

    time: float
    """`time.monotonic()` when it arrived."""
    method: str
    path: str
    query: Mapping[str, str]
    status: int
    client_id: str | None
    """The app that sent it (or asked for a token); None when not authenticated."""
    body: Any
    """The JSON body of an ARM write; None otherwise (a token request's form is never kept)."""
    code: str | None
    """ARM's `error.code`, or Entra ID's `error`, of an error answer."""
    fault: bool
    """Whether an injected fault answered it."""


@dataclasses.dataclass
class Fault:
    """An injected answer for the next `times` requests matching the method and path."""

    method: str | None
    path_contains: str
    status: int
    times: int
    retry_after: float | None
    code: str
    message: str
    headers: Mapping[str, str]

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method.upper() == method)
            and self.path_contains.lower() in path.lower()
        )


@dataclasses.dataclass(frozen=True)
class RetryObservation:
    """A request that came again after an answer with `Retry-After`."""

    method: str
    path: str
    retry_after: float
    waited: float
    """Seconds from sending the `Retry-After` answer to the retry's arrival."""

    @property
    def respected(self) -> bool:
        return self.waited >= self.retry_after


FAULT_DEFAULTS: Mapping[int, tuple[str, str]] = {
    400: ("BadRequest", "The request is invalid."),
    401: ("InvalidAuthenticationToken", "The access token is invalid."),
    403: ("AuthorizationFailed", "The client does not have authorization to perform action."),
    404: ("NotFound", "The requested resource was not found."),
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    429: (
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type - "
        "Write_ObservationWindow_00:05:00. For more information, refer to - "
        "https://aka.ms/srpthrottlinglimits",
    ),
    500: (
        "InternalServerError",
        "Encountered internal server error. Diagnostic information: timestamp '{now}', tracking "
        "id '{request_id}', request correlation id '{request_id}'.",
    ),
    502: ("BadGateway", "The gateway did not receive a valid response from the service."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry later."),
    504: (
        "GatewayTimeout",
        "The gateway did not receive a response from the resource provider within the specified "
        "time period.",
    ),
}
"""ARM's error code and wording per status, for injected faults that name none."""


class Traffic:
    """The faults waiting to be served, and what was asked and answered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._told: dict[tuple[str, str], tuple[float, float]] = {}
        self._requests: list[RequestRecord] = []
        self._retries: list[RetryObservation] = []

    def inject(
        self,
        *,
        method: str | None,
        path_contains: str,
        status: int,
        times: int,
        retry_after: float | None,
        code: str | None,
        message: str | None,
        headers: Mapping[str, str] | None,
    ) -> Fault:
        default_code, default_message = FAULT_DEFAULTS.get(status, ("Error", "Injected fault."))
        fault = Fault(
            method=method,
            path_contains=path_contains,
            status=status,
            times=times,
            retry_after=retry_after,
            code=code or default_code,
            message=message or default_message,
            headers=dict(headers or {}),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that answers this request, if any (used up by one)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    self._faults = [f for f in self._faults if f.times > 0]
                    return fault
        return None

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def arrived(self, method: str, path: str, when: float) -> None:
        """A request came: if its (method, path) was told to wait, note how long it did."""
        with self._lock:
            told = self._told.pop((method, path.lower()), None)
            if told is not None:
                sent, retry_after = told
                self._retries.append(RetryObservation(method, path, retry_after, when - sent))

    def told_to_wait(self, method: str, path: str, seconds: float) -> None:
        """An error answer with `Retry-After` is about to be sent."""
        with self._lock:
            self._told[(method, path.lower())] = (time.monotonic(), seconds)

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def retries(self) -> list[RetryObservation]:
        with self._lock:
            return list(self._retries)

    def clear_records(self) -> None:
        with self._lock:
            self._requests.clear()
            self._retries.clear()


def fault_error(fault: Fault) -> ArmError:
    """The error a fault answers with (`{now}` in its message becomes the time)."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    headers = dict(fault.headers)
    if fault.retry_after is not None:
        delay = fault.retry_after
        headers["Retry-After"] = str(int(delay)) if float(delay).is_integer() else f"{delay:g}"
    if fault.status == 401:
        headers.setdefault(
            "WWW-Authenticate",
            'Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
            'error_description="The access token is invalid."',
        )
    return ArmError(fault.status, fault.code, fault.message.replace("{now}", now), headers=headers)
