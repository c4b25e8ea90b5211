"""Commit signing keys: read from a Secret (pure), and placed for git in a scratch folder.

| key          | meaning                                                                  |
| ------------ | ------------------------------------------------------------------------ |
| `identity`   | an SSH private key (OpenSSH or PEM): commits signed with `gpg.format=ssh` |
| `git.asc`    | an ASCII-armoured OpenPGP secret key (Flux's key name): signed by GnuPG  |
| `passphrase` | the key's passphrase, when it has one                                    |

Exactly one of `identity` and `git.asc`. `signing_key_from_secret` reads and checks them without
I/O (an SSH key is decrypted and checked here, so a wrong passphrase is a clear error before any
git runs); `SigningKey` never shows key material in its `repr`.

`prepare` places a key in a private scratch folder for the writes of one batch and gives the git
configuration that signs every commit git makes there (`commit.gpgSign`; the catalog's `Git` also
passes `--gpg-sign` to each command that makes a commit, as `commit-tree` ignores the setting):
- SSH: the decrypted key in a 0600 file, `gpg.format=ssh`, `user.signingKey=<file>`; git runs
  `ssh-keygen -Y sign`.
- OpenPGP: a private `GNUPGHOME` with the key imported, `user.signingKey=<fingerprint>`, and a
  `gpg.program` wrapper with a loopback pinentry (the passphrase, if any, from a 0600 file); a
  probe signature finds a locked key before any commit. `Signer.close` stops the `gpg-agent`
  GnuPG started there.
The scratch folder is removed after the batch, key included: no key outlives a push.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import os
import pathlib
import shlex
from collections.abc import Mapping
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from controller import errors

Format = Literal["ssh", "openpgp"]

KEYS: dict[Format, str] = {"ssh": "identity", "openpgp": "git.asc"}
PASSPHRASE = "passphrase"  # noqa: S105 (the Secret key's name)
_ARMOUR = b"-----BEGIN PGP PRIVATE KEY BLOCK-----"
_GPG_TIMEOUT = 30.0
_FIELD = "spec.catalog.signing.secretRef"


class SigningKeyInvalid(errors.StalledError):
    """The signing Secret cannot sign: a key missing, malformed or locked. Names the key, never
    a value."""

    def __init__(self, field: str, secret: str, problem: str) -> None:
        super().__init__("SigningKeyInvalid", f"{field}: Secret {secret!r} {problem}")


class SigningFailed(errors.TransientError):
    """GnuPG could not take the key in (a passing failure: retried)."""

    def __init__(self, message: str) -> None:
        super().__init__("CommitSigningFailed", message)


@dataclasses.dataclass(frozen=True, repr=False)
class SigningKey:
    """A key that signs the catalog's commits. `key` is ready to use: an SSH key decrypted (in
    OpenSSH form), an OpenPGP key as given (GnuPG takes the passphrase when it signs)."""

    format: Format
    key: bytes
    passphrase: bytes | None
    fingerprint: str
    """`SHA256:<base64>` of an SSH public key (as `ssh-keygen -l` shows it); for OpenPGP, what
    GnuPG reports once imported (`prepare`), so "" here."""
    secret: str = ""

    def __repr__(self) -> str:
        return f"SigningKey({self.format}, secret={self.secret!r})"

    __str__ = __repr__


def signing_key_from_secret(data: Mapping[str, bytes], *, secret: str, field: str) -> SigningKey:
    """The signing key in a Secret's decoded `data`; `SigningKeyInvalid` naming the key when it
    is missing, ambiguous, malformed, or locked by a wrong or missing passphrase."""
    present = [fmt for fmt, key in KEYS.items() if data.get(key)]
    if len(present) != 1:
        problem = "holds both" if present else "has neither"
        raise SigningKeyInvalid(
            field, secret, f"{problem} of the keys 'identity' (SSH) and 'git.asc' (OpenPGP)"
        )
    fmt = present[0]
    raw = data[KEYS[fmt]].replace(b"\r\n", b"\n").strip() + b"\n"
    passphrase = data.get(PASSPHRASE) or None
    if passphrase is not None:
        passphrase = passphrase.rstrip(b"\r\n")  # `--from-file` adds a newline
    if fmt == "openpgp":
        if not raw.startswith(_ARMOUR):
            raise SigningKeyInvalid(
                field, secret, "key 'git.asc' is not an ASCII-armoured OpenPGP secret key"
            )
        return SigningKey("openpgp", raw, passphrase, "", secret)
    key, fingerprint = _ssh_key(raw, passphrase, field=field, secret=secret)
    return SigningKey("ssh", key, None, fingerprint, secret)


def _ssh_key(raw: bytes, passphrase: bytes | None, *, field: str, secret: str) -> tuple[bytes, str]:
    """The SSH key decrypted, in OpenSSH form, and its public fingerprint."""
    openssh_form = raw.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    load = (
        serialization.load_ssh_private_key if openssh_form else serialization.load_pem_private_key
    )
    problem = ""
    try:
        key = load(raw, password=passphrase)
    except TypeError:  # encrypted without a passphrase, or a passphrase for a plain key
        if passphrase is not None:  # a plain key: the passphrase is not needed
            return _ssh_key(raw, None, field=field, secret=secret)
        problem = "key 'identity' is passphrase-protected: add its 'passphrase'"
    except ValueError:
        problem = (
            "key 'passphrase' does not unlock key 'identity'"
            if passphrase is not None and (openssh_form or b"ENCRYPTED" in raw)
            else "key 'identity' is not an SSH private key (OpenSSH or PEM)"
        )
    except UnsupportedAlgorithm:
        problem = "key 'identity' uses an algorithm this operator cannot read"
    if problem:
        raise SigningKeyInvalid(field, secret, problem)
    if not isinstance(
        key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
    ):
        raise SigningKeyInvalid(field, secret, "key 'identity' is not an Ed25519, ECDSA or RSA key")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise SigningKeyInvalid(
            field, secret, f"key 'identity' is a {key.key_size}-bit RSA key (at least 2048)"
        )
    openssh = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    blob = public.split()[1]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    fingerprint = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    return openssh, fingerprint


# -- placing a key for git ---------------------------------------------------------------------


@dataclasses.dataclass
class Signer:
    """A key placed for git in a scratch folder: the configuration and environment that make
    git sign with it."""

    key: SigningKey
    config: list[tuple[str, str]]
    env: dict[str, str]
    fingerprint: str
    gnupg_home: pathlib.Path | None = None
    agent_env: dict[str, str] = dataclasses.field(default_factory=dict)
    """The whole environment GnuPG ran in (to stop its agent)."""
    agent_pid: int | None = None
    """The agent GnuPG started (it daemonizes: not the operator's child)."""

    async def close(self) -> None:
        """Stop the gpg-agent GnuPG started in the scratch folder (nothing for SSH)."""
        if self.gnupg_home is None:
            return
        # and its socket folder, when GnuPG put it under /run/user/<uid> (a desktop's layout)
        for command in (["--kill", "gpg-agent"], ["--remove-socketdir"]):
            with contextlib.suppress(OSError, SigningFailed):
                await _run(["gpgconf", *command], env=self.agent_env, stdin=None, what="gpgconf")
            if command[0] == "--kill" and self.agent_pid is not None:
                await _gone(self.agent_pid)  # `--kill` asks; the agent ends a moment later


async def prepare(folder: pathlib.Path, key: SigningKey, base_env: Mapping[str, str]) -> Signer:
    """Place `key` under `folder` (private scratch, removed by the caller) for git: the config
    pairs to add to git's `GIT_CONFIG_*` and the variables to add to its environment."""
    place = folder / "signing"
    place.mkdir(mode=0o700)
    config = [("commit.gpgSign", "true"), ("tag.gpgSign", "false")]
    if key.format == "ssh":
        path = place / "key"
        _write_private(path, key.key)
        config += [("gpg.format", "ssh"), ("user.signingKey", str(path))]
        config.append(("gpg.ssh.program", "ssh-keygen"))
        return Signer(key, config, {}, key.fingerprint)
    home = place / "gnupg"
    home.mkdir(mode=0o700)
    # The agent of this home lives for one write: a fixed S2K count spares it the calibration
    # (seconds at start-up) for a protection that ends with the write anyway.
    _write_private(home / "gpg-agent.conf", b"s2k-count 65536\nallow-loopback-pinentry\n")
    env = {**base_env, "GNUPGHOME": str(home)}
    signer = Signer(key, config, {"GNUPGHOME": str(home)}, "", home, env)
    try:
        await _run(
            ["gpg", "--batch", "--quiet", "--no-tty", "--import"],
            env=env,
            stdin=key.key,
            what="importing the OpenPGP key",
        )
        signer.agent_pid = await _agent_pid(env)  # the import started it
        listing = await _run(
            ["gpg", "--batch", "--no-tty", "--with-colons", "--list-secret-keys"],
            env=env,
            stdin=None,
            what="listing the OpenPGP key",
        )
    except BaseException:
        await signer.close()
        raise
    fingerprints = _secret_fingerprints(listing)
    if len(fingerprints) != 1:
        await signer.close()
        raise SigningKeyInvalid(
            _FIELD,
            key.secret,
            f"key 'git.asc' holds {len(fingerprints)} OpenPGP secret keys (exactly one)",
        )
    signer.fingerprint = fingerprints[0]
    arguments = ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback"]
    if key.passphrase is not None:
        secret = place / "passphrase"
        _write_private(secret, key.passphrase)
        arguments += ["--passphrase-file", str(secret)]
    program = place / "gpg"
    _write_private(program, f'#!/bin/sh\nexec {shlex.join(arguments)} "$@"\n'.encode(), mode=0o700)
    config += [
        ("gpg.format", "openpgp"),
        ("user.signingKey", fingerprints[0]),
        ("gpg.program", str(program)),
    ]
    try:  # a locked key fails here, with a clear message, not at the first commit
        await _run(
            [str(program), "--local-user", fingerprints[0], "--detach-sign", "--output", "-"],
            env=env,
            stdin=b"probe",
            what="signing with the OpenPGP key",
        )
    except SigningFailed:
        await signer.close()
        problem = (
            "key 'passphrase' does not unlock key 'git.asc'"
            if key.passphrase is not None
            else "key 'git.asc' is passphrase-protected: add its 'passphrase'"
        )
        raise SigningKeyInvalid(_FIELD, key.secret, problem) from None
    return signer


async def _agent_pid(env: Mapping[str, str]) -> int | None:
    """The pid of the gpg-agent serving `env`'s GNUPGHOME (None: none runs, or it cannot say)."""
    try:
        said = await _run(
            ["gpg-connect-agent", "--no-autostart", "getinfo pid", "/bye"],
            env=env,
            stdin=None,
            what="asking the gpg-agent its pid",
        )
    except (OSError, SigningFailed):
        return None
    for line in said.splitlines():
        if line.startswith("D ") and line[2:].strip().isdigit():
            return int(line[2:].strip())
    return None


async def _gone(pid: int, timeout: float = 5.0) -> None:
    """Wait until process `pid` has ended (a zombie counts as ended), at most `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            stat = await asyncio.to_thread(pathlib.Path(f"/proc/{pid}/stat").read_text)
        except OSError:
            return
        if stat.rpartition(")")[2].split()[:1] == ["Z"]:
            return
        await asyncio.sleep(0.02)


def _secret_fingerprints(listing: str) -> list[str]:
    """The primary keys' fingerprints in `gpg --with-colons --list-secret-keys` output."""
    found: list[str] = []
    primary = False
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            primary = True
        elif fields[0] == "fpr" and primary and len(fields) > 9:
            found.append(fields[9])
            primary = False
        elif fields[0] == "ssb":
            primary = False
    return found


async def _run(argv: list[str], *, env: Mapping[str, str], stdin: bytes | None, what: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), _GPG_TIMEOUT)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            await process.wait()
    if process.returncode != 0:
        # GnuPG's messages name key ids and files, never key material.
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise SigningFailed(f"{what} failed: {errors.redact(detail[0])}")
    return out.decode(errors="replace")


def _write_private(path: pathlib.Path, content: bytes, mode: int = 0o600) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
