"""Verification end to end: only an image that is a working ADE runner reaches the catalog.

Each RunnerImage's Job build is finished by the test with an image pushed to the real registry:
a good runner, and runners with a missing script, a script that is not executable, CRLF line
endings, a script deleted by a later layer (an OCI whiteout), and the base's entrypoint replaced.
The operator reads each from the registry; every bad one stalls with `ImageNotConformant` naming
the script and the problem, and the catalog repository (real git over HTTP) gets exactly one
commit: the good one's. The Dockerfile lint (apk on a core 4 image) shows up as
`status.warnings` and one Event, and does not stop the build.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import StartOperator
from tests.e2e import buildjobs
from tests.e2e.catalogs import GIT_PASSWORD, GIT_USER, MANIFEST, git_secret, with_catalog
from tests.env import gitserver, kube, kwok, oci, registry

pytestmark = pytest.mark.e2e

BASE_LAYER = [oci.file("usr/local/bin/entrypoint.sh", '#!/bin/sh\nexec "$@"\n', 0o755)]
SCRIPT = "#!/bin/sh\necho ok\n"


def _image(*layers: list[oci.Entry], entrypoint: list[str] | None = None) -> oci.Image:
    return oci.Image(
        layers=[BASE_LAYER, *layers], entrypoint=entrypoint or buildjobs.BASE_ENTRYPOINT
    )


def _scripts(
    deploy: tuple[str, int] = (SCRIPT, 0o755), delete: tuple[str, int] = (SCRIPT, 0o755)
) -> list[oci.Entry]:
    return [oci.file("scripts/deploy.sh", *deploy), oci.file("scripts/delete.sh", *delete)]


CASES: dict[str, tuple[oci.Image, str | None]] = {
    "good": (_image(_scripts()), None),
    "missing": (
        _image([oci.file("scripts/deploy.sh", SCRIPT, 0o755)]),
        "/scripts/delete.sh is missing",
    ),
    "not-executable": (
        _image(_scripts(delete=(SCRIPT, 0o644))),
        "/scripts/delete.sh is not executable (mode 0644)",
    ),
    "crlf": (
        _image(_scripts(deploy=("#!/bin/sh\r\necho ok\r\n", 0o755))),
        "/scripts/deploy.sh has CRLF line endings (line 1)",
    ),
    "whiteout": (
        _image(_scripts(), [oci.whiteout("scripts/deploy.sh")]),
        "/scripts/deploy.sh is missing",
    ),
    "entrypoint": (
        _image(_scripts(), entrypoint=["/bin/sh"]),
        'its base image\'s entrypoint is ["/usr/local/bin/entrypoint.sh"]',
    ),
}


@pytest.fixture
def git_server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    files = {f"Environments/{case}/environment.yaml": MANIFEST.format(name=case) for case in CASES}
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        server.create_repo("catalog", files)
        yield server


def test_only_a_conformant_image_reaches_the_catalog(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    git_secret(cluster, namespace)
    start_operator()
    before = git_server.head("catalog", "main")
    for case in CASES:
        body = with_catalog(
            buildjobs.runner_image(namespace, oci_registry.host, base_image),
            git_server.url("catalog"),
            [f"Environments/{case}/environment.yaml"],
        )
        body["metadata"]["name"] = case
        body["spec"]["image"]["repository"] = f"{namespace}/{case}"
        cluster.apply(namespace, json.dumps(body))
    for case, (image, _) in CASES.items():
        (job,) = kube.wait_for(
            lambda case=case: buildjobs.jobs(cluster, namespace, case) or None,  # type: ignore[misc]
            timeout=60,
            what=f"the build Job of {case}",
        )
        buildjobs.finish(cluster, namespace, job, pusher, image)

    good = cluster.wait_condition(namespace, "good", "Ready", status="True", timeout=90)
    verified = kube.condition(good, "Verified")
    assert verified is not None
    assert "ADE runner conformant (read 1 of 2 layer(s)" in verified["message"]
    for case, (_, expected) in CASES.items():
        if expected is None:
            continue
        stalled = cluster.wait_condition(
            namespace, case, "Stalled", status="True", reason="ImageNotConformant", timeout=60
        )
        condition = kube.condition(stalled, "Verified")
        assert condition is not None
        assert (condition["status"], condition["reason"]) == ("False", "ImageNotConformant")
        assert condition["message"].startswith("ImageNotConformant: "), condition["message"]
        assert expected in condition["message"], (case, condition["message"])
        assert "catalog" not in stalled["status"]
        assert kube.condition(stalled, "CatalogSynced") is None

    log = git_server.log("catalog", "main")
    assert len(log) == 2, log  # the initial commit and the good runner's, nothing else
    assert git_server.head("catalog", "main") == good["status"]["catalog"]["revision"] != before
    assert good["status"]["catalog"]["manifests"] == ["Environments/good/environment.yaml"]


def test_dockerfile_lint_warns_in_status_and_one_event_without_stopping_the_build(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
) -> None:
    core = f"{namespace}/deployment-environments/runners/core"  # a mirror of ADE's core image
    pusher.push_image(core, _image(), tag="4.1")
    base = f"{oci_registry.host}/{core}:4.1"
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    start_operator()
    body = buildjobs.runner_image(namespace, oci_registry.host, base)
    body["spec"]["source"]["inline"]["dockerfile"] = (
        f"FROM {base}\nRUN apk add --no-cache jq\nCOPY scripts/ /scripts/\n"
    )
    cluster.apply(namespace, json.dumps(body))
    (job,) = kube.wait_for(
        lambda: buildjobs.jobs(cluster, namespace) or None, timeout=60, what="the build Job"
    )  # the lint does not stop the build
    obj = cluster.get(namespace, buildjobs.NAME) or {}
    warnings = obj["status"]["warnings"]
    # the runner author's command says the same about the same file
    spec = body["spec"]
    args = [f"--build-arg={name}={value}" for name, value in spec.get("buildArgs", {}).items()]
    cli = subprocess.run(
        [sys.executable, "-m", "controller", "lint", "--format", "json", *args, "-"],
        input=spec["source"]["inline"]["dockerfile"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 1, cli.stderr
    assert json.loads(cli.stdout)["findings"] == warnings
    found = [(w["rule"], w["line"]) for w in warnings]
    assert ("ApkOnCore", 2) in found, found  # and the scripts copied without chmod, line 3
    assert "is ADE core 4 or later" in warnings[0]["message"] or "apk" in warnings[0]["message"]
    buildjobs.finish(cluster, namespace, job, pusher)
    cluster.wait_condition(namespace, buildjobs.NAME, "Ready", status="True", timeout=90)
    events = [
        e for e in cluster.events(namespace, buildjobs.NAME) if e["reason"] == "DockerfileWarnings"
    ]
    assert len(events) == 1, events  # once, when they appeared: not on every reconcile
    assert events[0]["type"] == "Warning"
    assert "line 2" in events[0]["message"]
