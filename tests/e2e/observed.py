"""A RunnerImage taken to Ready with every kind of credential, for the metrics and logs tests.

The source is a git repository read with a bearer token, the image is pushed with a password
(the push Secret), the catalog is written with another password; the build runs as a Job on a
kwok node, finished by the test with a real push. `SECRETS` lists every credential string the
run used, in the forms a leak would take (raw, base64 of `user:password` as in a
`.dockerconfigjson`, base64 of the value as in a Secret's data).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import json
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import PUSH_PASSWORD, PUSH_USER, StartOperator
from tests.e2e import buildjobs, catalogs
from tests.env import gitserver, kube, kwok, oci, registry
from tests.env import operator as operator_

NAME = buildjobs.NAME
SOURCE_TOKEN = "src-b3arer-T0ken-5e1f0a9c77d2"
MANIFEST = "Environments/webapp/environment.yaml"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRETS = (
    PUSH_PASSWORD,
    catalogs.GIT_PASSWORD,
    SOURCE_TOKEN,
    _b64(f"{PUSH_USER}:{PUSH_PASSWORD}"),
    _b64(f"{catalogs.GIT_USER}:{catalogs.GIT_PASSWORD}"),
    _b64(PUSH_PASSWORD),
    _b64(catalogs.GIT_PASSWORD),
    _b64(SOURCE_TOKEN),
)


@dataclasses.dataclass(frozen=True)
class Run:
    operator: operator_.OperatorProcess
    ready: dict[str, Any]
    metrics_before: str
    """`/metrics` as scraped right after the operator started, before the RunnerImage existed."""


@contextlib.contextmanager
def ready_with_credentials(
    *,
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    folder: pathlib.Path,
    **env: str,
) -> Iterator[Run]:
    """Start the operator (with `env`), apply the RunnerImage, finish its build, wait for Ready;
    the git server keeps serving while the caller looks."""
    users = {catalogs.GIT_USER: catalogs.GIT_PASSWORD}
    with gitserver.running(folder, users, tokens={SOURCE_TOKEN: "source-bot"}) as server:
        server.create_repo(
            "runners",
            {
                "Dockerfile": f"FROM {base_image}\nCOPY scripts/ /scripts/\n",
                "scripts/deploy.sh": "#!/bin/sh\necho deploy\n",
                "scripts/delete.sh": "#!/bin/sh\n",
            },
            executable={"scripts/deploy.sh", "scripts/delete.sh"},
        )
        server.create_repo("catalog", {MANIFEST: catalogs.MANIFEST.format(name="webapp")})
        buildjobs.push_secret(cluster, namespace, oci_registry.host)
        catalogs.git_secret(cluster, namespace)
        cluster.plane.kubectl(
            "create", "secret", "generic", "source", "-n", namespace,
            f"--from-literal=bearerToken={SOURCE_TOKEN}",
        )  # fmt: skip
        operator = start_operator(**env)
        before = operator.metrics()
        body = buildjobs.runner_image(namespace, oci_registry.host, base_image)
        body["spec"]["source"] = {
            "git": {"url": server.url("runners"), "ref": "main", "secretRef": {"name": "source"}}
        }
        catalogs.with_catalog(body, server.url("catalog"), [MANIFEST])
        cluster.apply(namespace, json.dumps(body))
        (job,) = kube.wait_for(
            lambda: buildjobs.jobs(cluster, namespace) or None, timeout=60, what="the build Job"
        )
        buildjobs.finish(cluster, namespace, job, pusher)
        ready = cluster.wait_condition(namespace, NAME, "Ready", status="True", timeout=90)
        yield Run(operator, ready, before)


RunReady = Callable[..., contextlib.AbstractContextManager[Run]]


@pytest.fixture
def run_ready(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    tmp_path: pathlib.Path,
) -> RunReady:
    """`ready_with_credentials` with this test's fixtures: `with run_ready(**env) as run:`."""
    del kwok_node  # runs the build pods
    return functools.partial(
        ready_with_credentials,
        cluster=cluster,
        namespace=namespace,
        start_operator=start_operator,
        oci_registry=oci_registry,
        pusher=pusher,
        base_image=base_image,
        folder=tmp_path / "git",
    )
