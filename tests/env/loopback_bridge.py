"""Loopback for pods of their own network namespace on the real node: a CNI plugin and a bridge.

A pod that is not on the host's network gets a namespace with only `lo` (`tests.env.node`). Some
such pods still need services of the test environment, which listen on the host's 127.0.0.1 (the
API server, registries, git), and the kubelet needs to reach the pod's probes. Two replicas of the
operator are such pods: on the host's network their metrics and health ports would collide.

`ade-loopback-only`, the CNI plugin chained after `loopback`, runs `python -m
tests.env.loopback_bridge cni` (the CNI protocol: `CNI_COMMAND` and friends in the environment,
the network configuration on stdin, the result on stdout). On ADD it gives the pod an address of
its own in 127.0.0.0/8 (127.0.0.2 up; `lo` in every namespace holds the whole /8) and starts a
bridge process for the sandbox; on DEL it stops the bridge and frees the address. The bridge
reads the node's bridge file (JSON, written by `Node.bridge()` before such pods start):

- `"out"`: ports the pod reaches at 127.0.0.1 in its own namespace, carried to 127.0.0.1 in the
  host's (listening sockets made inside the pod's namespace with setns, connections made outside);
- `"in"`: ports the kubelet reaches at the pod's address in the host's namespace (its probes),
  carried to 127.0.0.1 inside the pod's namespace.

Every hop is on loopback: the machine's network rule holds (no veth, no bridge, no route).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

CLONE_NEWNET = 0x40000000
FIRST_ADDRESS, LAST_ADDRESS = 2, 254
CNI_VERSION = "1.0.0"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


# -- the bridge --------------------------------------------------------------------------------


class Bridge:
    """Carries TCP between the host's loopback and one pod's, both ways, as configured."""

    def __init__(self, netns: str, address: str, out: list[int], inbound: list[int]) -> None:
        self.host_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.pod_ns = os.open(netns, os.O_RDONLY)
        self.address = address
        self.out = out
        self.inbound = inbound

    def _in_namespace(self, ns: int, make: Callable[[], socket.socket]) -> socket.socket:
        """A socket created inside namespace `ns` (the process returns to the host's)."""
        _setns(ns)
        try:
            return make()
        finally:
            _setns(self.host_ns)

    async def serve(self) -> None:
        servers = []
        for port in self.out:
            listener = self._in_namespace(
                self.pod_ns, functools.partial(_listener, "127.0.0.1", port)
            )
            servers.append(await self._serve(listener, self.host_ns, port))
        for port in self.inbound:
            listener = _listener(self.address, port)
            servers.append(await self._serve(listener, self.pod_ns, port))
        await asyncio.gather(*(server.serve_forever() for server in servers))

    async def _serve(self, listener: socket.socket, target_ns: int, port: int) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream = self._in_namespace(target_ns, socket.socket)
            upstream.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(upstream, ("127.0.0.1", port))
            except OSError:
                upstream.close()
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(sock=upstream)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        return await asyncio.start_server(handle, sock=listener)


def _listener(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            await writer.drain()
        if reader.at_eof():
            writer.close()


def run_bridge(netns: str, address: str, config: pathlib.Path) -> None:
    wanted = json.loads(config.read_text()) if config.exists() else {}
    bridge = Bridge(netns, address, list(wanted.get("out", [])), list(wanted.get("in", [])))
    asyncio.run(bridge.serve())


# -- the CNI plugin ----------------------------------------------------------------------------


def _allocate(folder: pathlib.Path, container: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for last in range(FIRST_ADDRESS, LAST_ADDRESS + 1):
        claim = folder / f"127.0.0.{last}"
        try:
            claim.mkdir()  # atomic: one sandbox per address
        except FileExistsError:
            continue
        (claim / "container").write_text(container)
        return claim.name
    raise RuntimeError("no loopback address left for a pod")


def _claims_of(folder: pathlib.Path, container: str) -> list[pathlib.Path]:
    return [
        claim
        for claim in folder.glob("127.0.0.*")
        if (claim / "container").exists() and (claim / "container").read_text() == container
    ]


def cni(state: pathlib.Path) -> int:
    command = os.environ.get("CNI_COMMAND", "")
    container = os.environ.get("CNI_CONTAINERID", "")
    if command == "VERSION":
        print(json.dumps({"cniVersion": CNI_VERSION, "supportedVersions": ["0.4.0", "1.0.0"]}))
        return 0
    sys.stdin.read()
    claims = state / "addresses"
    if command == "ADD":
        address = _allocate(claims, container)
        log = (state / "bridges").joinpath(f"{container[:16]}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "tests.env.loopback_bridge", "bridge",
                    os.environ["CNI_NETNS"], address, str(state / "bridge.json"),
                ],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this plugin call
            )  # fmt: skip
        (claims / address / "pid").write_text(str(proc.pid))
        result = {
            "cniVersion": CNI_VERSION,
            "interfaces": [
                {"name": os.environ.get("CNI_IFNAME", "eth0"), "sandbox": os.environ["CNI_NETNS"]}
            ],
            "ips": [{"address": f"{address}/8", "interface": 0}],
        }
        print(json.dumps(result))
    elif command == "DEL":
        for claim in _claims_of(claims, container):
            pid = claim / "pid"
            if pid.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid.read_text()), signal.SIGKILL)
                pid.unlink()
            (claim / "container").unlink(missing_ok=True)
            claim.rmdir()
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["cni"]:
        return cni(pathlib.Path(argv[1]))
    if argv[:1] == ["bridge"]:
        run_bridge(argv[1], argv[2], pathlib.Path(argv[3]))
        return 0
    print("usage: loopback_bridge cni STATE | bridge NETNS ADDRESS CONFIG", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
