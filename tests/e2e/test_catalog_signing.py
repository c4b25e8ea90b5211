"""Signed catalog commits against a real git server whose pre-receive hook refuses the rest.

The repository is protected as a host protects a branch: its hook runs `git verify-commit` on
every commit a push brings and refuses unsigned ones and ones signed by a key it does not trust
(SSH keys from an allowed-signers file, OpenPGP keys from its GnuPG keyring). Every path by which
the catalog writer makes a commit is tried: a plain commit, a push branch rebuilt on a moved base
(`rebase`), and a commit replayed after a lost race (`commit-tree`). Keys are made by the real
tools (`tests.env.signing_keys`); no key material stays on disk and no gpg-agent outlives a write.
"""

from __future__ import annotations

import asyncio
import pathlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from controller import errors
from controller.catalog import repository
from controller.catalog.repository import CatalogWriter, Change, CloneCache, Edit, GitOperation
from controller.git import signing
from controller.git.credentials import Credentials
from tests.env import gitserver, signing_keys

pytestmark = pytest.mark.e2e

USER, PASSWORD = "signer", "s1gn-Pässword"
FIELD = "spec.catalog.signing.secretRef"
MANIFESTS = {f"envs/{name}/environment.yaml": name for name in ("web", "db")}


def _manifest(name: str, runner: str = "mcr.microsoft.com/ade/core:latest") -> str:
    return f"name: {name}\nrunner: {runner}\ntemplatePath: main.bicep\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path_factory.mktemp("signing-server"), {USER: PASSWORD}) as running:
        yield running


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, signing_keys.KeyPair]:
    folder = tmp_path_factory.mktemp("keys")
    return {
        "ssh": signing_keys.ssh_key(folder),
        "ssh-locked": signing_keys.ssh_key(folder, passphrase="ssh-Passphrase-1"),
        "ssh-stranger": signing_keys.ssh_key(folder, comment="stranger"),
        "openpgp": signing_keys.openpgp_key(folder, passphrase="pgp-Passphrase-2"),
    }


@pytest.fixture
def repo(server: gitserver.GitServer, keys: dict[str, signing_keys.KeyPair]) -> str:
    name = f"signed-{uuid.uuid4().hex[:8]}"
    server.create_repo(name, {path: _manifest(env) for path, env in MANIFESTS.items()})
    server.require_signed(
        name,
        ssh_keys={"ops": keys["ssh"].public.decode(), "ops2": keys["ssh-locked"].public.decode()},
        openpgp_key=keys["openpgp"].public,
    )
    return name


@pytest.fixture
async def writer(tmp_path: pathlib.Path) -> AsyncIterator[tuple[CatalogWriter, list[GitOperation]]]:
    events: list[GitOperation] = []
    writer = CatalogWriter(cache=CloneCache(tmp_path / "cache"), window=0.05, metrics=events.append)
    yield writer, events
    await writer.aclose()


def _key(pair: signing_keys.KeyPair, passphrase: str = "") -> signing.SigningKey:
    name = "git.asc" if pair.private.startswith(b"-----BEGIN PGP") else "identity"
    data = {name: pair.private}
    if passphrase:
        data["passphrase"] = passphrase.encode()
    return signing.signing_key_from_secret(data, secret="catalog-signing", field=FIELD)


def set_runner(path: str, runner: str) -> Edit:
    def apply(worktree: pathlib.Path) -> list[str]:
        target = worktree / path
        lines = target.read_text().splitlines(keepends=True)
        edited = [f"runner: {runner}\n" if x.startswith("runner:") else x for x in lines]
        if edited == lines:
            return []
        target.write_text("".join(edited))
        return [path]

    return apply


def _change(
    server: gitserver.GitServer,
    repo: str,
    edit: Edit,
    key: signing.SigningKey | None,
    *,
    push_branch: str = "",
    depends_on: Callable[[str], bool] | None = None,
) -> Change:
    return Change(
        url=server.url(repo),
        branch="main",
        push_branch=push_branch,
        apply=edit,
        message="Use a new runner",
        author_name="ADE Operator",
        author_email="ade-operator@example.test",
        credentials=Credentials(username=USER, password=PASSWORD),
        signing=key,
        depends_on=depends_on,
    )


def _scratch_folders() -> set[pathlib.Path]:
    """The catalog writers' scratch folders now (each write makes one, and removes it)."""
    return set(pathlib.Path(tempfile.gettempdir()).glob("ade-catalog-*"))


def _agents() -> set[str]:
    """The gpg-agents of catalog writes now running (any writer on this machine)."""
    return set(signing_keys.agents_with("ade-catalog-"))


def _no_key_material_under(folder: pathlib.Path, pair: signing_keys.KeyPair) -> None:
    lines = [line for line in pair.private.splitlines() if len(line) >= 16 and b"-----" not in line]
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(line in data for line in lines), f"key material in {path}"


async def test_an_ssh_signed_commit_is_accepted_and_verifies(
    server: gitserver.GitServer,
    repo: str,
    keys: dict[str, signing_keys.KeyPair],
    writer: tuple[CatalogWriter, list[GitOperation]],
    tmp_path: pathlib.Path,
) -> None:
    before = _scratch_folders()
    result = await writer[0].submit(
        _change(
            server, repo, set_runner("envs/web/environment.yaml", "r.test/web:1"), _key(keys["ssh"])
        )
    )
    assert result.commit == server.head(repo)
    assert server.signatures(repo, "-1")[0][:2] == ("G", "ops")
    _no_key_material_under(tmp_path, keys["ssh"])
    assert _scratch_folders() - before == set()  # the write's scratch folder, key included, is gone


async def test_a_passphrase_protected_ssh_key_signs(
    server: gitserver.GitServer,
    repo: str,
    keys: dict[str, signing_keys.KeyPair],
    writer: tuple[CatalogWriter, list[GitOperation]],
) -> None:
    key = _key(keys["ssh-locked"], "ssh-Passphrase-1")
    await writer[0].submit(
        _change(server, repo, set_runner("envs/db/environment.yaml", "r.test/db:1"), key)
    )
    assert server.signatures(repo, "-1")[0][:2] == ("G", "ops2")


async def test_an_openpgp_key_with_a_passphrase_signs_and_leaves_no_agent(
    server: gitserver.GitServer,
    repo: str,
    keys: dict[str, signing_keys.KeyPair],
    writer: tuple[CatalogWriter, list[GitOperation]],
    tmp_path: pathlib.Path,
) -> None:
    key = _key(keys["openpgp"], "pgp-Passphrase-2")
    agents = _agents()
    await writer[0].submit(
        _change(server, repo, set_runner("envs/web/environment.yaml", "r.test/web:2"), key)
    )
    assert server.signatures(repo, "-1")[0][:2] == ("G", "Catalog Bot <bot@example.test>")
    assert _agents() - agents == set()  # its agent has ended with the write
    _no_key_material_under(tmp_path, keys["openpgp"])


async def test_unsigned_and_unknown_keys_are_refused_by_the_server(
    server: gitserver.GitServer,
    repo: str,
    keys: dict[str, signing_keys.KeyPair],
    writer: tuple[CatalogWriter, list[GitOperation]],
) -> None:
    head = server.head(repo)
    for key in (None, _key(keys["ssh-stranger"])):
        edit = set_runner("envs/web/environment.yaml", f"r.test/web:{uuid.uuid4().hex[:6]}")
        with pytest.raises(repository.CatalogPushRefused, match="not signed by a trusted key"):
            await writer[0].submit(_change(server, repo, edit, key))
    assert server.head(repo) == head


async def test_a_rebuilt_push_branch_is_signed_throughout(
    server: gitserver.GitServer,
    repo: str,
    keys: dict[str, signing_keys.KeyPair],
    writer: tuple[CatalogWriter, list[GitOperation]],
) -> None:
    pushes, key = "ade/runner-updates", _key(keys["ssh"])
    edit = set_runner("envs/web/environment.yaml", "r.test/web:3")
    await writer[0].submit(_change(server, repo, edit, key, push_branch=pushes))
    server.commit(repo, {"README.md": "edited by a human\n"}, "Human edit")  # the base moves
    edit = set_runner("envs/db/environment.yaml", "r.test/db:3")
    await writer[0].submit(_change(server, repo, edit, key, push_branch=pushes))
    # both of the operator's commits were made again on the new base (rebase): both signed
    assert [line[:2] for line in server.signatures(repo, f"main..{pushes}")] == [("G", "ops")] * 2


async def test_a_commit_replayed_after_a_lost_race_is_signed(
    server: gitserver.GitServer,
    repo: str,
    keys: dict[str, signing_keys.KeyPair],
    writer: tuple[CatalogWriter, list[GitOperation]],
) -> None:
    runs: list[int] = []
    inner = set_runner("envs/web/environment.yaml", "r.test/web:4")

    def raced(worktree: pathlib.Path) -> list[str]:
        runs.append(1)
        if len(runs) == 1:  # another writer lands a commit before our push
            server.commit(repo, {"other.txt": "another writer\n"}, "Another writer")
        return inner(worktree)

    change = _change(server, repo, raced, _key(keys["ssh"]), depends_on=lambda _: False)
    await writer[0].submit(change)
    assert len(runs) == 1  # replayed with commit-tree, not edited again
    assert [e.outcome for e in writer[1] if e.operation == "push"] == ["rejected", "ok"]
    assert server.signatures(repo, "-2") == [
        ("G", "ops", "Use a new runner"),
        ("N", "", "Another writer"),
    ]


async def test_a_locked_openpgp_key_is_a_clear_error_that_shows_no_key(
    server: gitserver.GitServer,
    repo: str,
    keys: dict[str, signing_keys.KeyPair],
    writer: tuple[CatalogWriter, list[GitOperation]],
) -> None:
    head, agents = server.head(repo), _agents()
    for passphrase, problem in (
        ("", "is passphrase-protected: add its 'passphrase'"),
        ("wrong-passphrase", "'passphrase' does not unlock key 'git.asc'"),
    ):
        edit = set_runner("envs/web/environment.yaml", "r.test/web:5")
        with pytest.raises(signing.SigningKeyInvalid) as raised:
            await writer[0].submit(_change(server, repo, edit, _key(keys["openpgp"], passphrase)))
        assert isinstance(raised.value, errors.StalledError)
        assert problem in str(raised.value)
        assert "wrong-passphrase" not in str(raised.value)
    assert server.head(repo) == head
    assert _agents() - agents == set()
    await asyncio.sleep(0)
