"""`controller.git.signing`: signing keys read from a Secret, checked before any git runs.

Keys are made by the real `ssh-keygen`; the fingerprint must be the one it prints. Every problem
names the Secret key at fault and never shows key material or the passphrase.
"""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from controller import errors
from controller.git import environment, signing

FIELD = "spec.catalog.signing.secretRef"


def _keygen(folder: pathlib.Path, *args: str, passphrase: str = "") -> pathlib.Path:
    path = folder / f"key-{len(list(folder.iterdir()))}"
    subprocess.run(
        ["ssh-keygen", "-q", "-N", passphrase, "-f", str(path), *args],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def _read(data: dict[str, bytes]) -> signing.SigningKey:
    return signing.signing_key_from_secret(data, secret="signing", field=FIELD)


def _problem(data: dict[str, bytes]) -> str:
    with pytest.raises(signing.SigningKeyInvalid) as raised:
        _read(data)
    assert isinstance(raised.value, errors.StalledError)
    assert raised.value.reason == "SigningKeyInvalid"
    message = str(raised.value)
    assert message.startswith(f"{FIELD}: Secret 'signing' ")
    for value in data.values():
        for line in value.splitlines():
            if len(line) >= 16 and b"-----" not in line:
                assert line.decode(errors="replace") not in message
    return message


def test_an_ssh_key_reads_with_the_fingerprint_ssh_keygen_shows(tmp_path: pathlib.Path) -> None:
    path = _keygen(tmp_path, "-t", "ed25519")
    key = _read({"identity": path.read_bytes().replace(b"\n", b"\r\n")})  # made on Windows
    shown = subprocess.run(
        ["ssh-keygen", "-lf", str(path)], check=True, capture_output=True, text=True
    ).stdout
    assert key.format == "ssh"
    assert key.fingerprint == shown.split()[1]
    assert key.key.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert "PRIVATE" not in repr(key)
    assert repr(key) == "SigningKey(ssh, secret='signing')"


def test_a_passphrase_protected_key_is_decrypted_or_named(tmp_path: pathlib.Path) -> None:
    path = _keygen(tmp_path, "-t", "ed25519", passphrase="Right-Passphrase")
    raw = path.read_bytes()
    key = _read({"identity": raw, "passphrase": b"Right-Passphrase\n"})  # --from-file newline
    assert b"ENCRYPTED" not in key.key
    assert key.key != raw
    assert key.passphrase is None  # decrypted: nothing more to hold
    assert "add its 'passphrase'" in _problem({"identity": raw})
    message = _problem({"identity": raw, "passphrase": b"Wrong-Passphrase"})
    assert "'passphrase' does not unlock key 'identity'" in message
    assert "Wrong-Passphrase" not in message


def test_pem_rsa_keys_read_and_short_ones_are_refused(tmp_path: pathlib.Path) -> None:
    path = _keygen(tmp_path, "-t", "rsa", "-b", "2048", "-m", "PEM")
    assert _read({"identity": path.read_bytes()}).format == "ssh"
    locked = _keygen(tmp_path, "-t", "rsa", "-b", "2048", "-m", "PEM", passphrase="pem-Pass")
    assert _read({"identity": locked.read_bytes(), "passphrase": b"pem-Pass"}).fingerprint
    assert "does not unlock" in _problem({"identity": locked.read_bytes(), "passphrase": b"no"})
    short = _keygen(tmp_path, "-t", "rsa", "-b", "1024")
    assert "1024-bit RSA key (at least 2048)" in _problem({"identity": short.read_bytes()})


def test_a_passphrase_for_a_plain_key_is_not_needed(tmp_path: pathlib.Path) -> None:
    path = _keygen(tmp_path, "-t", "ed25519")
    assert _read({"identity": path.read_bytes(), "passphrase": b"unused"}).format == "ssh"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "has neither of the keys 'identity' (SSH) and 'git.asc' (OpenPGP)"),
        ({"identity": b"", "git.asc": b""}, "has neither"),
        ({"identity": b"x", "git.asc": b"y"}, "holds both of the keys"),
        ({"identity": b"ssh-ed25519 AAAA... a public key"}, "is not an SSH private key"),
        ({"git.asc": b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"}, "not an ASCII-armoured"),
    ],
)
def test_what_cannot_sign_is_named(data: dict[str, bytes], problem: str) -> None:
    assert problem in _problem(data)


def test_an_openpgp_key_is_kept_as_given_with_its_passphrase() -> None:
    armour = b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQdGBGexample0123456789\n-----END"
    key = _read({"git.asc": armour, "passphrase": b"pgp-pass\n"})
    assert (key.format, key.passphrase) == ("openpgp", b"pgp-pass")
    assert "pgp-pass" not in repr(key)


def test_configuration_is_added_after_git_s_own() -> None:
    env = environment.with_config(
        {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "a", "GIT_CONFIG_VALUE_0": "1"},
        [("commit.gpgSign", "true"), ("gpg.format", "ssh")],
    )
    assert env["GIT_CONFIG_COUNT"] == "4"
    assert (env["GIT_CONFIG_KEY_2"], env["GIT_CONFIG_VALUE_2"]) == ("commit.gpgSign", "true")
    assert (env["GIT_CONFIG_KEY_3"], env["GIT_CONFIG_VALUE_3"]) == ("gpg.format", "ssh")
    assert env["GIT_CONFIG_KEY_0"] == "a"


async def test_an_ssh_key_is_placed_private_for_git(tmp_path: pathlib.Path) -> None:
    key = _read({"identity": _keygen(tmp_path, "-t", "ed25519").read_bytes()})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    signer = await signing.prepare(scratch, key, {"PATH": "/usr/bin:/bin"})
    config = dict(signer.config)
    placed = pathlib.Path(config["user.signingKey"])
    assert (config["gpg.format"], config["commit.gpgSign"]) == ("ssh", "true")
    assert placed.read_bytes() == key.key
    assert placed.stat().st_mode & 0o777 == 0o600
    assert placed.parent.stat().st_mode & 0o777 == 0o700
    await signer.close()
