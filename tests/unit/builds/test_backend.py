"""The backend-neutral build plan (controller.builds.backend) and how each backend renders its
own request from it: the Job's pod reads the mounted ConfigMap, the daemon and Docker backends
read the operator's folder."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import pytest

from controller.builds import backend, buildctl, daemon_backend, docker_backend, inprocess, job

KEY = "0123456789abcdef" * 4
OWNER = backend.Owner(name="runner", namespace="team-a", uid="uid-1")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
FOLDER = pathlib.Path("/var/lib/operator/sources/team-a/runner/0123abc")


def plan(**changes: Any) -> backend.BuildPlan:
    fields: dict[str, Any] = {
        "owner": OWNER,
        "key": KEY,
        "reason": "Initial",
        "image": "contoso.azurecr.io/ade/runner:abc",
        "dockerfile": "docker/Dockerfile",
        "context_dir": FOLDER,
        "push_secret": "push-creds",
        "timeout_seconds": 600,
        "build_args": {"A": "1"},
        "platforms": ("linux/arm64",),
        "target": "runtime",
        "labels": {"org.opencontainers.image.revision": "0123abc"},
        "cache_ref": "contoso.azurecr.io/ade/runner/buildcache:latest",
    }
    fields.update(changes)
    return backend.BuildPlan(**fields)


# --- build_name ---------------------------------------------------------------------------------


def test_build_name_for_a_short_name() -> None:
    assert backend.build_name("runner", KEY) == "runner-build-0123456789ab"
    assert backend.build_name("runner", KEY, attempt=1) == "runner-build-0123456789ab"
    assert backend.build_name("runner", KEY, attempt=2) == "runner-build-0123456789ab-r2"
    assert plan(attempt=2).name == "runner-build-0123456789ab-r2"


def test_build_name_is_deterministic() -> None:
    name = "a" * 200
    assert backend.build_name(name, KEY, 3) == backend.build_name(name, KEY, 3)


@pytest.mark.parametrize(
    "owner_name",
    [
        "r",
        "a" * 33,
        "a" * 34,
        "a" * 63,
        "a" * 253,
        "runner-" * 30,
        "x" * 32 + "-" + "y" * 40,
        "x" * 32 + "--" + "y" * 40,
    ],
)
@pytest.mark.parametrize("attempt", [1, 2, 10, 1000])
def test_build_name_is_a_short_dns_label(owner_name: str, attempt: int) -> None:
    name = backend.build_name(owner_name, KEY, attempt)
    # 57 = 63 less the "-xxxxx" the Job controller adds to name its pods.
    assert len(name) <= 57
    assert DNS_LABEL.match(name), name
    assert name.endswith(f"-build-{KEY[:12]}" + (f"-r{attempt}" if attempt > 1 else ""))


def test_build_names_differ_for_owners_sharing_a_long_prefix() -> None:
    prefix = "contoso-ade-runner-image-for-the-platform-team-"
    names = {backend.build_name(prefix + end, KEY) for end in ("dev", "test", "prod", "prod2")}
    assert len(names) == 4


@pytest.mark.parametrize(
    ("one", "two"),
    [(("runner", KEY, 1), ("runner", "f" * 64, 1)), (("runner", KEY, 1), ("runner", KEY, 2))],
)
def test_build_names_differ_by_key_and_attempt(
    one: tuple[str, str, int], two: tuple[str, str, int]
) -> None:
    assert backend.build_name(*one) != backend.build_name(*two)


# --- each backend's request ---------------------------------------------------------------------


def test_the_plan_renders_a_request_for_a_given_context_and_metadata_file() -> None:
    assert plan().request(context="/c", metadata_file="/m.json") == buildctl.BuildRequest(
        context=buildctl.LocalContext("/c"),
        dockerfile="docker/Dockerfile",
        image="contoso.azurecr.io/ade/runner:abc",
        build_args={"A": "1"},
        platforms=("linux/arm64",),
        target="runtime",
        metadata_file="/m.json",
        cache_ref="contoso.azurecr.io/ade/runner/buildcache:latest",
        labels={"org.opencontainers.image.revision": "0123abc"},
    )


def test_the_job_backend_builds_from_the_mount_in_its_pod() -> None:
    req = job.request(plan())
    assert req == plan().request(context=job.CONTEXT_MOUNT, metadata_file=job.METADATA_FILE)


def test_the_daemon_backend_builds_from_the_operators_folder(tmp_path: pathlib.Path) -> None:
    metadata = tmp_path / "metadata.json"
    req = daemon_backend.request(plan(), metadata)
    assert req == plan().request(context=str(FOLDER), metadata_file=str(metadata))
    args = buildctl.arguments(req)
    assert f"context={FOLDER}" in args
    assert job.CONTEXT_MOUNT not in " ".join(args)


def test_the_docker_backend_sends_the_operators_folder(tmp_path: pathlib.Path) -> None:
    assert docker_backend.build_arguments(plan(), tmp_path) == {
        "path": str(FOLDER),
        "dockerfile": "docker/Dockerfile",
        "tag": "contoso.azurecr.io/ade/runner:abc",
        "buildargs": {"A": "1"},
        "target": "runtime",
        "platform": "linux/arm64",
        "labels": {"org.opencontainers.image.revision": "0123abc"},
        "rm": True,
        "forcerm": True,
        "decode": True,
    }


def test_the_docker_backend_labels_in_one_instruction_of_a_copied_dockerfile(
    tmp_path: pathlib.Path,
) -> None:
    """The classic builder makes the API's labels one step each: the labels go in one LABEL
    instruction of a copy of the Dockerfile, outside the context (the context's own is kept)."""
    context, scratch = tmp_path / "context", tmp_path / "scratch"
    (context / "docker").mkdir(parents=True)
    scratch.mkdir()
    original = "FROM core:4.0\nCOPY scripts/ /scripts/\n"
    (context / "docker" / "Dockerfile").write_text(original)
    labels = {"org.opencontainers.image.revision": "0123abc", "runners.ade.dev/owner": "ns/name"}
    built = dataclasses.replace(plan(), target=None, context_dir=context, labels=labels)
    arguments = docker_backend.build_arguments(built, scratch)
    assert arguments["labels"] == {}
    copy = pathlib.Path(arguments["dockerfile"])
    assert copy.parent == scratch
    assert copy.read_text() == (
        original + 'LABEL "org.opencontainers.image.revision"="0123abc"'
        ' "runners.ade.dev/owner"="ns/name"\n'
    )
    assert (context / "docker" / "Dockerfile").read_text() == original


@pytest.mark.parametrize(
    ("text", "labels", "target"),
    [
        ("FROM a\nRUN b\n", {"k": "v"}, "runtime"),  # the target stage may not be the last
        ("FROM a\nRUN b \\\n", {"k": "v"}, None),  # the LABEL would continue RUN
        ("FROM a\nRUN b \\\n# a comment\n\n", {"k": "v"}, None),
        ("# escape=`\nFROM a\nRUN b `\n", {"k": "v"}, None),
        ("FROM a\n", {"k": 'say "hi"'}, None),  # would need quoting
        ("FROM a\n", {"k": "$HOME"}, None),  # would be expanded
        ("FROM a\n", {}, None),
    ],
)
def test_labels_stay_the_apis_where_a_line_appended_would_not_label_the_image(
    text: str, labels: dict[str, str], target: str | None
) -> None:
    assert docker_backend.labelled_dockerfile(text, labels, target=target) is None


def test_an_escape_directive_decides_what_continues_a_line() -> None:
    text = "# escape=`\nFROM a\nRUN dir c:\\\n"  # a backslash ends the line: no continuation
    assert docker_backend.labelled_dockerfile(text, {"k": "v"}, target=None) == (
        text + 'LABEL "k"="v"\n'
    )


def test_the_plan_holds_no_credentials() -> None:
    assert "docker_config" not in backend.BuildPlan.__dataclass_fields__
    assert "push-creds" in repr(plan())  # only the Secret's name


class Recording(inprocess.InProcessBackend):
    """An in-process backend whose build records what it was given."""

    def __init__(self) -> None:
        super().__init__(tasks=inprocess.Tasks())
        self.given: list[Mapping[str, Any] | None] = []

    async def _run(
        self, plan: backend.BuildPlan, *, docker_config: Mapping[str, Any] | None
    ) -> backend.BuildState:
        self.given.append(docker_config)
        return backend.BuildState(backend.Phase.SUCCEEDED, digest="sha256:" + "a" * 64)


async def test_in_process_backends_get_the_credentials_at_start_only() -> None:
    recording = Recording()
    config = {"auths": {"contoso.azurecr.io": {"auth": "dTpw"}}}
    await recording.start(plan(), docker_config=config)
    await asyncio.gather(*recording._tasks._tasks.values())
    assert recording.given == [config]
    assert (await recording.state(plan())).phase is backend.Phase.SUCCEEDED
    await recording._tasks.close()


class Gated(inprocess.InProcessBackend):
    """An in-process backend whose build ends when `release` is set; `woken` records the
    builds whose end called `on_finished`."""

    def __init__(self) -> None:
        self.woken: list[str] = []
        super().__init__(tasks=inprocess.Tasks(on_finished=lambda ns, n, b: self.woken.append(b)))
        self.release = asyncio.Event()

    async def _run(
        self, plan: backend.BuildPlan, *, docker_config: Mapping[str, Any] | None
    ) -> backend.BuildState:
        await self.release.wait()
        return backend.BuildState(backend.Phase.SUCCEEDED, digest="sha256:" + "a" * 64)


async def test_a_build_that_ends_while_its_reconcile_waits_wakes_nobody_else() -> None:
    gated = Gated()
    await gated.start(plan(), docker_config=None)
    asyncio.get_running_loop().call_later(0.05, gated.release.set)
    assert await gated.wait(plan(), timeout=5)
    await asyncio.sleep(0)
    assert gated.woken == [], "the waiting reconcile goes on with it: no wake"
    assert (await gated.state(plan())).phase is backend.Phase.SUCCEEDED
    await gated._tasks.close()


async def test_a_build_longer_than_the_wait_wakes_its_reconcile_when_it_ends() -> None:
    gated = Gated()
    await gated.start(plan(), docker_config=None)
    assert not await gated.wait(plan(), timeout=0.01)
    assert (await gated.state(plan())).phase is backend.Phase.RUNNING
    gated.release.set()
    await asyncio.gather(*gated._tasks._tasks.values())
    await asyncio.sleep(0)
    assert gated.woken == [plan().name]
    await gated._tasks.close()


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 4])
async def test_a_build_ending_as_its_waiter_is_cancelled_is_taken_by_exactly_one_side(
    turns: int,
) -> None:
    """Whatever the interleaving of the build's end and the waiter's cancellation: either the
    waiter went on with the build, or `on_finished` woke its reconcile; never both, never
    neither."""
    gated = Gated()
    await gated.start(plan(), docker_config=None)
    waiter = asyncio.ensure_future(gated.wait(plan(), timeout=5))
    await asyncio.sleep(0.01)
    gated.release.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    await asyncio.gather(*gated._tasks._tasks.values())
    await asyncio.sleep(0)
    went_on = not waiter.cancelled() and waiter.result() is True
    assert went_on != (gated.woken == [plan().name]), (went_on, gated.woken)
    await gated._tasks.close()
