"""Synthetic OCI/Docker images, built in memory and pushed to a registry over the HTTP API.

Independent of the product's registry client on purpose (it is the oracle the client is tested
against): its own small token flow, blob uploads (`POST` then `PUT ?digest=`, or in `PATCH`
chunks), manifest `PUT`. Layers are gzip tarballs made from `Entry` values (files, directories,
symlinks, OCI whiteouts `.wh.<name>` and opaque-directory markers), with a config that carries
`Entrypoint`, `Cmd`, `Env`, the platform and the layers' diff ids. Manifests in OCI or Docker
media types; image indexes (OCI index or Docker manifest list) over several platforms.

    pusher = oci.Pusher(registry.host, username="pusher", password="...")
    image = oci.Image(layers=[[oci.file("scripts/deploy.sh", b"#!/bin/sh\n", 0o755)]])
    pushed = pusher.push_image("ade/bicep", image, tag="v1")   # pushed.digest
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import posixpath
import re
import tarfile
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import httpx

MediaKind = Literal["oci", "docker"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- layers ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Entry:
    """One member of a layer tarball."""

    path: str
    kind: Literal["file", "dir", "symlink"] = "file"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""
    uid: int = 0
    gid: int = 0


def file(path: str, data: bytes | str, mode: int = 0o644) -> Entry:
    return Entry(path, "file", data.encode() if isinstance(data, str) else data, mode)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, "dir", mode=mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", mode=0o777, target=target)


def whiteout(path: str) -> Entry:
    """Deletes `path` from the layers below (an empty file `.wh.<name>` beside it)."""
    parent, name = posixpath.split(path.strip("/"))
    return Entry(posixpath.join(parent, WHITEOUT_PREFIX + name), "file", b"", 0o644)


def opaque(path: str) -> Entry:
    """Hides everything the layers below have in directory `path`."""
    return Entry(posixpath.join(path.strip("/"), OPAQUE_MARKER), "file", b"", 0o644)


@dataclasses.dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclasses.dataclass(frozen=True)
class Layer:
    blob: Blob
    diff_id: str
    """sha256 of the uncompressed tarball (what the config's rootfs lists)."""


def tarball(entries: Iterable[Entry]) -> bytes:
    """A deterministic (mtime 0, root-owned unless told) tar of the entries, in the given order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path.lstrip("/"))
            info.mode = entry.mode
            info.uid, info.gid = entry.uid, entry.gid
            info.mtime = 0
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def layer(entries: Iterable[Entry], *, media: MediaKind = "oci", compress: bool = True) -> Layer:
    raw = tarball(entries)
    if compress:
        data = gzip.compress(raw, mtime=0)
        media_type = OCI_LAYER_GZIP if media == "oci" else DOCKER_LAYER_GZIP
    else:
        if media == "docker":
            raise ValueError("Docker media types have no uncompressed layer type")
        data, media_type = raw, OCI_LAYER
    return Layer(Blob(media_type, data), sha256(raw))


# -- images ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def as_json(self) -> dict[str, str]:
        out = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclasses.dataclass(frozen=True)
class Image:
    """What to push: layers (each a list of entries, bottom first) and the config fields."""

    layers: Sequence[Sequence[Entry]] = ()
    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    working_dir: str | None = None
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    platform: Platform = Platform()
    media: MediaKind = "oci"
    compress: bool = True
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    created: str = "1970-01-01T00:00:00Z"


@dataclasses.dataclass(frozen=True)
class Built:
    """An image turned into blobs and a manifest, ready to push (or to compare with a pull)."""

    config: Blob
    layers: tuple[Layer, ...]
    manifest: Blob
    platform: Platform

    @property
    def digest(self) -> str:
        return self.manifest.digest


def build(image: Image) -> Built:
    layers = tuple(layer(e, media=image.media, compress=image.compress) for e in image.layers)
    settings: dict[str, Any] = {"Env": list(image.env)}
    if image.entrypoint is not None:
        settings["Entrypoint"] = list(image.entrypoint)
    if image.cmd is not None:
        settings["Cmd"] = list(image.cmd)
    if image.working_dir is not None:
        settings["WorkingDir"] = image.working_dir
    if image.labels:
        settings["Labels"] = dict(image.labels)
    config_json = {
        **image.platform.as_json(),
        "created": image.created,
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in layers]},
        "history": [{"created_by": "tests.env.oci"} for _ in layers],
    }
    config = Blob(OCI_CONFIG if image.media == "oci" else DOCKER_CONFIG, _canonical(config_json))
    manifest_type = OCI_MANIFEST if image.media == "oci" else DOCKER_MANIFEST
    manifest_json: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor(),
        "layers": [lay.blob.descriptor() for lay in layers],
    }
    if image.annotations:
        manifest_json["annotations"] = dict(image.annotations)
    return Built(config, layers, Blob(manifest_type, _canonical(manifest_json)), image.platform)


def index(images: Sequence[Built], *, media: MediaKind = "oci") -> Blob:
    """An OCI index / Docker manifest list over built images (each with its platform)."""
    media_type = OCI_INDEX if media == "oci" else DOCKER_LIST
    body = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            built.manifest.descriptor(platform=built.platform.as_json()) for built in images
        ],
    }
    return Blob(media_type, _canonical(body))


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# -- pushing -----------------------------------------------------------------------------------


class PushError(RuntimeError):
    pass


_PARAM = re.compile(r'(\w+)="([^"]*)"')


class Pusher:
    """Pushes blobs, manifests, images and indexes to `host` with the given credentials."""

    def __init__(
        self,
        host: str,
        *,
        username: str | None = None,
        password: str | None = None,
        scheme: str = "http",
        chunk_size: int | None = None,
    ) -> None:
        self.base = f"{scheme}://{host}"
        self._auth = (username, password or "") if username is not None else None
        self._chunk = chunk_size
        self._client = httpx.Client(timeout=30)
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(
        self,
        repo: str,
        method: str,
        url: str,
        *,
        actions: str = "pull,push",
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One request with the registry's token flow (a token for `actions` on `repo`)."""
        scope = f"repository:{repo}:{actions}"
        for _ in range(2):
            sent = dict(headers or {})
            if scope in self._tokens:
                sent["Authorization"] = f"Bearer {self._tokens[scope]}"
            response = self._client.request(method, url, headers=sent, content=content)
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.status_code != 401 or not challenge.lower().startswith("bearer"):
                return response
            params = dict(_PARAM.findall(challenge))
            got = self._client.get(
                params["realm"],
                params={"service": params.get("service", ""), "scope": scope},
                auth=self._auth,
            )
            if got.status_code != 200:
                raise PushError(f"token request for {scope} refused: {got.status_code}")
            body = got.json()
            self._tokens[scope] = str(body.get("token") or body["access_token"])
        raise PushError(f"{method} {url}: {response.status_code} {response.text[:300]}")

    def _url(self, location: str) -> str:
        return urllib.parse.urljoin(self.base + "/", location)

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """What the registry says `repo:reference` is (Docker-Content-Digest), or None."""
        accept = ", ".join(
            [
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ]
        )
        response = self._send(
            repo,
            "HEAD",
            f"{self.base}/v2/{repo}/manifests/{reference}",
            actions="pull",
            headers={"Accept": accept},
        )
        if response.status_code == 404:
            return None
        return str(response.headers["Docker-Content-Digest"])

    def tags(self, repo: str) -> list[str]:
        """The tags of `repo` (the registry's tag list; empty when the repository is unknown)."""
        response = self._send(repo, "GET", f"{self.base}/v2/{repo}/tags/list", actions="pull")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return sorted(response.json().get("tags") or [])

    def blob_exists(self, repo: str, digest: str) -> bool:
        response = self._send(repo, "HEAD", f"{self.base}/v2/{repo}/blobs/{digest}")
        return response.status_code == 200

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload a blob (skipped when present); returns its digest."""
        digest = sha256(data)
        if self.blob_exists(repo, digest):
            return digest
        started = self._send(repo, "POST", f"{self.base}/v2/{repo}/blobs/uploads/")
        if started.status_code != 202:
            raise PushError(f"upload start for {repo}: {started.status_code} {started.text}")
        location = self._url(started.headers["Location"])
        body = data
        if self._chunk:
            offset = 0
            while offset < len(data):
                piece = data[offset : offset + self._chunk]
                patched = self._send(
                    repo,
                    "PATCH",
                    location,
                    content=piece,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                    },
                )
                if patched.status_code != 202:
                    raise PushError(f"chunk upload to {repo}: {patched.status_code}")
                location = self._url(patched.headers["Location"])
                offset += len(piece)
            body = b""
        separator = "&" if "?" in location else "?"
        done = self._send(
            repo,
            "PUT",
            f"{location}{separator}digest={urllib.parse.quote(digest)}",
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise PushError(f"upload end for {repo}: {done.status_code} {done.text}")
        return digest

    def push_manifest(self, repo: str, reference: str, manifest: Blob) -> str:
        """PUT a manifest under a tag or its digest; returns the digest the registry reports."""
        response = self._send(
            repo,
            "PUT",
            f"{self.base}/v2/{repo}/manifests/{reference}",
            content=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        if response.status_code != 201:
            raise PushError(
                f"manifest PUT {repo}:{reference}: {response.status_code} {response.text}"
            )
        digest = str(response.headers.get("Docker-Content-Digest", manifest.digest))
        if digest != manifest.digest:
            raise PushError(f"registry reports {digest}, pushed {manifest.digest}")
        return digest

    def push_built(self, repo: str, built: Built, *, tag: str | None = None) -> Built:
        for lay in built.layers:
            self.push_blob(repo, lay.blob.data)
        self.push_blob(repo, built.config.data)
        self.push_manifest(repo, tag or built.digest, built.manifest)
        return built

    def push_image(self, repo: str, image: Image, *, tag: str | None = None) -> Built:
        """Build and push an image; `.digest` of the result is the manifest digest."""
        return self.push_built(repo, build(image), tag=tag)

    def push_index(
        self,
        repo: str,
        images: Sequence[Image],
        *,
        tag: str | None = None,
        media: MediaKind = "oci",
    ) -> tuple[str, list[Built]]:
        """Push each image by digest, then an index over them; returns (index digest, images)."""
        builts = [self.push_built(repo, build(image)) for image in images]
        blob = index(builts, media=media)
        return self.push_manifest(repo, tag or blob.digest, blob), builts

    def delete_manifest(self, repo: str, digest: str) -> None:
        response = self._send(
            repo, "DELETE", f"{self.base}/v2/{repo}/manifests/{digest}", actions="delete"
        )
        if response.status_code != 202:
            raise PushError(f"manifest DELETE {repo}@{digest}: {response.status_code}")
