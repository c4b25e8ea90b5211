"""Git credentials from a Secret (Flux keys): parsing, per-transport checks, secrecy."""

from __future__ import annotations

import base64

import pytest

from controller import errors
from controller.git import credentials
from controller.git.credentials import Credentials, CredentialsInvalid

PASSWORD = "pa:ss@w0rd-7Q"
TOKEN = "ghp_0123456789abcdefTOKEN"
IDENTITY = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
    + base64.b64encode(b"openssh-key-v1\x00\x00\x00\x00\x04none" + b"k" * 60)
    + b"\n-----END OPENSSH PRIVATE KEY-----\n"
)
KNOWN_HOSTS = b"git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsab\n"


def test_basic_credentials() -> None:
    creds = credentials.credentials_from_secret(
        {"username": b"alice", "password": PASSWORD.encode(), "unrelated": b"x"}
    )
    assert creds.username == "alice"
    assert creds.password == PASSWORD
    assert creds.bearer_token is None
    expected = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert creds.basic_header == f"Basic {expected}"


def test_bearer_token_is_stripped_of_the_newline_a_file_leaves() -> None:
    creds = credentials.credentials_from_secret({"bearerToken": TOKEN.encode() + b"\n"})
    assert creds.bearer_token == TOKEN


def test_ssh_credentials() -> None:
    creds = credentials.credentials_from_secret(
        {"identity": IDENTITY, "known_hosts": KNOWN_HOSTS}, secret="git-ssh"
    )
    assert creds.identity == IDENTITY
    assert creds.known_hosts == KNOWN_HOSTS
    assert creds.for_transport("ssh") == Credentials(
        identity=IDENTITY, known_hosts=KNOWN_HOSTS, secret="git-ssh"
    )


def test_empty_values_count_as_absent() -> None:
    assert credentials.credentials_from_secret({"username": b"", "password": b""}) == Credentials()
    assert credentials.credentials_from_secret({}) == Credentials()


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"username": b"\xff\xfe"}, "username"),
        ({"password": b"\xc3"}, "password"),
        ({"username": b"al:ice"}, "username"),
        ({"username": b"al\nice"}, "username"),
        ({"bearerToken": b"two words"}, "bearerToken"),
        ({"bearerToken": b"tok\x00en"}, "bearerToken"),
    ],
)
def test_unusable_values_name_the_key_and_never_the_value(data: dict[str, bytes], key: str) -> None:
    with pytest.raises(CredentialsInvalid) as caught:
        credentials.credentials_from_secret(data, secret="git-creds")
    assert caught.value.key == key
    assert isinstance(caught.value, errors.StalledError)
    assert caught.value.reason == "SourceSecretInvalid"
    assert f"'{key}'" in caught.value.message
    assert "'git-creds'" in caught.value.message
    for value in data.values():
        assert value.decode(errors="replace") not in caught.value.message


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"known_hosts": KNOWN_HOSTS}, "identity"),
        ({"identity": IDENTITY}, "known_hosts"),
        ({"username": b"git", "password": b"x"}, "identity"),
    ],
)
def test_ssh_needs_identity_and_known_hosts(data: dict[str, bytes], key: str) -> None:
    creds = credentials.credentials_from_secret(data, secret="git-ssh")
    with pytest.raises(CredentialsInvalid, match=f"Secret 'git-ssh': key '{key}' is required"):
        creds.for_transport("ssh")


@pytest.mark.parametrize(
    "identity",
    [
        b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nx\n"
        b"-----END RSA PRIVATE KEY-----\n",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIx\n-----END ENCRYPTED PRIVATE KEY-----\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + base64.b64encode(b"openssh-key-v1\x00\x00\x00\x00\x0aaes256-ctr" + b"k" * 60)
        + b"\n-----END OPENSSH PRIVATE KEY-----\n",
    ],
)
def test_passphrase_protected_keys_are_refused_clearly(identity: bytes) -> None:
    creds = Credentials(identity=identity, known_hosts=KNOWN_HOSTS)
    with pytest.raises(CredentialsInvalid, match="passphrase-protected"):
        creds.for_transport("ssh")


def test_http_password_requires_username() -> None:
    creds = credentials.credentials_from_secret({"password": b"secret"})
    with pytest.raises(CredentialsInvalid, match="key 'username' is required with 'password'"):
        creds.for_transport("http")


def test_http_username_alone_is_allowed() -> None:
    creds = credentials.credentials_from_secret({"username": b"x-token-only"})
    assert (
        creds.for_transport("http").basic_header
        == "Basic " + base64.b64encode(b"x-token-only:").decode()
    )


def test_bearer_token_wins_over_basic_as_in_flux() -> None:
    creds = credentials.credentials_from_secret(
        {"username": b"alice", "password": b"pw", "bearerToken": TOKEN.encode()}
    )
    assert creds.for_transport("http") == Credentials(bearer_token=TOKEN)


def test_each_transport_keeps_only_its_own_fields() -> None:
    creds = Credentials(
        username="alice", password=PASSWORD, identity=IDENTITY, known_hosts=KNOWN_HOSTS
    )
    assert creds.for_transport("http") == Credentials(username="alice", password=PASSWORD)
    assert creds.for_transport("ssh").password is None


def test_repr_and_str_never_show_a_secret() -> None:
    creds = Credentials(
        username="alice",
        password=PASSWORD,
        bearer_token=TOKEN,
        identity=IDENTITY,
        known_hosts=KNOWN_HOSTS,
        secret="git-creds",
    )
    for shown in (repr(creds), str(creds), f"{creds}", repr([creds]), repr({"c": creds})):
        assert PASSWORD not in shown
        assert TOKEN not in shown
        assert "OPENSSH" not in shown
        assert "AAAAC3" not in shown
        assert "alice" in shown
        assert "git-creds" in shown
    assert repr(creds) == (
        "Credentials(username='alice', password=***, bearer_token=***, identity=***,"
        " known_hosts=***, secret='git-creds')"
    )
    assert repr(Credentials()) == "Credentials()"


def test_secrets_cover_the_values_and_the_basic_header() -> None:
    creds = Credentials(username="alice", password=PASSWORD, bearer_token=TOKEN, identity=IDENTITY)
    found = creds.secrets()
    assert PASSWORD in found
    assert TOKEN in found
    assert base64.b64encode(f"alice:{PASSWORD}".encode()).decode() in found
    assert any(line in found for line in IDENTITY.decode().splitlines()[1:-1])
    assert list(found) == sorted(found, key=len, reverse=True)
    assert Credentials(username="alice").secrets() == ()


def test_scrub_redacts_urls_and_literal_secrets() -> None:
    creds = Credentials(username="alice", password=PASSWORD, bearer_token=TOKEN)
    header = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    text = (
        f"fatal: https://bob:hunter2@h.example/r.git said {PASSWORD} and {TOKEN};"
        f" Authorization: Basic {header}"
    )
    scrubbed = credentials.scrub(text, creds)
    for secret in (PASSWORD, TOKEN, header, "hunter2"):
        assert secret not in scrubbed
    assert "https://***@h.example/r.git" in scrubbed
    assert credentials.scrub("plain", None) == "plain"
