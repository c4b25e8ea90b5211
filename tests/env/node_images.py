"""The images the real node runs, built here and kept in a plain registry whose storage is cached.

Nothing can be pulled from Docker Hub, MCR or registry.k8s.io on these machines, so every image a
pod on the real node (`tests.env.node`) runs is built from Debian's packages, the Go module proxy
and this repository, with the real BuildKit:

- `ade-test/pause`: `build/pause/linux/pause.c` of `k8s.io/kubernetes` at `KUBERNETES_VERSION`,
  compiled with `gcc -static`;
- `ade-test/debian`: `debootstrap --variant=minbase bookworm` from Debian's archive, one layer;
- `ade-test/buildkit`: `dockerfiles/buildkit-rootless.Dockerfile` on that Debian: buildkitd,
  buildctl and `buildctl-daemonless.sh` of `BUILDKIT_VERSION`, rootlesskit of
  `ROOTLESSKIT_VERSION`;
- `ade-runner-operator`: the repository's own `Dockerfile`, with `BASE_IMAGE` and `BUILDKIT_IMAGE`
  pointed at the two above (the file users build, unchanged).

Each tag is a hash of the image's inputs, and the registry's storage lives in the cache
(`$ADE_IMAGES_CACHE`, else `~/.cache/ade-runner-operator/images`), so an image is built once per
change of its inputs; buildkitd's state is kept there too, so a rebuild of the operator image
after a code change reuses the dependency layers. `python -m tests.env.node_images` builds what is
missing with progress (`hack/test.sh` runs it before pytest, so no test pays for a cold build).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping

from tests.env import buildkitd, controlplane, images, registry

REPO = controlplane.REPO
DOCKERFILES = pathlib.Path(__file__).with_name("dockerfiles")
CACHE = pathlib.Path(
    os.environ.get("ADE_IMAGES_CACHE")
    or pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    / "ade-runner-operator"
    / "images"
)
HOST_CA_BUNDLE = pathlib.Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
FORMAT = "1"  # bump to rebuild every image (a change of how they are made, not of inputs)


def versions() -> dict[str, str]:
    """The pinned versions of `hack/tools.versions`."""
    pins: dict[str, str] = {}
    for line in (REPO / "hack" / "tools.versions").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def _log(message: str) -> None:
    print(f"[node-images {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _hash(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def go_module_dir(module: str) -> pathlib.Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", module],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
        cwd=tempfile.gettempdir(),
    )
    return pathlib.Path(json.loads(out.stdout)["Dir"])


_SLIM_PATHS = (
    "/usr/share/doc/*", "/usr/share/man/*", "/usr/share/groff/*", "/usr/share/info/*",
    "/usr/share/lintian/*", "/usr/share/linda/*", "/usr/share/locale/*",
)  # fmt: skip
_APT_CLEAN = (
    '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
    '/var/cache/apt/*.bin || true"'
)
SLIM_CONFIG = {
    # As Debian's official images (debuerreotype) set up apt: no package files kept after an
    # install (an image layer would carry every .deb twice), no translations...
    "etc/apt/apt.conf.d/docker-clean": (
        f"DPkg::Post-Invoke {{ {_APT_CLEAN}; }};\nAPT::Update::Post-Invoke {{ {_APT_CLEAN}; }};\n"
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    ),
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    # ... and as their `-slim` variants keep dpkg from installing documentation.
    "etc/dpkg/dpkg.cfg.d/docker": "".join(f"path-exclude {path}\n" for path in _SLIM_PATHS)
    + "path-include /usr/share/doc/*/copyright\n",
}


def slim(rootfs: pathlib.Path) -> None:
    """Make a debootstrapped `rootfs` like `debian:<suite>-slim`: apt and dpkg set up as the
    official image has them, package caches and lists emptied, documentation gone (copyright
    files kept)."""
    for name, text in SLIM_CONFIG.items():
        (rootfs / name).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / name).write_text(text)
    for cache in ("var/cache/apt", "var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / cache).glob("*"):
            if path.is_file():
                path.unlink()
    for pattern in _SLIM_PATHS:
        for path in rootfs.glob(pattern.lstrip("/")):
            if pattern == "/usr/share/doc/*" and path.is_dir():
                _remove_all(path.iterdir(), but="copyright")
            else:
                _remove_all([path])


def _remove_all(paths: Iterable[pathlib.Path], *, but: str = "") -> None:
    for path in paths:
        if path.name == but:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def operator_context_files() -> list[pathlib.Path]:
    """What the repository's Dockerfile reads (as `.dockerignore` lets through), sorted."""
    files = [
        REPO / "Dockerfile",
        REPO / ".dockerignore",
        REPO / "pyproject.toml",
        REPO / "README.md",
    ]
    files += [
        path
        for path in (REPO / "controller").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    return sorted(files)


@dataclasses.dataclass(frozen=True)
class NodeImages:
    """Full references (`127.0.0.1:PORT/...`) of the images, in the running image registry."""

    host: str
    pause: str
    debian: str
    buildkit: str
    operator: str


class ImageStore:
    """The plain (no auth) registry that serves the node's images, storage in the cache."""

    def __init__(self, cache: pathlib.Path = CACHE) -> None:
        self.cache = cache
        self.registry = registry.Registry(cache / "registry", None)

    def start(self) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        self.registry.start()

    def stop(self) -> None:
        self.registry.stop()

    def __enter__(self) -> ImageStore:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self.registry.host

    def has(self, repository: str, tag: str) -> bool:
        request = urllib.request.Request(
            f"{self.registry.url}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise

    def manifest(self, reference: str) -> dict[str, object]:
        """The image manifest of `reference` (in this registry)."""
        name, _, tag = reference.removeprefix(f"{self.host}/").rpartition(":")
        request = urllib.request.Request(
            f"{self.registry.url}/v2/{name}/manifests/{tag}",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json,"
                "application/vnd.docker.distribution.manifest.v2+json"
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            manifest: dict[str, object] = json.loads(response.read())
        return manifest

    def compressed_size(self, reference: str) -> int:
        """Bytes a node pulls for `reference`: its config and layers, compressed."""
        manifest = self.manifest(reference)
        layers = manifest.get("layers")
        config = manifest.get("config")
        assert isinstance(layers, list)
        assert isinstance(config, dict)
        return int(config["size"]) + sum(int(layer["size"]) for layer in layers)

    # -- building ----------------------------------------------------------------------------

    def ensure(self) -> NodeImages:
        """Every image, built now if the registry lacks its tag."""
        pins = versions()
        builder: buildkitd.BuildkitDaemon | None = None
        with contextlib.ExitStack() as stack:

            def daemon() -> buildkitd.BuildkitDaemon:
                nonlocal builder
                if builder is None:
                    _log("starting buildkitd (state kept in the cache)")
                    builder = buildkitd.BuildkitDaemon(
                        self.cache / "buildkitd", insecure_registries=[self.host]
                    )
                    builder.start()
                    stack.callback(builder.stop)
                return builder

            pause = self._pause(pins, daemon)
            debian = self._debian(daemon)
            buildkit = self._buildkit(pins, debian, daemon)
            operator = self._operator(debian, buildkit, daemon)
        return NodeImages(self.host, pause, debian, buildkit, operator)

    def _ensure_one(self, repository: str, tag: str, build: Callable[[str], None]) -> str:
        reference = f"{self.host}/{repository}:{tag}"
        if self.has(repository, tag):
            _log(f"{repository}:{tag}: cached")
            return reference
        start = time.monotonic()
        _log(f"{repository}:{tag}: building")
        build(reference)
        _log(f"{repository}:{tag}: built and pushed in {time.monotonic() - start:.0f} s")
        return reference

    def _pause(self, pins: Mapping[str, str], daemon: DaemonFactory) -> str:
        source = (
            go_module_dir(f"k8s.io/kubernetes@{pins['KUBERNETES_VERSION']}")
            / "build/pause/linux/pause.c"
        )
        dockerfile = 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'
        gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True)
        tag = _hash(FORMAT, source.read_bytes(), dockerfile, gcc.stdout.splitlines()[0])

        def build(reference: str) -> None:
            with tempfile.TemporaryDirectory(prefix="ade-pause-") as tmp:
                folder = pathlib.Path(tmp)
                subprocess.run(
                    ["gcc", "-Os", "-static", "-o", str(folder / "pause"), str(source)],
                    check=True,
                )
                subprocess.run(["strip", str(folder / "pause")], check=True)
                (folder / "Dockerfile").write_text(dockerfile)
                build_image(daemon(), folder, reference)

        return self._ensure_one("ade-test/pause", tag, build)

    def _debian(self, daemon: DaemonFactory) -> str:
        dockerfile = 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n'
        tag = f"{DEBIAN_SUITE}-" + _hash(
            FORMAT, DEBIAN_SUITE, DEBIAN_MIRROR, dockerfile, json.dumps(SLIM_CONFIG)
        )

        def build(reference: str) -> None:
            with tempfile.TemporaryDirectory(prefix="ade-debian-") as tmp:
                folder = pathlib.Path(tmp)
                rootfs = folder / "rootfs"
                _log(f"debootstrap --variant=minbase {DEBIAN_SUITE} (Debian's archive)")
                done = subprocess.run(
                    ["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"debootstrap failed:\n{done.stdout[-3000:]}")
                slim(rootfs)
                subprocess.run(
                    [
                        "tar", "--numeric-owner", "--xattrs", "--exclude=./dev/*",
                        "--exclude=./proc/*", "--exclude=./sys/*",
                        "-C", str(rootfs), "-cf", str(folder / "rootfs.tar"), ".",
                    ],
                    check=True,
                )  # fmt: skip
                shutil.rmtree(rootfs, ignore_errors=True)
                (folder / "Dockerfile").write_text(dockerfile)
                build_image(daemon(), folder, reference)

        return self._ensure_one("ade-test/debian", tag, build)

    def _buildkit(self, pins: Mapping[str, str], debian: str, daemon: DaemonFactory) -> str:
        dockerfile = (DOCKERFILES / "buildkit-rootless.Dockerfile").read_text()
        buildkit_version, rootlesskit_version = (
            pins["BUILDKIT_VERSION"],
            pins["ROOTLESSKIT_VERSION"],
        )
        tag = f"{buildkit_version}-rootless-" + _hash(
            FORMAT, dockerfile, debian.rpartition(":")[2], buildkit_version, rootlesskit_version
        )

        def build(reference: str) -> None:
            tools = controlplane.tools_bin()
            script = (
                go_module_dir(f"github.com/moby/buildkit@{buildkit_version}")
                / "examples/buildctl-daemonless/buildctl-daemonless.sh"
            )
            with tempfile.TemporaryDirectory(prefix="ade-buildkit-") as tmp:
                folder = pathlib.Path(tmp)
                for name in ("buildkitd", "buildctl", "rootlesskit"):
                    shutil.copy(tools / name, folder / name)
                shutil.copy(script, folder / "buildctl-daemonless.sh")
                (folder / "buildctl-daemonless.sh").chmod(0o755)
                (folder / "Dockerfile").write_text(dockerfile)
                build_image(daemon(), folder, reference, build_args={"BASE_IMAGE": debian})

        return self._ensure_one("ade-test/buildkit", tag, build)

    def _operator(self, debian: str, buildkit: str, daemon: DaemonFactory) -> str:
        parts: list[str | bytes] = [FORMAT, debian.rpartition(":")[2], buildkit.rpartition(":")[2]]
        for path in operator_context_files():
            parts += [str(path.relative_to(REPO)), path.read_bytes()]
        tag = _hash(*parts)

        def build(reference: str) -> None:
            build_image(
                daemon(),
                REPO,
                reference,
                build_args={"BASE_IMAGE": debian, "BUILDKIT_IMAGE": buildkit},
                # This machine reaches PyPI through a proxy whose CA only the host trusts: the
                # Dockerfile's documented build secret for that case.
                secrets={"ca-certificates": HOST_CA_BUNDLE} if HOST_CA_BUNDLE.exists() else {},
            )

        return self._ensure_one("ade-runner-operator", tag, build)


DaemonFactory = Callable[[], buildkitd.BuildkitDaemon]


def build_image(
    daemon: buildkitd.BuildkitDaemon,
    context: pathlib.Path,
    reference: str,
    *,
    build_args: Mapping[str, str] | None = None,
    secrets: Mapping[str, pathlib.Path] | None = None,
) -> None:
    """`buildctl build` of `context`'s Dockerfile, pushed to `reference` (plain HTTP)."""
    images.build_and_push(
        daemon,
        context,
        reference,
        build_args=build_args,
        secrets=secrets,
        reproducible=False,  # rewriting the timestamps of large layers costs time, buys nothing
        insecure=True,
        timeout=1200.0,
    )


Served = tuple["ImageStore", NodeImages]
"""The running image registry and the images in it (the `node_image_store` fixture)."""


@contextlib.contextmanager
def serving(cache: pathlib.Path = CACHE) -> Iterator[tuple[ImageStore, NodeImages]]:
    """The image registry running, every image in it (built if missing)."""
    store = ImageStore(cache)
    store.start()
    try:
        yield store, store.ensure()
    finally:
        store.stop()


def main() -> int:
    start = time.monotonic()
    with serving() as (store, built):
        for name in ("pause", "debian", "buildkit", "operator"):
            reference = getattr(built, name)
            size = store.compressed_size(reference) / 2**20
            _log(f"{name}: {reference.removeprefix(built.host + '/')} ({size:.1f} MiB compressed)")
    _log(f"all node images ready in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
