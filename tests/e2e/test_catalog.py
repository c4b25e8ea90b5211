"""Catalog write-back end to end: a verified image is written into the catalog over real git.

Builds run as Job builds on kwok nodes (finished by the test, with a real push to the real
registry); the catalog is a bare repository served by `git http-backend` with basic auth.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import PUSH_PASSWORD, StartOperator
from tests.e2e import buildjobs
from tests.e2e.catalogs import GIT_PASSWORD, GIT_USER, MANIFEST
from tests.e2e.catalogs import git_secret as _git_secret
from tests.e2e.catalogs import with_catalog as _with_catalog
from tests.env import gitserver, kube, kwok, oci, registry, signing_keys

pytestmark = pytest.mark.e2e

FILES = {
    f"Environments/{name}/environment.yaml": MANIFEST.format(name=name)
    for name in ("webapp", "function", "storage")
}


@pytest.fixture
def git_server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {GIT_USER: GIT_PASSWORD}) as server:
        server.create_repo(
            "catalog",
            {
                **FILES,
                "Environments/broken/environment.yaml": "name: [unclosed\n",
                "Environments/no-template/environment.yaml": "name: x\nrunner: ARM\n",
                "Other/manifest.yaml": MANIFEST.format(name="other"),
            },
        )
        yield server


def _remote_file(server: gitserver.GitServer, path: str, tmp: pathlib.Path, ref: str) -> str:
    clone = tmp / f"check-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["git", "clone", "-q", "--branch", ref, server.url_with_user("catalog"), str(clone)],
        check=True,
        capture_output=True,
    )
    return (clone / path).read_text()


def _build_to_verified(
    cluster: kube.Cluster, namespace: str, pusher: oci.Pusher, name: str = buildjobs.NAME
) -> str:
    """Finish the build Job of `name`; returns the pushed digest."""
    (job,) = kube.wait_for(
        lambda: buildjobs.jobs(cluster, namespace, name) or None,
        timeout=30,
        what=f"the build Job of {name}",
    )
    return buildjobs.finish(cluster, namespace, job, pusher)


def test_three_manifests_in_one_commit_and_a_second_image_batched(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    tmp_path: pathlib.Path,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    _git_secret(cluster, namespace)
    operator = start_operator()
    url = git_server.url("catalog")
    before = git_server.head("catalog", "main")
    first = _with_catalog(
        buildjobs.runner_image(namespace, oci_registry.host, base_image),
        url,
        ["Environments/webapp/environment.yaml", "Environments/function/*.yaml", "Env*/stor*/*"],
    )
    cluster.apply(namespace, json.dumps(first))
    _build_to_verified(cluster, namespace, pusher)
    ready = cluster.wait_condition(namespace, buildjobs.NAME, "Ready", status="True", timeout=60)
    catalog = ready["status"]["catalog"]
    image = ready["status"]["latestImage"]["reference"]
    assert catalog["image"] == image
    assert catalog["manifests"] == sorted(FILES)
    head = git_server.head("catalog", "main")
    assert catalog["revision"] == head
    log = git_server.log("catalog", "main")
    assert len(log) == 2, log  # the initial commit and exactly one more
    synced = kube.condition(ready, "CatalogSynced")
    assert synced is not None
    assert synced["status"] == "True"
    text = _remote_file(git_server, "Environments/webapp/environment.yaml", tmp_path, "main")
    assert text == MANIFEST.format(name="webapp").replace(
        "mcr.microsoft.com/deployment-environments/runners/core:latest", image
    )
    assert head != before

    # A second RunnerImage on the same repository, other manifests, pinned by digest.
    second = _with_catalog(
        buildjobs.runner_image(namespace, oci_registry.host, base_image),
        url,
        ["Other/manifest.yaml"],
        pin="Digest",
    )
    second["metadata"]["name"] = "other-runner"
    second["spec"]["image"]["repository"] = f"{namespace}/other"
    cluster.apply(namespace, json.dumps(second))
    digest = _build_to_verified(cluster, namespace, pusher, "other-runner")
    other = cluster.wait_condition(namespace, "other-runner", "Ready", status="True", timeout=60)
    assert other["status"]["catalog"]["image"].endswith(f"@{digest}")
    assert "@sha256:" in _remote_file(git_server, "Other/manifest.yaml", tmp_path, "main")
    # The first image's change is still there: nothing was lost.
    again = _remote_file(git_server, "Environments/storage/environment.yaml", tmp_path, "main")
    assert image in again
    for secret in (GIT_PASSWORD, PUSH_PASSWORD):
        assert secret not in operator.logs()
        assert all(secret not in c.subject for c in git_server.log("catalog", "main"))


def test_invalid_manifests_are_left_alone_and_named(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    tmp_path: pathlib.Path,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    _git_secret(cluster, namespace)
    start_operator()
    body = _with_catalog(
        buildjobs.runner_image(namespace, oci_registry.host, base_image),
        git_server.url("catalog"),
        ["Environments/**/environment.yaml"],
    )
    cluster.apply(namespace, json.dumps(body))
    _build_to_verified(cluster, namespace, pusher)
    obj = cluster.wait_condition(
        namespace, buildjobs.NAME, "CatalogSynced", status="False", reason="ManifestInvalid",
        timeout=60,
    )  # fmt: skip
    message = kube.condition(obj, "CatalogSynced")["message"]  # type: ignore[index]
    assert "Environments/broken/environment.yaml" in message
    assert "Environments/no-template/environment.yaml" in message
    image = obj["status"]["latestImage"]["reference"]
    # The valid ones were written; the invalid ones are untouched.
    assert image in _remote_file(
        git_server, "Environments/webapp/environment.yaml", tmp_path, "main"
    )
    assert (
        _remote_file(git_server, "Environments/broken/environment.yaml", tmp_path, "main")
        == "name: [unclosed\n"
    )


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong-password", "CatalogAuthFailed"),
        ("missing-repository", "CatalogRepositoryNotFound"),
        ("missing-branch", "CatalogBranchNotFound"),
        ("no-match", "ManifestNotFound"),
    ],
)
def test_catalog_failures_have_their_reason_and_leave_the_remote_alone(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    case: str,
    reason: str,
) -> None:
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    _git_secret(cluster, namespace, "wrong" if case == "wrong-password" else GIT_PASSWORD)
    operator = start_operator()
    url = git_server.url("nothing" if case == "missing-repository" else "catalog")
    body = _with_catalog(
        buildjobs.runner_image(namespace, oci_registry.host, base_image),
        url,
        ["NoSuchFolder/*.yaml" if case == "no-match" else "Environments/webapp/*.yaml"],
    )
    if case == "missing-branch":
        body["spec"]["catalog"]["git"]["branch"] = "release"
    before = git_server.head("catalog", "main")
    cluster.apply(namespace, json.dumps(body))
    _build_to_verified(cluster, namespace, pusher)
    obj = cluster.wait_condition(
        namespace, buildjobs.NAME, "CatalogSynced", status="False", reason=reason, timeout=60
    )
    ready = kube.condition(obj, "Ready")
    assert ready is not None
    assert ready["reason"] == reason
    assert git_server.head("catalog", "main") == before
    assert GIT_PASSWORD not in operator.logs()
    assert "wrong" not in json.dumps(obj["status"])


def test_a_protected_catalog_takes_only_signed_commits_from_the_operator(
    cluster: kube.Cluster,
    namespace: str,
    start_operator: StartOperator,
    kwok_node: kwok.Kwok,
    oci_registry: registry.Registry,
    pusher: oci.Pusher,
    base_image: str,
    git_server: gitserver.GitServer,
    tmp_path: pathlib.Path,
) -> None:
    """The catalog's branch refuses unsigned commits (a pre-receive hook, as a protected branch):
    without its signing key the operator says why the push was refused; with the key in a Secret
    (`spec.catalog.signing`) the commit lands signed, and the key shows nowhere."""
    key = signing_keys.ssh_key(tmp_path / "keys", passphrase="Signing-Passphrase-9")
    git_server.require_signed("catalog", ssh_keys={"catalog-bot": key.public.decode()})
    buildjobs.push_secret(cluster, namespace, oci_registry.host)
    _git_secret(cluster, namespace)
    operator = start_operator()
    before = git_server.head("catalog", "main")
    body = _with_catalog(
        buildjobs.runner_image(namespace, oci_registry.host, base_image),
        git_server.url("catalog"),
        ["Environments/webapp/environment.yaml"],
    )
    cluster.apply(namespace, json.dumps(body))
    _build_to_verified(cluster, namespace, pusher)
    refused = cluster.wait_condition(
        namespace, buildjobs.NAME, "CatalogSynced", status="False", reason="CatalogPushRefused",
        timeout=60,
    )  # fmt: skip
    message = kube.condition(refused, "CatalogSynced")["message"]  # type: ignore[index]
    assert "is not signed by a trusted key" in message  # what the server said, passed on
    assert git_server.head("catalog", "main") == before

    (keys := tmp_path / "keys" / "secret").mkdir()
    (keys / "identity").write_bytes(key.private)
    cluster.plane.kubectl(
        "create", "secret", "generic", "catalog-signing", "-n", namespace,
        f"--from-file=identity={keys / 'identity'}",
        "--from-literal=passphrase=Signing-Passphrase-9",
    )  # fmt: skip
    body["spec"]["catalog"]["signing"] = {"secretRef": {"name": "catalog-signing"}}
    cluster.apply(namespace, json.dumps(body))
    ready = cluster.wait_condition(namespace, buildjobs.NAME, "Ready", status="True", timeout=90)
    head = git_server.head("catalog", "main")
    assert ready["status"]["catalog"]["revision"] == head != before
    assert git_server.signatures("catalog", "-1", "main")[0][:2] == ("G", "catalog-bot")
    text = _remote_file(git_server, "Environments/webapp/environment.yaml", tmp_path, "main")
    assert ready["status"]["latestImage"]["reference"] in text
    logs = operator.logs()
    for line in key.private.splitlines():
        if len(line) >= 16 and b"-----" not in line:
            assert line.decode() not in logs
    assert "Signing-Passphrase-9" not in logs
    assert "Signing-Passphrase-9" not in json.dumps(ready)
