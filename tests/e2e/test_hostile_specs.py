"""Hostile RunnerImages through the real API server and one operator run (issue 11).

Every case of `tests.e2e.hostile` is created through the API server; each must be refused (the
CRD schema, the error naming the field) or end `Stalled` with a message naming the field. The
operator must stay alive with no traceback, write nothing more to a stalled object (its timers
keep firing: the resync interval is short), and never echo a credential a case embeds — not in
status, Events or its log. The few valid controls (kind `legal`) must settle as the sample does.
Prints the figure: inputs tried, outcomes by kind.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime
import json
import re
import time
from typing import Any

import httpx
import pytest

from controller.api import identity
from tests.conftest import StartOperator
from tests.e2e import hostile, samples
from tests.env import kube

pytestmark = pytest.mark.e2e

SETTLE_TIMEOUT = 180.0
RESYNC = "2s"
_HANDLED = f"{identity.KOPF_STATE_PREFIX}/last-handled-configuration"
_PATH = "/apis/runners.ade.dev/v1alpha1/namespaces/{namespace}/runnerimages"


@dataclasses.dataclass
class Outcome:
    case: hostile.Case
    verdict: str = "other"
    """refused, stalled or other."""
    detail: str = ""
    echoed: bool = False
    """The API server's refusal quoted the case's credential back (to its sender only)."""


def _reconciles(metrics: str) -> float:
    return sum(
        float(value)
        for value in re.findall(r"^ade_runner_reconciles_total\{[^}]*\} (\S+)$", metrics, re.M)
    )


def _create(client: httpx.Client, namespace: str, outcome: Outcome) -> None:
    """Create the case's object; a refusal is judged here, an accepted one left for later."""
    body = json.dumps(outcome.case.body, ensure_ascii=False).encode()
    response = client.post(
        _PATH.format(namespace=namespace),
        content=body,
        headers={"Content-Type": "application/json"},
    )
    if response.status_code == 201:
        outcome.detail = "accepted"
        return
    try:
        message = str(response.json().get("message", ""))
    except ValueError:
        message = response.text
    outcome.echoed = outcome.case.secret is not None and outcome.case.secret in message
    if outcome.case.legal:
        outcome.detail = f"a valid spec refused: {response.status_code} {message[:300]!r}"
    elif response.status_code == 413 or "too large" in message:
        outcome.verdict, outcome.detail = "refused", f"{response.status_code}: too large"
    elif 400 <= response.status_code < 500 and outcome.case.field in message:
        outcome.verdict, outcome.detail = "refused", f"{response.status_code}"
    else:
        outcome.detail = f"refused without naming {outcome.case.field}: {message[:300]!r}"


def _judge(outcome: Outcome, obj: dict[str, Any] | None) -> bool:
    """Whether an accepted case has settled; sets its verdict (stalled naming the field)."""
    if obj is None:
        outcome.detail = "gone"
        return False
    meta = obj["metadata"]
    if (obj.get("status") or {}).get("observedGeneration") != meta.get("generation"):
        return False
    # kopf has finished with the object too (its finalizer and its record of the handled spec
    # land after the status; a patch racing the status write is retried a little later).
    if identity.FINALIZER not in (meta.get("finalizers") or []) or _HANDLED not in (
        meta.get("annotations") or {}
    ):
        outcome.detail = "kopf's handling not recorded yet"
        return False
    stalled = kube.condition(obj, "Stalled")
    ready = kube.condition(obj, "Ready")
    if stalled is None or stalled.get("status") != "True":
        if ready is not None:
            outcome.detail = (
                f"Ready={ready.get('status')} {ready.get('reason')}: "
                + str(ready.get("message", ""))[:200]
            )
        return False
    message = str(stalled.get("message", ""))
    outcome.detail = f"Stalled {stalled.get('reason')}: {message[:200]}"
    if outcome.case.legal:  # a valid control: it must settle as the sample does
        settled = stalled.get("reason") == samples.SETTLED_REASON
        outcome.verdict = "settled" if settled and outcome.case.field in message else "other"
    else:
        outcome.verdict = "stalled" if outcome.case.field in message else "other"
    return True


def test_hostile_specs_are_refused_or_stalled_naming_the_field(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    cases = hostile.cases()
    outcomes = [Outcome(case) for case in cases]
    operator = start_operator(ADE_RESYNC_INTERVAL=RESYNC)
    plane = cluster.plane
    started = time.monotonic()
    with httpx.Client(base_url=plane.server, verify=plane.ssl_context(), timeout=60.0) as client:
        # A few at once: the API server's validation of the 1 MiB values is most of the time.
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda outcome: _create(client, namespace, outcome), outcomes))
        created = time.monotonic() - started
        accepted = {o.case.body["metadata"]["name"]: o for o in outcomes if o.detail == "accepted"}

        # Wait until every accepted object is Stalled on its generation (or time runs out).
        pending = dict(accepted)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while pending and time.monotonic() < deadline:
            listed = client.get(_PATH.format(namespace=namespace)).json()["items"]
            by_name = {item["metadata"]["name"]: item for item in listed}
            for name in list(pending):
                if _judge(pending[name], by_name.get(name)):
                    del pending[name]
            if pending:
                time.sleep(0.5)
        settled = time.monotonic() - started

        # Idle: with timers every RESYNC, the operator reconciles each stalled object again and
        # again; none of it may write (no status patch, no Event, no retry annotation).
        stalled = [name for name, o in accepted.items() if o.verdict in ("stalled", "settled")]
        listed = client.get(_PATH.format(namespace=namespace)).json()["items"]
        versions = {
            item["metadata"]["name"]: item["metadata"]["resourceVersion"] for item in listed
        }
        since = datetime.datetime.now(datetime.UTC)
        before = _reconciles(operator.metrics())
        kube.wait_for(
            lambda: _reconciles(operator.metrics()) >= before + 2 * len(accepted),
            timeout=120,
            what=f"{2 * len(accepted)} idle reconciles",
            interval=0.5,
        )
        idle_reconciles = _reconciles(operator.metrics()) - before
        listed = client.get(_PATH.format(namespace=namespace)).json()["items"]
        after = {item["metadata"]["name"]: item for item in listed}
        events = client.get(f"/api/v1/namespaces/{namespace}/events").json()["items"]

    # Writes to the objects themselves (status, annotations, finalizers). An Event kopf posts
    # in the background may land late; that each object got only its transition's is below.
    writes = [
        (w["verb"], w["requestURI"])
        for w in cluster.writes_by(kube.OPERATOR_USER, since=since)
        if f"/namespaces/{namespace}/runnerimages" in w["requestURI"]
    ]
    posted: collections.Counter[tuple[str, str]] = collections.Counter()
    for event in events:
        posted[event["involvedObject"]["name"], event["reason"]] += int(event.get("count") or 1)
    repeated = {key: count for key, count in posted.items() if count > 1}
    moved = sorted(
        name for name in stalled if after[name]["metadata"]["resourceVersion"] != versions[name]
    )

    # Credentials: never in status, Events or the operator's log.
    log = operator.logs()
    events_text = json.dumps(events, ensure_ascii=False)
    leaks = []
    for outcome in outcomes:
        secret = outcome.case.secret
        if secret is None:
            continue
        name = outcome.case.body["metadata"]["name"]
        status = json.dumps((after.get(name) or {}).get("status") or {}, ensure_ascii=False)
        where = [
            place
            for place, text in (("status", status), ("events", events_text), ("log", log))
            if secret in text
        ]
        if where:
            leaks.append(f"{outcome.case.name}: {where}")

    figure: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for outcome in outcomes:
        figure[outcome.case.kind][outcome.verdict] += 1
    total = collections.Counter(outcome.verdict for outcome in outcomes)
    lines = [
        f"\n[figure] hostile specs: {len(outcomes)} inputs tried, {len(accepted)} accepted by the"
        f" API server; created in {created:.1f} s, settled in {settled:.1f} s; idle:"
        f" {idle_reconciles:.0f} reconciles of {len(stalled)} stalled objects, {len(writes)}"
        f" writes, {sum(posted.values())} Events in all; {sum(o.echoed for o in outcomes)}"
        " refusals quoted a credential back to its sender (the API server's own message)",
        f"  {'kind':<16} {'tried':>5} {'refused':>8} {'stalled':>8} {'settled':>8} {'other':>6}",
    ]
    for kind in hostile.KINDS:
        counts = figure[kind]
        lines.append(
            f"  {kind:<16} {sum(counts.values()):>5} {counts['refused']:>8}"
            f" {counts['stalled']:>8} {counts['settled']:>8} {counts['other']:>6}"
        )
    lines.append(
        f"  {'all':<16} {len(outcomes):>5} {total['refused']:>8} {total['stalled']:>8}"
        f" {total['settled']:>8} {total['other']:>6}"
    )
    others = [
        f"  {o.case.body['metadata']['name']} {o.case.name} ({o.case.field}): {o.detail}"
        for o in outcomes
        if o.verdict == "other"
    ]
    print("\n".join(lines + (["  other:", *others] if others else [])))

    assert operator.alive(), "the operator exited"
    bad_lines = [line for line in log.splitlines() if "Traceback" in line or "CRITICAL" in line]
    assert not bad_lines, bad_lines[:5]
    assert not others, "\n".join(others)
    assert not leaks, leaks
    assert not moved, f"stalled objects written while idle: {moved}"
    assert writes == [], writes[:10]
    assert not repeated, f"Events posted more than once: {repeated}"
