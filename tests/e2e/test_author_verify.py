"""`ade-runner-operator verify IMAGE` as a runner author runs it (a subprocess) against the real
registry behind ACR's token flow: a good runner exits 0 with what was read, each bad one of the
operator's own verification cases exits 1 naming the failure, an image that cannot be read
(anonymous pull refused, no such tag, no registry) exits 2 in one line; the password, given on
standard input, shows nowhere. The JSON output's shape is part of the interface."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import PUSH_PASSWORD, PUSH_USER, docker_config_json
from tests.e2e import buildjobs
from tests.e2e.test_verification import BASE_LAYER, CASES
from tests.env import oci, registry

pytestmark = pytest.mark.e2e

BASE = oci.Image(layers=[BASE_LAYER], entrypoint=buildjobs.BASE_ENTRYPOINT)


def verify(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    login = ["--username", PUSH_USER, "--password-stdin"] if password is not None else []
    done = subprocess.run(
        [sys.executable, "-m", "controller", "verify", *args, *login],
        input=None if password is None else password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},  # no docker config of the host
    )
    assert PUSH_PASSWORD not in done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def pushed(oci_registry: registry.Registry) -> dict[str, str]:
    """Every case of the operator's verification test, pushed: case -> reference."""
    with oci.Pusher(oci_registry.host, username=PUSH_USER, password=PUSH_PASSWORD) as pusher:
        for name, (image, _) in CASES.items():
            pusher.push_image(f"authors/{name}", image, tag="v1")
        pusher.push_image("authors/core", BASE, tag="4.0")  # what each was built FROM
    return {
        **{name: f"{oci_registry.host}/authors/{name}:v1" for name in CASES},
        "base": f"{oci_registry.host}/authors/core:4.0",
    }


def test_a_good_runner_exits_0_and_says_what_was_read(pushed: dict[str, str]) -> None:
    done = verify(pushed["good"], password=PUSH_PASSWORD)
    assert done.returncode == 0, done.stderr
    assert " an ADE runner (read 1 of 2 layer(s), " in done.stdout
    as_json = verify(pushed["good"], "--format", "json", password=PUSH_PASSWORD)
    document = json.loads(as_json.stdout)
    assert set(document) == {
        "image", "conformant", "findings", "layersRead", "layersTotal", "bytesRead", "totalSize"
    }  # fmt: skip
    assert document["conformant"] is True
    assert document["findings"] == []
    assert document["image"].startswith(pushed["good"] + "@sha256:")
    assert 0 < document["bytesRead"] <= document["totalSize"]


@pytest.mark.parametrize("case", [name for name, (_, failure) in CASES.items() if failure])
def test_each_broken_runner_exits_1_naming_the_failure(pushed: dict[str, str], case: str) -> None:
    done = verify(pushed[case], "--base", pushed["base"], password=PUSH_PASSWORD)
    failure = CASES[case][1]
    assert done.returncode == 1, done.stderr
    assert "NOT an ADE runner" in done.stdout
    assert failure is not None
    assert failure in done.stdout, done.stdout


def test_a_docker_config_file_is_read(pushed: dict[str, str], tmp_path: pathlib.Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(docker_config_json(pushed["good"].split("/", 1)[0]))
    done = verify(pushed["good"], "--docker-config", str(config))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("anonymous", "401"),  # anonymous pull is off on this registry: ADE could not pull it
        ("no-tag", "not found"),
        ("no-registry", "127.0.0.1:9"),
    ],
)
def test_an_image_that_cannot_be_read_exits_2_in_one_line(
    pushed: dict[str, str], how: str, message: str
) -> None:
    if how == "anonymous":
        done = verify(pushed["good"], "--anonymous")
    elif how == "no-tag":
        done = verify(pushed["good"].replace(":v1", ":v404"), password=PUSH_PASSWORD)
    else:
        done = verify("127.0.0.1:9/authors/good:v1", "--anonymous")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message.lower() in done.stderr.lower(), done.stderr


def test_bad_arguments_are_one_line_and_exit_2() -> None:
    for args in (["not a reference"], ["r.example/x:1", "--password-stdin"]):
        done = verify(*args)
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
