"""Keys for tests: signing keys made by the real tools (`ssh-keygen`, GnuPG), and a GitHub App's
RSA key pair.

`ssh_key` gives an Ed25519 key pair (optionally passphrase-protected) as a Secret holds it and as
git's allowed-signers file names it; `openpgp_key` gives an armoured OpenPGP secret key (Ed25519,
sign-only, optionally with a passphrase) and its armoured public key, generated in a throw-away
GnuPG home whose agent is stopped afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclasses.dataclass(frozen=True)
class KeyPair:
    private: bytes
    """As a Secret holds it: an OpenSSH private key, or an armoured OpenPGP secret key."""
    public: bytes
    """An OpenSSH public key line, or an armoured OpenPGP public key."""


def _env(home: pathlib.Path | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    if home is not None:
        env["GNUPGHOME"] = str(home)
    return env


def ssh_key(folder: pathlib.Path, *, passphrase: str = "", comment: str = "ops") -> KeyPair:
    path = folder / f"ssh-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        env=_env(),
        timeout=30,
    )
    return KeyPair(path.read_bytes(), path.with_suffix(".pub").read_bytes())


def openpgp_key(
    folder: pathlib.Path, *, passphrase: str = "", uid: str = "Catalog Bot <bot@example.test>"
) -> KeyPair:
    home = folder / f"gnupg-{uuid.uuid4().hex[:8]}"
    home.mkdir(mode=0o700, parents=True)
    env = _env(home)
    batch = ["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback"]
    batch += ["--passphrase", passphrase]
    try:
        subprocess.run(
            [*batch, "--quick-gen-key", uid, "ed25519", "sign", "never"],
            check=True,
            capture_output=True,
            env=env,
            timeout=60,
        )
        private = subprocess.run(
            [*batch, "--armor", "--export-secret-keys"],
            check=True,
            capture_output=True,
            env=env,
            timeout=60,
        ).stdout
        public = subprocess.run(
            ["gpg", "--batch", "--armor", "--export"],
            check=True,
            capture_output=True,
            env=env,
            timeout=60,
        ).stdout
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"],
            check=False,
            env=env,
            capture_output=True,
            timeout=30,
        )
    return KeyPair(private, public)


def agents_with(text: str) -> list[str]:
    """The command lines (and environments) of running gpg-agents that mention `text`."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"gpg-agent"):
            continue
        shown = b" ".join(argv + environ).decode(errors="replace")
        if text in shown:
            found.append(shown)
    return found


def rsa_key() -> KeyPair:
    """An RSA key pair in PEM (a GitHub App's: the private key as GitHub hands it out)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private, public)
