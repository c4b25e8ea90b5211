"""Webhook receivers end to end: the hosts' signed deliveries (tests.env.webhooks) sent over
loopback to the operator's receiver port, against the real API server, git server, registry and
buildkitd.

A GitHub push rebuilds at once with polling an hour away (the figure: event received -> build
started); an ACR push of the base image rebuilds on it; Azure Repos and the generic form ask the
reconcile of exactly the RunnerImages they name; every refusal has its status code, is counted,
and asks nothing; a WebhookReceiver's status gives its path, follows its token and stalls on a
Secret that cannot verify.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PUSH_PASSWORD, StartOperator
from tests.e2e import daemon_builds
from tests.e2e.daemon_builds import operator_env, push_secret
from tests.env import buildkitd, gitserver, images, kube, oci, registry, webhooks
from tests.env import operator as operator_

pytestmark = pytest.mark.e2e

TOKEN = "wh-" + uuid.uuid4().hex  # grepped for in the operator's log
GIT_USER, GIT_PASSWORD = "ci", "g1t-pa55-webhooks"
REQUEST = "runners.ade.dev/reconcile-requested-at"
DOCKERFILE = daemon_builds.RUNNER_DOCKERFILE
DEPLOY = "#!/bin/sh\necho deploying\n"
REPO = "contoso/runners"
SOURCE = {"Dockerfile": DOCKERFILE, "scripts/deploy.sh": DEPLOY, "scripts/delete.sh": DEPLOY}


@pytest.fixture
def git(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        yield server


def _receiver(cluster: kube.Cluster, namespace: str, name: str, kind: str) -> str:
    """Create a WebhookReceiver of `kind` with its Secret; its path once Ready."""
    cluster.plane.kubectl(
        "create", "secret", "generic", f"{name}-token", "-n", namespace,
        f"--from-literal=token={TOKEN}",
    )  # fmt: skip
    cluster.apply(
        namespace,
        json.dumps(
            {
                "apiVersion": "runners.ade.dev/v1alpha1",
                "kind": "WebhookReceiver",
                "metadata": {"name": name},
                "spec": {"type": kind, "secretRef": {"name": f"{name}-token"}},
            }
        ),
    )
    return _ready_path(cluster, namespace, name)


def _ready_path(cluster: kube.Cluster, namespace: str, name: str, old: str = "") -> str:
    def ready() -> str | None:
        obj = cluster.get(namespace, name, kind="webhookreceiver") or {}
        found = kube.condition(obj, "Ready")
        path = str((obj.get("status") or {}).get("webhookPath") or "")
        good = found is not None and found["status"] == "True" and path != old
        return path if good else None

    return kube.wait_for(ready, timeout=30, what=f"WebhookReceiver {name} Ready")


def _url(operator: operator_.OperatorProcess, path: str) -> str:
    return f"http://127.0.0.1:{operator.receiver_port}{path}"


def _runner_image(
    namespace: str, name: str, *, host: str, core: str, git_url: str, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "runners.ade.dev/v1alpha1",
        "kind": "RunnerImage",
        "metadata": {"name": name},
        "spec": {
            "source": {"git": {"url": git_url, "ref": "main", "secretRef": {"name": "git"}}},
            "buildArgs": {"BASE_IMAGE": core},
            "image": {
                "registry": host,
                "repository": f"{namespace}/{name}",
                "pushSecretRef": {"name": "push"},
            },
            "build": {"backend": "BuildKitDaemon", "timeout": "10m"},
            # Polling an hour away: only an event can start the rebuilds below in time.
            "triggers": {"source": {"interval": "1h"}, "baseImage": {"interval": "1h"}},
            **spec,
        },
    }


def _ready(cluster: kube.Cluster, namespace: str, name: str) -> dict[str, Any]:
    try:
        return cluster.wait_condition(namespace, name, "Ready", status="True", timeout=240)
    except AssertionError:
        obj = cluster.get(namespace, name) or {}
        raise AssertionError(f"{name} not Ready: {obj.get('status')}") from None


def _git_secret(cluster: kube.Cluster, namespace: str) -> None:
    cluster.plane.kubectl(
        "create", "secret", "generic", "git", "-n", namespace,
        f"--from-literal=username={GIT_USER}", f"--from-literal=password={GIT_PASSWORD}",
    )  # fmt: skip


def _answer(delivery: webhooks.Delivery, url: str) -> tuple[int, dict[str, Any]]:
    status, body = webhooks.post(url, delivery)
    return status, json.loads(body or b"{}")


def _metric(operator: operator_.OperatorProcess, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", re.MULTILINE)
    found = pattern.search(operator.metrics())
    return float(found[1]) if found else 0.0


def test_a_github_push_rebuilds_at_once_and_its_redeliveries_ask_nothing(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    core: str,
    git: gitserver.GitServer,
) -> None:
    git.create_repo(REPO, SOURCE)
    _git_secret(cluster, namespace)
    push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
    operator = start_operator(**operator_env(buildkit))
    path = _receiver(cluster, namespace, "github", "GitHub")
    url = git.url(REPO)
    body = _runner_image(namespace, "bicep", host=oci_registry.host, core=core, git_url=url)
    cluster.apply(namespace, json.dumps(body))
    first = _ready(cluster, namespace, "bicep")
    first_build = first["status"]["builds"][0]["name"]

    revision = git.commit(REPO, {"scripts/deploy.sh": DEPLOY + "echo v2\n"}, "v2")
    delivery = webhooks.github_push(
        secret=TOKEN, clone_url=url, ref="refs/heads/main", after=revision
    )
    sent = time.monotonic()
    status, answer = _answer(delivery, _url(operator, path))
    assert (status, answer) == (202, {"concerned": 1, "requested": 1})

    def building() -> dict[str, Any] | None:
        obj = cluster.get(namespace, "bicep") or {}
        builds = (obj.get("status") or {}).get("builds") or []
        return obj if builds and builds[0]["name"] != first_build else None

    building_obj = kube.wait_for(building, timeout=30, what="a build of the pushed commit")
    started = time.monotonic() - sent
    assert building_obj["status"]["sourceRevision"] == revision
    print(f"\n[figure] GitHub push event received -> build started: {started:.2f} s")
    assert started < 2.0, f"the build started {started:.2f} s after the event"

    # The same push delivered again (GitHub's redelivery, a second hook) asks nothing more; the
    # very same delivery id is a replay.
    again = webhooks.github_push(secret=TOKEN, clone_url=url, ref="refs/heads/main", after=revision)
    assert _answer(again, _url(operator, path)) == (202, {"concerned": 1, "requested": 0})
    assert _answer(delivery, _url(operator, path))[0] == 409

    def rebuilt() -> dict[str, Any] | None:
        obj = cluster.get(namespace, "bicep") or {}
        image = (obj.get("status") or {}).get("latestImage") or {}
        ready = kube.condition(obj, "Ready") or {}
        fresh = (image.get("inputs") or {}).get("revision") == revision
        return obj if fresh and ready.get("status") == "True" else None

    done = kube.wait_for(rebuilt, timeout=300, what="Ready on the pushed commit")
    assert done["status"]["latestImage"]["reason"] == "SourceChanged"
    assert done["status"]["lastHandledReconcileAt"] == f"webhook source {revision}"
    assert len(done["status"]["builds"]) == 2
    assert (
        _metric(operator, "ade_runner_webhook_events_total", type="GitHub", outcome="accepted") == 2
    )
    assert _metric(operator, "ade_runner_webhook_reconcile_requests_total", type="GitHub") == 1
    assert TOKEN not in operator.logs()


def test_an_acr_push_of_the_base_image_rebuilds_on_it(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    buildkit: buildkitd.BuildkitDaemon,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    core: str,
    git: gitserver.GitServer,
) -> None:
    git.create_repo(REPO, SOURCE)
    _git_secret(cluster, namespace)
    push_secret(cluster, namespace, oci_registry.host, PUSH_PASSWORD)
    operator = start_operator(**operator_env(buildkit))
    path = _receiver(cluster, namespace, "acr", "ACR")
    url = git.url(REPO)
    for name in ("on-core", "elsewhere"):
        base = core if name == "on-core" else f"{core}-other"
        if name == "elsewhere":
            images.push_core(buildkit, f"{base}:4.0", revision="1")
        body = _runner_image(namespace, name, host=oci_registry.host, core=base, git_url=url)
        cluster.apply(namespace, json.dumps(body))
    first = _ready(cluster, namespace, "on-core")
    _ready(cluster, namespace, "elsewhere")
    assert first["status"]["baseImage"] == f"{core}:4.0"

    images.push_core(buildkit, f"{core}:4.0", revision="2")
    repository = core.split("/", 1)[1]
    digest = pusher.manifest_digest(repository, "4.0")
    assert digest is not None
    delivery = webhooks.acr_push(
        token=TOKEN, host=oci_registry.host, repository=repository, tag="4.0", digest=digest
    )
    assert _answer(delivery, _url(operator, path)) == (202, {"concerned": 1, "requested": 1})

    def rebuilt() -> dict[str, Any] | None:
        obj = cluster.get(namespace, "on-core") or {}
        image = (obj.get("status") or {}).get("latestImage") or {}
        ready = kube.condition(obj, "Ready") or {}
        fresh = (image.get("inputs") or {}).get("baseDigest") == digest
        return obj if fresh and ready.get("status") == "True" else None

    done = kube.wait_for(rebuilt, timeout=300, what="Ready on the pushed base image")
    assert done["status"]["latestImage"]["reason"] == "BaseImageChanged"
    untouched = cluster.get(namespace, "elsewhere") or {}
    assert REQUEST not in (untouched["metadata"].get("annotations") or {})
    assert len(untouched["status"]["builds"]) == 1


def test_azure_repos_and_generic_events_ask_exactly_the_runner_images_they_name(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    operator = start_operator()
    azure = _receiver(cluster, namespace, "azure", "AzureRepos")
    generic = _receiver(cluster, namespace, "generic", "Generic")
    repos = {
        "main": ("git@ssh.dev.azure.com:v3/contoso/Platform%20Team/runners", "main"),
        "dev": ("https://contoso.visualstudio.com/Platform%20Team/_git/runners", "dev"),
        "other": ("https://dev.azure.com/contoso/Platform%20Team/_git/other", "main"),
    }
    for name, (url, ref) in repos.items():
        body = _runner_image(namespace, name, host="r.invalid", core="r.invalid/c", git_url=url)
        body["spec"]["source"]["git"]["ref"] = ref
        body["spec"]["suspend"] = True  # no source to fetch: only the request is checked
        cluster.apply(namespace, json.dumps(body))
    revision = "5" * 40
    delivery = webhooks.azure_repos_push(
        username="hook",
        password=TOKEN,
        remote_url="https://contoso@dev.azure.com/contoso/Platform%20Team/_git/runners",
        ref="refs/heads/main",
        new_object_id=revision,
    )
    assert _answer(delivery, _url(operator, azure)) == (202, {"concerned": 1, "requested": 1})

    def annotations() -> dict[str, str | None]:
        return {
            name: ((cluster.get(namespace, name) or {}).get("metadata") or {})
            .get("annotations", {})
            .get(REQUEST)
            for name in repos
        }

    assert annotations() == {"main": f"webhook source {revision}", "dev": None, "other": None}

    generic_delivery = webhooks.generic(
        secret=TOKEN,
        source={
            "url": "https://dev.azure.com/contoso/Platform%20Team/_git/runners",
            "ref": "refs/heads/dev",
            "revision": "6" * 40,
        },
    )
    assert _answer(generic_delivery, _url(operator, generic)) == (
        202,
        {"concerned": 1, "requested": 1},
    )
    assert annotations() == {
        "main": f"webhook source {revision}",
        "dev": f"webhook source {'6' * 40}",
        "other": None,
    }
    # The suspended objects still handle the request (kstatus: the annotation is echoed).
    kube.wait_for(
        lambda: (
            (cluster.get(namespace, "dev") or {}).get("status", {}).get("lastHandledReconcileAt")
            == f"webhook source {'6' * 40}"
        ),
        timeout=30,
        what="the request handled",
    )


def test_refusals_have_their_status_count_and_ask_nothing(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    operator = start_operator()
    path = _receiver(cluster, namespace, "github", "GitHub")
    url = "https://github.com/contoso/runners.git"
    body = _runner_image(namespace, "r", host="r.invalid", core="r.invalid/c", git_url=url)
    body["spec"]["suspend"] = True
    cluster.apply(namespace, json.dumps(body))
    push = webhooks.github_push(secret=TOKEN, clone_url=url, ref="refs/heads/main", after="7" * 40)
    target = _url(operator, path)
    cases = {
        "not_found": (_url(operator, "/hook/" + "0" * 64), push, 404),
        "unauthorized": (target, webhooks.with_body(push, push.body + b" "), 401),
        "unsigned": (target, webhooks.with_header(push, "X-Hub-Signature-256", None), 401),
        "oversized": (target, webhooks.with_body(push, b"{" + b" " * (5 << 20) + b"}"), 413),
    }
    for what, (where, delivery, expected) in cases.items():
        assert webhooks.post(where, delivery)[0] == expected, what
    # a body signed right but not a push's shape
    broken = webhooks.github_push(
        secret=TOKEN, clone_url=url, ref="refs/heads/main", after="7" * 40
    )
    data = json.loads(broken.body)
    del data["ref"]
    raw = json.dumps(data).encode()
    resigned = webhooks.with_header(
        webhooks.with_body(broken, raw), "X-Hub-Signature-256", webhooks.hub_signature(TOKEN, raw)
    )
    status, answer = _answer(resigned, target)
    assert (status, answer) == (400, {"error": "ref is missing or not a string"})
    assert webhooks.post(target.replace("/hook/", "/hooks/"), push)[0] == 404
    assert (cluster.get(namespace, "r") or {})["metadata"].get("annotations", {}).get(
        REQUEST
    ) is None
    outcomes = {
        outcome: _metric(operator, "ade_runner_webhook_events_total", type=kind, outcome=outcome)
        for kind, outcome in [
            ("unknown", "not_found"),
            ("GitHub", "unauthorized"),
            ("GitHub", "oversized"),
            ("GitHub", "malformed"),
        ]
    }
    assert outcomes == {"not_found": 1, "unauthorized": 2, "oversized": 1, "malformed": 1}
    # the refused deliveries were not remembered: the good one still goes through, once
    assert _answer(push, target) == (202, {"concerned": 1, "requested": 1})
    assert webhooks.post(target, push)[0] == 409
    assert TOKEN not in operator.logs()


def test_the_receiver_status_follows_its_secret(
    cluster: kube.Cluster, namespace: str, start_operator: StartOperator
) -> None:
    operator = start_operator(ADE_RESYNC_INTERVAL="2s")
    cluster.apply(
        namespace,
        json.dumps(
            {
                "apiVersion": "runners.ade.dev/v1alpha1",
                "kind": "WebhookReceiver",
                "metadata": {"name": "hook"},
                "spec": {"type": "Generic", "secretRef": {"name": "hook-token"}},
            }
        ),
    )

    def stalled(reason: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            obj = cluster.get(namespace, "hook", kind="webhookreceiver") or {}
            found = kube.condition(obj, "Stalled")
            return obj if found and found["reason"] == reason else None

        return kube.wait_for(probe, timeout=30, what=f"Stalled {reason}")

    missing = stalled("SecretNotFound")
    assert "hook-token" in str(kube.condition(missing, "Ready"))
    cluster.plane.kubectl(
        "create", "secret", "generic", "hook-token", "-n", namespace, "--from-literal=token=short"
    )  # fmt: skip
    stalled("TokenTooShort")
    rotate(cluster, namespace, TOKEN)
    first = _ready_path(cluster, namespace, "hook")
    event = webhooks.generic(secret=TOKEN, image={"reference": "r.io/base:1"})
    assert webhooks.post(_url(operator, first), event)[0] == 202

    new_token = TOKEN + "-rotated"
    rotate(cluster, namespace, new_token)
    second = _ready_path(cluster, namespace, "hook", old=first)
    event = webhooks.generic(secret=new_token, image={"reference": "r.io/base:1"})
    kube.wait_for(
        lambda: webhooks.post(_url(operator, second), event)[0] == 202,
        timeout=15,
        what="the new path answering",
    )
    assert webhooks.post(_url(operator, first), event)[0] == 404


def rotate(cluster: kube.Cluster, namespace: str, token: str) -> None:
    manifest = cluster.plane.kubectl(
        "create", "secret", "generic", "hook-token", "-n", namespace, "--dry-run=client", "-o",
        "json", f"--from-literal=token={token}",
    ).stdout  # fmt: skip
    cluster.apply(namespace, manifest)
