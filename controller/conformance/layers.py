"""Read one image layer from the registry as a stream of tar members (I/O).

The blob streams from the registry (`RegistryClient.stream_blob`) through a `pipe.Pipe` into a
worker thread, where `tarfile` reads it in stream mode (`r|*`: gzip or an uncompressed tarball,
whatever the media type claims) and `filesystem.scan` keeps what matters. The worker threads are
the module's own (`_PARSERS`), never the event loop's default executor. Contents are read only
for the names asked for, up to `max_content` bytes each; the layer is never whole in memory or
on disk. The whole blob is always downloaded, because whiteouts may come anywhere in a tarball
and the digest is verified at its end (a digest mismatch raises the client's
`RegistryProtocolError`, which wins over whatever the parser made of the damaged bytes).

zstd layers (`+zstd`) are not read: no zstd decompressor is available to the operator, and
`compression` says so before anything is downloaded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import tarfile
import zlib
from collections.abc import Collection, Iterable, Iterator

from controller.conformance import filesystem, pipe
from controller.registry import client as registry_client

MAX_CONTENT = 1024 * 1024
"""How much of a wanted file is captured (a runner script is far smaller)."""

READABLE = frozenset({"gzip", "none"})

_PARSERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="layer-scan")
"""The threads that parse layers. Not the loop's default executor: a parser blocks until its
download feeds it, and a download may itself need a default-executor thread (a DNS lookup, a
Kubernetes call elsewhere in the operator); with parsers filling the default pool, everything
would wait on everything. Parsers past four wait their turn here, their downloads paused."""


def compression(media_type: str) -> str | None:
    """`gzip`, `zstd` or `none` for a layer tarball's media type; None for anything else."""
    media_type = media_type.split(";", 1)[0].strip().lower()
    if media_type.endswith(("tar+gzip", "tar.gzip")):
        return "gzip"
    if media_type.endswith(("tar+zstd", "tar.zstd")):
        return "zstd"
    if media_type.endswith(".tar"):
        return "none"
    return None


@dataclasses.dataclass(frozen=True)
class Read:
    """One layer read: its view, or the problem that made it unreadable; bytes downloaded."""

    view: filesystem.LayerView | None
    problem: str | None
    bytes_read: int


async def read_layer(
    *,
    client: registry_client.RegistryClient,
    ref: registry_client.RefLike,
    descriptor: registry_client.Descriptor,
    paths: Collection[str],
    targets: Collection[str] = (),
    max_content: int = MAX_CONTENT,
) -> Read:
    """Download and scan one layer for `paths` (capturing their contents and those of the hard
    link `targets`). Registry failures raise the client's errors."""
    loop = asyncio.get_running_loop()
    bridge = pipe.Pipe()
    parsing = loop.run_in_executor(_PARSERS, _parse, bridge, paths, targets, max_content)
    received = 0
    try:
        stream = client.stream_blob(ref=ref, digest=descriptor.digest, max_size=descriptor.size)
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                received += len(chunk)
                await bridge.put(chunk)
    except BaseException:
        bridge.abort()
        await asyncio.wait([parsing])
        if not parsing.cancelled():
            parsing.exception()  # retrieved and dropped: the download's error is what counts
        raise
    bridge.end()
    try:
        view = await parsing
    except (tarfile.TarError, zlib.error, EOFError) as error:
        return Read(None, str(error) or type(error).__name__, received)
    return Read(view, None, received)


def _parse(
    bridge: pipe.Pipe, paths: Collection[str], targets: Collection[str], max_content: int
) -> filesystem.LayerView:
    """In the worker thread: the layer's members, scanned as they stream by."""
    capture = {filesystem.normalize(name) for name in (*paths, *targets)}
    try:
        with tarfile.open(fileobj=bridge.reader(), mode="r|*") as tar:
            members = _members(tar, capture, max_content)
            return filesystem.scan(members, paths=paths, targets=targets)
    finally:
        bridge.close_reader()


def _members(
    tar: tarfile.TarFile, capture: Collection[str], max_content: int
) -> Iterator[filesystem.Member]:
    while (info := tar.next()) is not None:
        # tarfile remembers every member it reads (a base layer has many): forget them.
        tar.members.clear()  # type: ignore[attr-defined]  # not in typeshed, but a plain list
        content: bytes | None = None
        if info.isreg() and filesystem.normalize(info.name) in capture:
            handle = tar.extractfile(info)
            content = handle.read(max_content) if handle is not None else b""
        yield member_of(info, content, max_content=max_content)


def member_of(
    info: tarfile.TarInfo, content: bytes | None = None, *, max_content: int = MAX_CONTENT
) -> filesystem.Member:
    return filesystem.Member(
        name=info.name,
        kind=_kind(info),
        mode=info.mode,
        size=info.size,
        link=info.linkname,
        content=content,
        truncated=content is not None and info.size > max_content,
    )


def _kind(info: tarfile.TarInfo) -> filesystem.Kind:
    checks: Iterable[tuple[bool, filesystem.Kind]] = (
        (info.isreg(), filesystem.Kind.FILE),
        (info.isdir(), filesystem.Kind.DIRECTORY),
        (info.issym(), filesystem.Kind.SYMLINK),
        (info.islnk(), filesystem.Kind.HARDLINK),
        (info.ischr(), filesystem.Kind.CHARACTER_DEVICE),
        (info.isblk(), filesystem.Kind.BLOCK_DEVICE),
        (info.isfifo(), filesystem.Kind.FIFO),
    )
    return next((kind for matched, kind in checks if matched), filesystem.Kind.OTHER)
