"""Disk and memory of the catalog clone cache: `CatalogWriter` and `CloneCache` on a real catalog.

The catalog is a bare repository on the test git server (git http-backend, Basic auth): 200
environment definitions of four files each (manifest, Bicep template, parameters, README) and 60
commits of history, packed by `git gc` as a hosting service keeps it. The writer then makes 100
writes, one after another, each pointing one definition at a new runner image.

Printed: the repository's size on the server; the size of the cache's clone after the first write
(a shallow clone plus its checkout); what each later write adds (the pack of its depth-1 fetch,
with index, and the loose objects of its own commit) up to the 99th, and the size after the
100th, whose use of the clone starts with the periodic `git gc` (every `gc_every` = 100 uses, the
operator's setting); and the growth of this process's resident memory (VmRSS) across the 100
writes (the git server runs in this process too, so its share is counted in). Sizes are on disk
(allocated blocks, what `du` shows) with the apparent size (what the cache's byte budget counts).

The assertions are bounds, not figures: the clone never takes three times what it took after the
first write, and the gc brings it back to within 10% of that, so a cache that keeps what each
fetch brings, or a gc that no longer runs or no longer prunes, fails.
"""

from __future__ import annotations

import gc
import os
import pathlib
import random
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from controller.catalog import manifests
from controller.catalog.repository import CatalogWriter, Change, CloneCache, Edit
from controller.git.credentials import Credentials
from tests.e2e.catalogs import MANIFEST
from tests.env import gitserver

pytestmark = [pytest.mark.e2e, pytest.mark.benchmark]

USER, PASSWORD = "bench", "b3nch-Pa55word"
DEFINITIONS = 200
HISTORY = 60
WRITES = 100
MAX_GROWTH = 3.0
MAX_RSS_GROWTH = 64 << 20
KINDS = (
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Web/sites",
    "Microsoft.KeyVault/vaults",
    "Microsoft.Insights/components",
)


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[gitserver.GitServer]:
    with gitserver.running(tmp_path / "git", {USER: PASSWORD}) as running:
        yield running


def _bicep(index: int, rng: random.Random) -> str:
    """A Bicep template of a few resources, different in every definition (~3 KB)."""
    blocks = [
        "@description('Where the resources go')\nparam location string = resourceGroup().location\n"
        f"param prefix string = 'env{index:03d}'\n"
    ]
    for number in range(rng.randint(4, 7)):
        kind = rng.choice(KINDS)
        blocks.append(
            f"resource r{number} '{kind}@2023-0{rng.randint(1, 9)}-01' = {{\n"
            f"  name: '${{prefix}}-{rng.getrandbits(40):010x}'\n"
            "  location: location\n"
            f"  tags: {{\n    owner: 'team-{rng.randint(1, 40)}'\n"
            f"    costCenter: '{rng.randint(1000, 9999)}'\n  }}\n"
            "  properties: {\n"
            + "".join(
                f"    setting{k}: '{rng.getrandbits(64):016x}'\n" for k in range(rng.randint(3, 8))
            )
            + "  }\n}\n"
        )
    blocks.append(f"output id string = r0.id\noutput name string = '${{prefix}}-{index}'\n")
    return "\n".join(blocks)


def _definition(index: int, rng: random.Random) -> dict[str, str]:
    folder = f"Environments/env-{index:03d}"
    return {
        f"{folder}/environment.yaml": MANIFEST.format(name=f"env-{index:03d}"),
        f"{folder}/main.bicep": _bicep(index, rng),
        f"{folder}/azuredeploy.parameters.json": (
            '{\n  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/'
            'deploymentParameters.json#",\n  "contentVersion": "1.0.0.0",\n'
            f'  "parameters": {{ "prefix": {{ "value": "env{index:03d}" }},'
            f' "sku": {{ "value": "{rng.choice(["S1", "P1v3", "B1"])}" }} }}\n}}\n'
        ),
        f"{folder}/README.md": (
            f"# env-{index:03d}\n\nDeploys the resources of environment {index} "
            f"({rng.getrandbits(128):032x}).\n\n" + "Parameters: location, prefix, sku.\n" * 8
        ),
    }


def _git(cwd: pathlib.Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=gitserver.git_env(cwd.parent),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _catalog(server: gitserver.GitServer, work: pathlib.Path) -> str:
    """The realistic catalog on the server (built in a local work tree, pushed, packed)."""
    name = "catalog"
    server.create_repo(name, {"README.md": "catalog\n"})
    _git(work.parent, "clone", "--quiet", str(server.path(name)), str(work))
    rng = random.Random(7)  # noqa: S311 - made-up content, the same every run
    files: dict[str, str] = {}
    for index in range(DEFINITIONS):
        files.update(_definition(index, rng))
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    _git(work, "add", "--all")
    _git(work, "commit", "--quiet", "-m", "Add the environment definitions")
    for number in range(HISTORY):  # the history: templates reworked a few at a time
        for index in rng.sample(range(DEFINITIONS), 5):
            (work / f"Environments/env-{index:03d}/main.bicep").write_text(_bicep(index, rng))
        _git(work, "commit", "--quiet", "--all", "-m", f"Rework templates ({number})")
    _git(work, "push", "--quiet", "origin", "HEAD:main")
    _git(server.folder, "--git-dir", str(server.path(name)), "gc", "--quiet")
    return name


def _sizes(folder: pathlib.Path) -> tuple[int, int]:
    """(on-disk bytes, apparent bytes) of everything under `folder`."""
    blocks = apparent = 0
    for root, _, names in os.walk(folder):
        for name in names:
            stat = os.lstat(os.path.join(root, name))
            blocks += stat.st_blocks * 512
            apparent += stat.st_size
    return blocks, apparent


def _rss() -> int:
    """This process's resident set (VmRSS), in bytes."""
    status = pathlib.Path("/proc/self/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


def _set_runner(path: str, image: str) -> Edit:
    """What the operator's write-back step does to one manifest (with the real YAML engine)."""

    def apply(worktree: pathlib.Path) -> list[str]:
        target = worktree / path
        edit = manifests.set_field(
            manifests.decode(target.read_bytes(), path=path), field="runner", value=image, path=path
        )
        if not edit.changed:
            return []
        target.write_bytes(manifests.encode(edit.text))
        return [path]

    return apply


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.2f} MiB"


async def test_clone_cache_disk_and_memory_over_a_hundred_writes(
    server: gitserver.GitServer, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _catalog(server, tmp_path / "author")
    server_disk, server_apparent = _sizes(server.path(repo))
    history = len(server.log(repo))
    cache = CloneCache(tmp_path / "cache")  # the operator's settings: gc every 100 uses
    assert cache.gc_every == WRITES
    writer = CatalogWriter(cache=cache, window=0.0)
    clone = cache.path(url=server.url(repo), branch="main")
    credentials = Credentials(username=USER, password=PASSWORD, secret="catalog")

    async def write(number: int) -> None:
        path = f"Environments/env-{number % DEFINITIONS:03d}/environment.yaml"
        result = await writer.submit(
            Change(
                url=server.url(repo),
                branch="main",
                apply=_set_runner(path, f"contoso.azurecr.io/ade/runner:build-{number}"),
                message=f"Use runner image build-{number}",
                author_name="ade-runner-operator",
                author_email="ade-runner-operator@example.test",
                credentials=credentials,
            )
        )
        assert result.changed

    sizes: dict[int, tuple[int, int]] = {}  # after write n: 0 is the first (the clone)
    started = time.perf_counter()
    try:
        await write(0)
        first_seconds = time.perf_counter() - started
        sizes[0] = _sizes(clone)
        gc.collect()
        rss_before = _rss()
        started = time.perf_counter()
        for number in range(1, WRITES + 1):
            await write(number)
            sizes[number] = _sizes(clone)
        writes_seconds = time.perf_counter() - started
        gc.collect()
        rss_after = _rss()
    finally:
        await writer.aclose()
    assert len(server.log(repo)) == history + 1 + WRITES

    (first, first_apparent), (final, final_apparent) = sizes[0], sizes[WRITES]
    before_gc = WRITES - 1  # the 100th use of the clone starts with its first `git gc`
    peak_at = max(range(1, WRITES + 1), key=lambda n: sizes[n][0])
    peak = sizes[peak_at][0]
    per_write = (sizes[before_gc][0] - first) / before_gc
    per_write_apparent = (sizes[before_gc][1] - first_apparent) / before_gc
    with capsys.disabled():
        print(
            f"\n[benchmark] catalog clone cache, {DEFINITIONS} definitions x 4 files,"
            f" {history} commits before the writes; on disk (apparent):"
            f"\n  the repository on the server (bare, packed): {_mib(server_disk)}"
            f" ({_mib(server_apparent)})"
            f"\n  the clone after the first write: {_mib(first)} ({_mib(first_apparent)}),"
            f" cloned and written in {first_seconds * 1000:.0f} ms"
            f"\n  then each write adds {per_write / 1024:.1f} KiB ({per_write_apparent / 1024:.1f}"
            f" KiB): after write {before_gc} {_mib(sizes[before_gc][0])}"
            f" = {sizes[before_gc][0] / first:.2f}x the first (peak {_mib(peak)} after write"
            f" {peak_at})"
            f"\n  after {WRITES} writes (the {WRITES}th use runs `git gc`, every"
            f" {cache.gc_every} uses): {_mib(final)} ({_mib(final_apparent)})"
            f" = {final / first:.2f}x the first"
            f"\n  {WRITES} writes in {writes_seconds:.1f} s"
            f" ({writes_seconds / WRITES * 1000:.0f} ms each);"
            f" VmRSS {_mib(rss_before)} -> {_mib(rss_after)}"
            f" ({(rss_after - rss_before) / 1024:+.0f} KiB)"
        )
    assert peak < MAX_GROWTH * first
    assert final < 1.1 * first  # the periodic gc brings the clone back to its first size
    assert rss_after - rss_before < MAX_RSS_GROWTH
