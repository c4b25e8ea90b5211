"""git's isolated environment: the transports allowed, and where the credentials go.

`transport` refuses a URL git must not be given (another scheme, a leading "-", user information
in an HTTP URL) and names its transport; `usable` keeps the credentials that transport uses;
`environment` builds git's whole environment from nothing in a private scratch folder.

Isolation and secrecy:
- Credentials are never in argv, in the URL given to git, or in logs. HTTP Basic/Bearer goes in
  `http.<origin>/.extraHeader`, passed through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/
  `GIT_CONFIG_VALUE_n` (so only that origin ever sees it); SSH uses a 0600 key file, the Secret's
  `known_hosts`, `StrictHostKeyChecking=yes` and `IdentitiesOnly=yes`.
- git never prompts (`GIT_TERMINAL_PROMPT=0`, empty `GIT_ASKPASS`/`SSH_ASKPASS`, ssh `BatchMode`)
  and reads no configuration of the machine (`HOME` in the scratch directory,
  `GIT_CONFIG_GLOBAL=/dev/null`, `GIT_CONFIG_NOSYSTEM=1`, no credential helper); the environment
  is built from nothing, so no `GIT_*` variable of the operator's leaks in. Only the http, https
  and ssh transports are allowed, and fetched objects are fsck-checked.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import urllib.parse

from controller import errors
from controller.git.credentials import Credentials, Transport

_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:.+")


def transport(url: str) -> Transport:
    """The transport of `url`; `ValueError` for another scheme, a leading "-" or user
    information in an HTTP URL (credentials come from a Secret, never from the URL)."""
    if url.startswith("-"):
        raise ValueError("a git URL must not start with '-'")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in an HTTP URL are refused: use a Secret")
        return "http"
    if scheme == "ssh" or (not scheme and _SCP_LIKE.fullmatch(url)):
        return "ssh"
    raise ValueError(f"unsupported git URL {errors.redact(url)!r}: use https://, http:// or ssh")


def usable(url: str, credentials: Credentials | None) -> Credentials:
    """The credentials (none: anonymous) that the transport of `url` uses, checked: raises
    `ValueError` for a refused URL and `credentials.CredentialsInvalid` for a Secret that does
    not fit it."""
    return (credentials or Credentials()).for_transport(transport(url))


def environment(folder: pathlib.Path, url: str, credentials: Credentials) -> dict[str, str]:
    """git's whole environment for talking to `url`, built from nothing: only PATH and the proxy
    variables are inherited; messages in English (LC_ALL=C) so that `failures.classify` can read
    them. It creates `folder/home` (and `folder/ssh`, holding the key, for SSH): `folder` is
    private scratch. `credentials` are those `usable` gave for `url`."""
    home = folder / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C",
        "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",  # empty: git neither runs a helper nor prompts; it fails at once
        "SSH_ASKPASS": "",
        "SSH_ASKPASS_REQUIRE": "never",
        "GIT_ALLOW_PROTOCOL": "http:https:ssh",
    }
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        for variant in (name, name.lower()):
            if variant in os.environ:
                env[variant] = os.environ[variant]
    config = [
        ("credential.helper", ""),
        ("init.templateDir", ""),
        ("init.defaultBranch", "scratch"),
        ("transfer.fsckObjects", "true"),
        ("gc.auto", "0"),
    ]
    if transport(url) == "http":
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}/"
        if credentials.bearer_token:
            config.append(
                (f"http.{origin}.extraHeader", f"Authorization: Bearer {credentials.bearer_token}")
            )
        elif credentials.basic_header:
            config.append(
                (f"http.{origin}.extraHeader", f"Authorization: {credentials.basic_header}")
            )
    else:
        ssh = folder / "ssh"
        ssh.mkdir(mode=0o700)
        assert credentials.identity is not None
        assert credentials.known_hosts is not None
        # OpenSSH wants LF line ends and a final newline; Secrets made on Windows have CRLF.
        identity = credentials.identity.replace(b"\r\n", b"\n").rstrip(b"\n") + b"\n"
        _write_private(ssh / "identity", identity)
        _write_private(ssh / "known_hosts", credentials.known_hosts)
        env["GIT_SSH_VARIANT"] = "ssh"
        env["GIT_SSH_COMMAND"] = shlex.join([
            "ssh", "-F", "/dev/null", "-i", str(ssh / "identity"),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={ssh / 'known_hosts'}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
        ])  # fmt: skip
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def with_config(env: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """`env` (one `environment` built) with the configuration `pairs` added after its own."""
    count = int(env.get("GIT_CONFIG_COUNT", "0"))
    added = dict(env)
    for index, (key, value) in enumerate(pairs, start=count):
        added[f"GIT_CONFIG_KEY_{index}"] = key
        added[f"GIT_CONFIG_VALUE_{index}"] = value
    added["GIT_CONFIG_COUNT"] = str(count + len(pairs))
    return added


def _write_private(path: pathlib.Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
