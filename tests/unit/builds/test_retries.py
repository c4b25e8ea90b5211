"""Which failed builds retry by themselves, when, and how often (controller.builds.retries)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from controller.api import status as status_
from controller.builds import retries

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.UTC)
POLICY = retries.Policy(retries=2, delay=10.0)

# What BuildKit printed when its image and cache exports raced on one blob (seen in CI).
RACED_PUSH = """\
#14 ERROR: error writing layer blob: context canceled
failed to push 127.0.0.1:46747/t-784ce1e895/bicep:3bb374d8f1b3-ab6e340ab05f: errors:
unknown: provided digest did not match uploaded content
------
 > exporting to image:
------
error: failed to solve: failed to push 127.0.0.1:46747/t/bicep:3bb374d8f1b3-ab6e340ab05f: errors:
"""


@pytest.mark.parametrize(
    "message",
    [
        RACED_PUSH,
        'error: failed to solve: failed to do request: Put "https://r.example/v2/x/blobs/uploads/'
        '1": write tcp 10.0.0.2:48736->10.0.0.9:443: write: connection reset by peer',
        "error: failed to solve: failed to copy: httpReadSeeker: failed open: unexpected status "
        "code https://r.example/v2/x/blobs/sha256:ab: 503 Service Unavailable",
        "error: failed to push r.example/x:1: toomanyrequests: retry later",
        "error: failed to solve: DeadlineExceeded: no active session for abc: context deadline",
    ],
)
def test_failures_on_the_way_to_the_registry_are_transient(message: str) -> None:
    assert retries.transient(message)


@pytest.mark.parametrize(
    "message",
    [
        "#7 ERROR: process '/bin/sh -c exit 3' did not complete successfully: exit code 3",
        "error: failed to solve: failed to push r.example/x:1: unexpected status from HEAD "
        "request: 401 Unauthorized",
        "error: failed to push r.example/x:1: server message: insufficient_scope: "
        "authorization failed; denied: requested access to the resource is denied",
        "error: failed to solve: dockerfile parse error on line 3: unknown instruction: FORM",
        "the build did not finish within 600s",
        "the build pod stayed Pending for more than 300s: 0/1 nodes: Insufficient cpu",
        "the build ran past its deadline (spec.build.timeout): DeadlineExceeded: Job was active "
        "longer than specified deadline\n#6 ERROR: failed to do request: context canceled",
        "",
    ],
)
def test_failures_of_the_build_itself_are_not(message: str) -> None:
    assert not retries.transient(message)


def test_a_hex_digest_is_not_a_status_code() -> None:
    message = "error: failed to solve: sha256:4013401a500: not a build step failure"
    assert not retries.transient(message)


def _record(**fields: object) -> status_.BuildRecord:
    record = status_.BuildRecord(
        name="runner-build-0123456789ab",
        build_key="0123456789ab" * 5,
        reason="Initial",
        image="r.example/runner:1",
        started_at="2026-11-27T11:50:00Z",
        result=status_.BuildResult.FAILED,
        attempt=1,
        message=RACED_PUSH,
        finished_at="2026-11-27T11:59:56Z",
    )
    return dataclasses.replace(record, **fields)  # type: ignore[arg-type]


def test_first_retry_waits_the_delay_from_the_failure() -> None:
    retry = retries.automatic(POLICY, _record(), NOW)
    assert retry == retries.Retry(attempt=2, retries=1, wait=6.0)


def test_each_next_retry_waits_twice_as_long_and_the_count_is_bounded() -> None:
    second = retries.automatic(POLICY, _record(attempt=2, retries=1), NOW)
    assert second == retries.Retry(attempt=3, retries=2, wait=16.0)
    assert retries.automatic(POLICY, _record(attempt=3, retries=2), NOW) is None


def test_a_due_retry_waits_no_more() -> None:
    retry = retries.automatic(POLICY, _record(finished_at="2026-11-27T11:00:00Z"), NOW)
    assert retry is not None
    assert retry.wait == 0.0


def test_no_retry_for_a_build_failure_a_success_or_a_policy_of_none() -> None:
    step = "#7 ERROR: process '/bin/sh -c exit 3' did not complete successfully: exit code 3"
    assert retries.automatic(POLICY, _record(message=step), NOW) is None
    assert retries.automatic(POLICY, _record(result=status_.BuildResult.SUCCEEDED), NOW) is None
    assert retries.automatic(retries.Policy(retries=0), _record(), NOW) is None


def test_a_record_without_a_finish_time_is_due_at_once() -> None:
    record = _record(finished_at="")
    retry = retries.automatic(POLICY, record, NOW)
    assert retry is not None
    assert retry.wait == 0.0


def test_summary_is_buildkits_last_error_line_cut_to_size() -> None:
    assert retries.summary(RACED_PUSH).startswith("error: failed to solve: failed to push")
    assert retries.summary("one\n\ntwo\n") == "two"
    assert len(retries.summary("x" * 500, limit=40)) == 40
