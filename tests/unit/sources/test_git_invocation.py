"""How git is started: argv, environment and files, seen by a stand-in `git` on PATH.

The stand-in records what it was given and fails like a server that has no such repository, so
these tests need no network and no real git, and show exactly what a real git would receive.
"""

from __future__ import annotations

import base64
import os
import pathlib
import tempfile

import pytest

from controller.git.credentials import Credentials, CredentialsInvalid
from controller.observe import metrics
from controller.sources import git

PASSWORD = "pa:ss@w0rd-7Q"
TOKEN = "tok-0123456789abcdef"
IDENTITY = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAkeymaterial\n-----END OPENSSH PRIVATE KEY-----"
)
KNOWN_HOSTS = (
    b"h.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
)

FAKE_GIT = """#!/bin/sh
printf '%s\\n' "$@" > {record}/argv
echo "$*" >> {record}/calls
env > {record}/env
[ "$1" = init ] && exit 0
if [ -d "$HOME/../ssh" ]; then
  stat -c '%a' "$HOME/../ssh" "$HOME/../ssh/identity" "$HOME/../ssh/known_hosts" > {record}/modes
  cat "$HOME/../ssh/identity" > {record}/identity
fi
echo "fatal: repository 'somewhere' not found" >&2
exit 128
"""


@pytest.fixture
def record(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A stand-in git first on PATH; scratch directories under tmp_path/scratch."""
    bin_dir, record, scratch = tmp_path / "bin", tmp_path / "record", tmp_path / "scratch"
    for folder in (bin_dir, record, scratch):
        folder.mkdir()
    fake = bin_dir / "git"
    fake.write_text(FAKE_GIT.format(record=record))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GIT_DIR", "/must/not/leak")
    monkeypatch.setenv("GIT_TRACE_CURL", "1")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return record


def _env(record: pathlib.Path) -> dict[str, str]:
    lines = (record / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


async def test_http_basic_goes_in_a_header_scoped_to_the_origin(record: pathlib.Path) -> None:
    creds = Credentials(username="alice", password=PASSWORD, secret="git-creds")
    url = "https://h.example:8443/org/repo.git"
    with pytest.raises(git.GitRepositoryNotFound) as caught:
        await git.ls_remote(url=url, ref="main", credentials=creds, timeout=10)

    argv = (record / "argv").read_text().splitlines()
    assert argv == [
        "ls-remote",
        "--",
        url,
        "refs/heads/main",
        "refs/tags/main",
        "refs/heads/main^{}",
        "refs/tags/main^{}",
    ]
    env = _env(record)
    config = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    header = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert config["http.https://h.example:8443/.extraHeader"] == f"Authorization: Basic {header}"
    assert config["credential.helper"] == ""
    assert config["transfer.fsckObjects"] == "true"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_ASKPASS"] == ""
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_ALLOW_PROTOCOL"] == "http:https:ssh"
    assert env["LC_ALL"] == "C"
    assert env["HOME"].startswith(str(record.parent / "scratch"))
    assert "GIT_DIR" not in env
    assert "GIT_TRACE_CURL" not in env
    assert "GIT_SSH_COMMAND" not in env
    assert PASSWORD not in " ".join(argv)
    assert header not in " ".join(argv)
    assert caught.value.url == url
    assert caught.value.ref == "main"
    assert url in caught.value.message
    assert list((record.parent / "scratch").iterdir()) == []  # removed afterwards


async def test_bearer_token_header(record: pathlib.Path) -> None:
    with pytest.raises(git.GitRepositoryNotFound):
        await git.ls_remote(
            url="http://h.example/r.git",
            ref="v1",
            credentials=Credentials(bearer_token=TOKEN),
            timeout=10,
        )
    assert f"Authorization: Bearer {TOKEN}" in _env(record).values()
    assert TOKEN not in (record / "argv").read_text()


async def test_anonymous_http_sends_no_header(record: pathlib.Path) -> None:
    with pytest.raises(git.GitRepositoryNotFound):
        await git.ls_remote(url="https://h.example/r.git", ref="main", timeout=10)
    assert not any("extraHeader" in value for value in _env(record).values())


async def test_ssh_key_in_a_private_file_and_hosts_strictly_checked(
    record: pathlib.Path,
) -> None:
    creds = Credentials(identity=IDENTITY, known_hosts=KNOWN_HOSTS, password="ignored")
    with pytest.raises(git.GitRepositoryNotFound):
        await git.ls_remote(
            url="git@h.example:org/repo.git", ref="main", credentials=creds, timeout=10
        )
    folder_mode, key_mode, hosts_mode = (record / "modes").read_text().split()
    assert (folder_mode, key_mode, hosts_mode) == ("700", "600", "600")
    assert (record / "identity").read_bytes() == IDENTITY + b"\n"  # OpenSSH wants the newline
    command = _env(record)["GIT_SSH_COMMAND"]
    for option in (
        "-F /dev/null",
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "GlobalKnownHostsFile=/dev/null",
        "UserKnownHostsFile=",
    ):
        assert option in command
    assert "keymaterial" not in command
    assert list((record.parent / "scratch").iterdir()) == []  # the key is gone


async def test_ssh_without_a_secret_is_refused_before_git(record: pathlib.Path) -> None:
    with pytest.raises(CredentialsInvalid, match="'identity' is required"):
        await git.ls_remote(url="ssh://git@h.example/org/repo.git", ref="main", timeout=10)
    assert not (record / "argv").exists()


async def test_full_sha_is_verified_with_a_commit_only_fetch(record: pathlib.Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(git.GitRepositoryNotFound):
        await git.ls_remote(url="https://h.example/r.git", ref=sha.upper(), timeout=10)
    init, fetch = (record / "calls").read_text().splitlines()
    assert init.startswith("init --quiet --bare ")
    repo = init.split()[-1]
    assert fetch == (
        f"--git-dir {repo} fetch --quiet --depth=1 --no-tags --no-recurse-submodules"
        f" --no-write-fetch-head --filter=tree:0 -- https://h.example/r.git {sha}"
    )


async def test_an_operation_is_reported_once_with_its_result(record: pathlib.Path) -> None:
    labels = {"purpose": "source", "operation": "ls-remote"}

    def count(result: str) -> float:
        total = "ade_runner_git_operations_total"
        return metrics.REGISTRY.get_sample_value(total, {**labels, "result": result}) or 0.0

    failed, ok = count("failed"), count("ok")
    with pytest.raises(git.GitRepositoryNotFound):
        await git.ls_remote(url="https://h.example/r.git", ref="main", timeout=10)
    assert (count("failed"), count("ok")) == (failed + 1, ok)
