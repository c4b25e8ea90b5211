"""The OCI distribution v2 client the reconcile steps use: resolve digests, read manifests, blobs.

Why httpx and not oras: the operator only needs a handful of read calls (HEAD/GET manifest, GET
blob, the token flow), and it needs control that oras-py does not give — async I/O inside kopf's
event loop, typed errors per failure, Retry-After-aware retries, token caching per scope, an
anonymous mode to prove anonymous pull, and injectable transports for protocol tests.

Authentication follows the registry's challenge. A 401 carries `WWW-Authenticate`: for `Basic`
the configured credentials are sent; for `Bearer` a token is fetched from the realm (HTTP Basic
with the credentials, or `grant_type=refresh_token` with an identity token, or anonymously when
there are none) and cached per (realm, service, scope, credentials) until it expires. The
challenge is remembered per host so later requests carry a token from the start. Both live in a
`tokens.TokenStore`: the client's own, or one that the clients of a process share (`shared`).
With `kept` (a `contents.Contents`), what a caller asks to keep (`keep=True`: a manifest read by
digest, a blob) is read from the registry once per set of credentials.
`anonymous=True` never sends any credential (used to prove that anonymous pull works).

Time-outs: `timeout` bounds each read (httpx) and each whole answer — its headers, and the body
of everything but a blob (a token, a manifest) — so a server that sends a byte at a time cannot
hold a reconcile; a blob's reading is bounded by the reconcile's own deadline.

Retries: connection errors, time-outs, 408, 429 and 5xx (but 501, 505) are retried up to
`max_attempts` times, waiting `controller.backoff.delay` (from `backoff` to `max_backoff`, equal
jitter, never below `Retry-After`); a `Retry-After` longer than `max_retry_after` is not slept
in-process: `RegistryUnavailable.retry_after` carries it to the caller to requeue. Each attempt
is counted by `observe.metrics.report_registry_request`.

The errors (and `as_reconcile_error`, what each means to a reconcile step) are in `errors`, the
manifest data model and parsing in `manifests`; this module re-exports their public names, so
callers need only `client`.

No message or `repr` carries a credential or a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import json
import logging
import random
import ssl
import time
import urllib.parse
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, overload

import httpx

from controller import backoff
from controller.observe import activity, metrics
from controller.registry import auth, contents, reference, tokens
from controller.registry.contents import Contents
from controller.registry.errors import (
    BlobNotFound,
    DigestMismatch,
    ManifestNotFound,
    PlatformNotFound,
    RegistryAuthError,
    RegistryError,
    RegistryProtocolError,
    RegistryUnavailable,
    as_reconcile_error,
)
from controller.registry.manifests import (
    ACCEPT,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    digest_of,
    parse_manifest,
    select_platform,
)
from controller.registry.retry import is_retryable, parse_retry_after
from controller.registry.tokens import TokenStore

__all__ = [
    "ACCEPT",
    "DEFAULT_MAX_BLOB_SIZE",
    "DEFAULT_TOKEN_LIFETIME",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "DOCKER_SCHEMA1",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MAX_MANIFEST_SIZE",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "USER_AGENT",
    "Action",
    "BlobNotFound",
    "Contents",
    "CredentialSource",
    "DeletionRefused",
    "Descriptor",
    "DigestMismatch",
    "Index",
    "Manifest",
    "ManifestNotFound",
    "Platform",
    "PlatformNotFound",
    "RefLike",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "RegistryProtocolError",
    "RegistryUnavailable",
    "TokenStore",
    "as_reconcile_error",
    "as_reference",
    "credentials_from_docker_config",
    "digest_of",
    "is_plain_http_host",
    "is_retryable",
    "parse_manifest",
    "parse_retry_after",
    "select_platform",
]

logger = logging.getLogger(__name__)

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
DEFAULT_MAX_BLOB_SIZE = 256 * 1024 * 1024
DEFAULT_TOKEN_LIFETIME = 60.0
USER_AGENT = "ade-runner-operator"

CredentialSource = Mapping[str, auth.Credentials] | Callable[[str], auth.Credentials | None]
RefLike = reference.Reference | str
"""A parsed reference, or text parsed with `reference.parse` (raising `InvalidReference`)."""
Action = Literal["pull", "push", "delete"]
TAGS_PAGE = 1000
MAX_TAG_PAGES = 1000


# -- pure helpers ------------------------------------------------------------------------------


def credentials_from_docker_config(
    payload: Mapping[str, Any] | bytes | str | None,
) -> auth.CredentialStore | None:
    """The credentials of a `.dockerconfigjson` payload (None stays None: anonymous)."""
    return None if payload is None else auth.parse_docker_config(payload)


def as_reference(ref: RefLike) -> reference.Reference:
    return reference.parse(ref) if isinstance(ref, str) else ref


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def is_plain_http_host(host: str, insecure_hosts: frozenset[str]) -> bool:
    """Loopback hosts and the configured insecure hosts are spoken to over plain HTTP."""
    host = host.lower()
    if host in insecure_hosts:
        return True
    name = urllib.parse.urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _registry_error(response: httpx.Response) -> str:
    """`HTTP 401, CODE: message` from a distribution error body (bounded), else the status."""
    detail = f"HTTP {response.status_code}"
    try:
        document = json.loads(response.content)
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return detail
    errors = document.get("errors") if isinstance(document, Mapping) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        code, message = errors[0].get("code", ""), errors[0].get("message", "")
        detail += f", {str(code)[:60]}: {str(message)[:200]}"
    return detail


# -- the client --------------------------------------------------------------------------------


class DeletionRefused(RegistryProtocolError):
    """The registry does not let these credentials delete this manifest (deletion turned off, no
    delete permission, a lock): reported, not retried until the next pass."""


def _next_page(link: str) -> str | None:
    """The `rel="next"` URL of a `Link` header (RFC 8288), as distribution and ACR page tags."""
    for part in link.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if 'rel="next"' in params.replace(" ", "") and target.startswith("<"):
            return target.strip("<>")
    return None


@dataclasses.dataclass(frozen=True)
class _Target:
    registry: str
    endpoint: str
    repository: str
    action: Action

    @property
    def scope(self) -> str:
        # A push reads too (does the blob exist?), so it asks for both, as docker does.
        actions = "pull,push" if self.action == "push" else self.action
        return f"repository:{self.repository}:{actions}"


@functools.cache
def default_tls() -> ssl.SSLContext:
    """httpx's default verification (certifi's bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR`), built
    once: loading the bundle costs 30-80 ms, which every client (several a reconcile: resolve,
    verify) would pay again."""
    return httpx.create_ssl_context()


class RegistryClient:
    """Async OCI distribution client; use as `async with RegistryClient(...) as client`."""

    def __init__(
        self,
        *,
        credentials: CredentialSource | None = None,
        anonymous: bool = False,
        insecure_hosts: Iterable[str] = (),
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        shared: tokens.TokenStore | None = None,
        kept: contents.Contents | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._credentials = None if anonymous else credentials
        self.anonymous = anonymous
        self._insecure = frozenset(auth.normalize_host(h) for h in insecure_hosts)
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            verify=default_tls() if verify is True else verify,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._tokens = tokens.TokenStore() if shared is None else shared
        """Challenges and tokens: this client's own, or those of every client sharing them."""
        self._kept = kept
        """Content read by digest that callers asked to keep (None: nothing is kept)."""

    def __repr__(self) -> str:
        return (
            f"RegistryClient(anonymous={self.anonymous}, insecure_hosts={sorted(self._insecure)})"
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- public operations -------------------------------------------------------------------

    async def resolve(self, *, ref: RefLike) -> Descriptor:
        """The digest, media type and size `ref` points at (HEAD; GET if no digest header)."""
        ref = as_reference(ref)
        target = self._target(ref)
        response = await self._request(
            target=target,
            method="HEAD",
            url=self._url(target, f"manifests/{ref.identifier}"),
            kind="manifest",
            headers={"Accept": ACCEPT},
        )
        if response.status_code == 404:
            raise self._manifest_missing(target, ref, response)
        digest = response.headers.get("Docker-Content-Digest")
        if response.status_code == 200 and digest and reference.is_digest(digest):
            if ref.digest is not None and digest != ref.digest:
                raise DigestMismatch(
                    f"{ref} resolved to {digest} on {target.registry}",
                    registry=target.registry,
                    repository=target.repository,
                )
            length = response.headers.get("Content-Length", "")
            return Descriptor(
                digest,
                _media_type(response.headers.get("Content-Type")),
                int(length) if length.isdigit() else 0,
            )
        if response.status_code not in (200, 405):
            raise self._unexpected(target, response, f"HEAD manifest {ref.identifier}")
        manifest = await self.get_manifest(ref=ref)
        return manifest.descriptor

    async def list_tags(self, *, ref: RefLike) -> list[str]:
        """Every tag of `ref`'s repository, following the registry's pages (`Link`); [] for a
        repository the registry does not know."""
        ref = as_reference(ref)
        target = self._target(ref)
        url = self._url(target, f"tags/list?n={TAGS_PAGE}")
        tags: list[str] = []
        for _ in range(MAX_TAG_PAGES):
            response = await self._request(target=target, method="GET", url=url, kind="tags")
            body = await response.aread()
            if response.status_code == 404:
                return tags
            if response.status_code != 200:
                raise self._unexpected(target, response, "GET tags/list")
            try:
                found = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise self._unexpected(target, response, "GET tags/list (not JSON)") from None
            tags += [tag for tag in found if isinstance(tag, str)]
            following = _next_page(response.headers.get("Link", ""))
            if following is None:
                return tags
            url = urllib.parse.urljoin(url, following)
        raise self._unexpected(target, response, f"GET tags/list (over {MAX_TAG_PAGES} pages)")

    async def delete_manifest(self, *, ref: RefLike) -> bool:
        """Delete the manifest `ref` names by digest (its tags go with it); False if it was gone
        already. `DeletionRefused` when the registry does not allow it (405: deletion turned off;
        401/403: the credentials may not delete; ACR's locks)."""
        ref = as_reference(ref)
        if ref.digest is None:
            raise ValueError(f"{ref}: deletion is by digest")
        target = self._target(ref, "delete")
        try:
            response = await self._request(
                target=target,
                method="DELETE",
                url=self._url(target, f"manifests/{ref.digest}"),
                kind="manifest",
            )
        except RegistryAuthError as error:
            raise DeletionRefused(
                str(error), registry=target.registry, repository=target.repository, status=403
            ) from None
        await response.aread()
        if response.status_code in (200, 202, 204):
            return True
        if response.status_code == 404:
            return False
        if response.status_code in (405, 409, 423):
            raise DeletionRefused(
                f"{target.registry} does not allow deleting {target.repository}@{ref.digest}"
                f" ({_registry_error(response)})",
                registry=target.registry,
                repository=target.repository,
                status=response.status_code,
            )
        raise self._unexpected(target, response, f"DELETE manifest {ref.digest}")

    @overload
    async def get_manifest(
        self, *, ref: RefLike, platform: None = None, keep: bool = False
    ) -> Manifest | Index: ...

    @overload
    async def get_manifest(
        self, *, ref: RefLike, platform: Platform | str, keep: bool = False
    ) -> Manifest: ...

    async def get_manifest(
        self, *, ref: RefLike, platform: Platform | str | None = None, keep: bool = False
    ) -> Manifest | Index:
        """The manifest or index at `ref`; with `platform`, the image manifest for it (an index
        is followed to the matching entry; a plain manifest is returned as it is). `keep`: what
        is read by digest is kept for the next such read (see `contents`)."""
        ref = as_reference(ref)
        found = await self._fetch_manifest(ref=ref, keep=keep)
        if platform is None:
            return found
        wanted = Platform.parse(platform) if isinstance(platform, str) else platform
        for _ in range(2):  # an index may nest one more index
            if isinstance(found, Manifest):
                return found
            entry = select_platform(found, wanted)
            if entry is None:
                available = tuple(str(m.platform) for m in found.manifests if m.platform)
                raise PlatformNotFound(
                    f"{ref} on {ref.registry} has no manifest for {wanted}"
                    f" (it has {', '.join(available) or 'no platforms'})",
                    registry=ref.registry,
                    repository=ref.repository,
                    platform=str(wanted),
                    available=available,
                )
            found = await self._fetch_manifest(ref=ref.with_digest(entry.digest), keep=keep)
        if isinstance(found, Manifest):
            return found
        raise RegistryProtocolError(
            f"{ref} on {ref.registry}: indexes nested too deep",
            registry=ref.registry,
            repository=ref.repository,
        )

    async def get_blob(
        self,
        *,
        ref: RefLike,
        digest: str,
        max_size: int = DEFAULT_MAX_BLOB_SIZE,
        keep: bool = False,
    ) -> bytes:
        """A blob's bytes, verified against `digest`, refused past `max_size` bytes. `keep`:
        kept for the next read of the same blob (see `contents`)."""
        kept = self._kept if keep else None
        key = self._kept_key(as_reference(ref), digest)
        found = kept.get(key) if kept is not None else None
        if isinstance(found, bytes) and len(found) <= max_size:
            return found
        chunks: list[bytes] = []
        await self.copy_blob(ref=ref, digest=digest, sink=chunks.append, max_size=max_size)
        data = b"".join(chunks)
        if kept is not None:
            kept.put(key, data, size=len(data))
        return data

    async def copy_blob(
        self,
        *,
        ref: RefLike,
        digest: str,
        sink: Callable[[bytes], object],
        max_size: int = DEFAULT_MAX_BLOB_SIZE,
    ) -> int:
        """Stream a blob into `sink` chunk by chunk; returns its size. What the sink received is
        only trustworthy once this returns: a digest mismatch raises after the last chunk."""
        total = 0
        blob = self.stream_blob(ref=ref, digest=digest, max_size=max_size)
        async with contextlib.aclosing(blob) as chunks:
            async for chunk in chunks:
                total += len(chunk)
                sink(chunk)
        return total

    async def stream_blob(
        self,
        *,
        ref: RefLike,
        digest: str,
        max_size: int = DEFAULT_MAX_BLOB_SIZE,
    ) -> AsyncGenerator[bytes, None]:
        """A blob's bytes chunk by chunk as the caller pulls them (unlike `copy_blob`, a slow
        consumer slows the download). Verified against `digest` after the last chunk: only an
        iteration that ends without error is trustworthy. Use under `contextlib.aclosing`, so
        that stopping early closes the response."""
        reference.validate_digest(digest)
        algorithm = digest.split(":", 1)[0]
        target = self._target(as_reference(ref))
        response = await self._request(
            target=target,
            method="GET",
            url=self._url(target, f"blobs/{digest}"),
            kind="blob",
            stream=True,
        )
        try:
            if response.status_code == 404:
                await response.aread()
                raise BlobNotFound(
                    f"blob {digest} not found in {target.repository} on {target.registry}"
                    f" ({_registry_error(response)})",
                    registry=target.registry,
                    repository=target.repository,
                    digest=digest,
                )
            if response.status_code != 200:
                await response.aread()
                raise self._unexpected(target, response, f"GET blob {digest}")
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_size:
                raise self._too_large(target, f"blob {digest}", max_size)
            hasher = hashlib.new(algorithm)
            total = 0
            chunks = response.aiter_bytes()
            while True:
                try:
                    with activity.waiting_on(f"the registry {target.registry} (blob)"):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except (httpx.TransportError, httpx.StreamError) as error:
                    raise RegistryUnavailable(
                        f"reading blob {digest} from {target.registry} failed:"
                        f" {type(error).__name__}",
                        registry=target.registry,
                        repository=target.repository,
                        status=None,
                        attempts=1,
                    ) from None
                total += len(chunk)
                if total > max_size:
                    raise self._too_large(target, f"blob {digest}", max_size)
                hasher.update(chunk)
                yield chunk
        finally:
            await response.aclose()
        got = f"{algorithm}:{hasher.hexdigest()}"
        if got != digest:
            raise DigestMismatch(
                f"blob {digest} from {target.repository} on {target.registry} has digest {got}",
                registry=target.registry,
                repository=target.repository,
            )

    async def call(
        self,
        *,
        ref: RefLike,
        action: Action,
        method: str,
        path: str,
        kind: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One authenticated, retried request to `/v2/<repository>/<path>` (or to an absolute
        `path`, such as an upload's Location) with its body read; for the protocol modules
        beside this one (`uploads`, `referrers`). Raises like every operation here."""
        ref = as_reference(ref)
        target = self._target(ref, action)
        url = path if path.startswith(("http://", "https://")) else self._url(target, path)
        response = await self._request(
            target=target, method=method, url=url, kind=kind, headers=headers, content=content
        )
        await response.aread()
        return response

    def unexpected(self, *, ref: RefLike, response: httpx.Response, what: str) -> Exception:
        """The error for an answer the protocol does not allow (for the protocol modules)."""
        ref = as_reference(ref)
        return self._unexpected(self._target(ref), response, what)

    def absolute(self, *, ref: RefLike, location: str) -> str:
        """An upload's `Location` (often relative to the registry) as an absolute URL."""
        target = self._target(as_reference(ref))
        return urllib.parse.urljoin(self._url(target, ""), location)

    # -- manifests ---------------------------------------------------------------------------

    def _kept_key(self, ref: reference.Reference, digest: str) -> contents.Key:
        """Where content read by `digest` from `ref`'s repository is kept for this client's
        credentials."""
        registry = auth.normalize_host(ref.registry)
        who = tokens.fingerprint(self._credentials_for(ref.registry))
        return (registry, ref.repository, digest, who)

    async def _fetch_manifest(
        self, *, ref: reference.Reference, keep: bool = False
    ) -> Manifest | Index:
        kept = self._kept if keep else None
        if kept is None or ref.digest is None:  # a tag may move: read it every time
            return await self._read_manifest(ref=ref)
        key = self._kept_key(ref, ref.digest)
        found = kept.get(key)
        if isinstance(found, Manifest | Index):
            return found
        fetched = await self._read_manifest(ref=ref)
        kept.put(key, fetched, size=fetched.descriptor.size)
        return fetched

    async def _read_manifest(self, *, ref: reference.Reference) -> Manifest | Index:
        target = self._target(ref)
        response = await self._request(
            target=target,
            method="GET",
            url=self._url(target, f"manifests/{ref.identifier}"),
            kind="manifest",
            headers={"Accept": ACCEPT},
            stream=True,
        )
        try:
            if response.status_code == 404:
                await response.aread()
                raise self._manifest_missing(target, ref, response)
            if response.status_code != 200:
                await response.aread()
                raise self._unexpected(target, response, f"GET manifest {ref.identifier}")
            raw = await self._read_capped(target, response, MAX_MANIFEST_SIZE, "manifest")
        finally:
            await response.aclose()
        header = response.headers.get("Docker-Content-Digest")
        expected = ref.digest or (header if header and reference.is_digest(header) else None)
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        computed = digest_of(raw, algorithm)
        if expected is not None and computed != expected:
            raise DigestMismatch(
                f"manifest {ref.identifier} of {target.repository} on {target.registry}"
                f" has digest {computed}, expected {expected}",
                registry=target.registry,
                repository=target.repository,
            )
        descriptor = Descriptor(
            computed, _media_type(response.headers.get("Content-Type")), len(raw)
        )
        try:
            return parse_manifest(raw, ref=ref, descriptor=descriptor)
        except ValueError as error:
            raise RegistryProtocolError(
                f"manifest {ref.identifier} of {target.repository} on {target.registry}: {error}",
                registry=target.registry,
                repository=target.repository,
            ) from None

    async def _read_capped(
        self, target: _Target, response: httpx.Response, cap: int, what: str
    ) -> bytes:
        chunks: list[bytes] = []
        total = 0
        try:
            async with asyncio.timeout(self._timeout):
                with activity.waiting_on(f"the registry {target.registry} ({what})"):
                    async for chunk in response.aiter_bytes():
                        total += len(chunk)
                        if total > cap:
                            raise self._too_large(target, what, cap)
                        chunks.append(chunk)
        except TimeoutError:
            raise RegistryUnavailable(
                f"reading a {what} from {target.registry} took longer than {self._timeout:g}s",
                registry=target.registry,
                repository=target.repository,
                status=None,
                attempts=1,
            ) from None
        except (httpx.TransportError, httpx.StreamError) as error:
            raise RegistryUnavailable(
                f"reading a {what} from {target.registry} failed: {type(error).__name__}",
                registry=target.registry,
                repository=target.repository,
                status=None,
                attempts=1,
            ) from None
        return b"".join(chunks)

    # -- requests: auth and retries ----------------------------------------------------------

    def _target(self, ref: reference.Reference, action: Action = "pull") -> _Target:
        return _Target(ref.registry, ref.endpoint, ref.repository, action)

    def _scheme(self, host: str) -> str:
        return "http" if is_plain_http_host(host, self._insecure) else "https"

    def _url(self, target: _Target, path: str) -> str:
        return f"{self._scheme(target.endpoint)}://{target.endpoint}/v2/{target.repository}/{path}"

    def _credentials_for(self, registry: str) -> auth.Credentials | None:
        source = self._credentials
        if source is None:
            return None
        if isinstance(source, Mapping):
            found = source.get(registry) or source.get(registry.lower())
            return found if isinstance(found, auth.Credentials) else None
        return source(registry)

    async def _request(
        self,
        *,
        target: _Target,
        method: str,
        url: str,
        kind: str,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send with authentication; a 401 is answered once by (re)authenticating. Returns any
        other response (open when `stream`); raises for auth failure and exhausted retries."""
        authenticated = False
        while True:
            sent = dict(headers or {})
            authorization = await self._authorization(target)
            if authorization is not None:
                sent["Authorization"] = authorization
            response = await self._send(
                target=target,
                method=method,
                url=url,
                kind=kind,
                headers=sent,
                stream=stream,
                content=content,
            )
            if response.status_code not in (401, 403):
                return response
            await response.aread()
            await response.aclose()
            challenges = auth.parse_challenges(response.headers.get("WWW-Authenticate", ""))
            if response.status_code == 401 and not authenticated and challenges:
                self._forget(target, authorization)
                self._tokens.challenges[target.endpoint] = _pick(challenges)
                authenticated = True
                continue
            raise self._auth_error(target, response, "the registry refused")

    async def _authorization(self, target: _Target) -> str | None:
        challenge = self._tokens.challenges.get(target.endpoint)
        if challenge is None:
            return None
        credentials = self._credentials_for(target.registry)
        if challenge.scheme == "basic":
            if credentials is None or credentials.identity_token:
                return None
            return credentials.basic
        if challenge.scheme == "bearer":
            token = await self._token(target, challenge, credentials)
            return f"Bearer {token}"
        return None

    def _forget(self, target: _Target, authorization: str | None) -> None:
        """Drop the cached token that was just refused, so the next try fetches a new one."""
        if authorization is None or not authorization.startswith("Bearer "):
            return
        self._tokens.forget(authorization.removeprefix("Bearer "))

    async def _token(
        self,
        target: _Target,
        challenge: auth.Challenge,
        credentials: auth.Credentials | None,
    ) -> str:
        realm = challenge.realm
        if not realm:
            raise RegistryProtocolError(
                f"{target.registry} asked for a bearer token without a realm",
                registry=target.registry,
                repository=target.repository,
            )
        service = challenge.service or ""
        key = (realm, service, target.scope, tokens.fingerprint(credentials))
        async with self._tokens.lock(key):
            cached = self._tokens.get(key, now=self._clock())
            if cached is not None:
                return cached.value
            token = await self._fetch_token(target, realm, service, credentials)
            self._tokens.put(key, token, now=self._clock())
            return token.value

    async def _fetch_token(
        self,
        target: _Target,
        realm: str,
        service: str,
        credentials: auth.Credentials | None,
    ) -> tokens.Token:
        split = urllib.parse.urlsplit(realm)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise RegistryProtocolError(
                f"{target.registry} names a token realm that is not an HTTP(S) URL",
                registry=target.registry,
                repository=target.repository,
            )
        if (
            credentials is not None
            and split.scheme == "http"
            and not is_plain_http_host(split.netloc, self._insecure)
        ):
            raise RegistryProtocolError(
                f"{target.registry} asks for credentials over plain HTTP ({split.netloc});"
                " refusing to send them",
                registry=target.registry,
                repository=target.repository,
            )
        params = {"service": service, "scope": target.scope} if service else {"scope": target.scope}
        started = self._clock()
        if credentials is not None and credentials.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credentials.identity_token,
                "client_id": USER_AGENT,
                **params,
            }
            response = await self._send(
                target=target,
                method="POST",
                url=realm,
                kind="token",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                content=urllib.parse.urlencode(form).encode(),
            )
        else:
            headers = {"Authorization": credentials.basic} if credentials is not None else {}
            response = await self._send(
                target=target,
                method="GET",
                url=f"{realm}{'&' if split.query else '?'}{urllib.parse.urlencode(params)}",
                kind="token",
                headers=headers,
            )
        if response.status_code in (401, 403):
            raise self._auth_error(target, response, "the token service refused")
        if response.status_code != 200:
            raise self._unexpected(target, response, "token request")
        try:
            body = response.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value:
            raise RegistryProtocolError(
                f"the token service of {target.registry} answered without a token",
                registry=target.registry,
                repository=target.repository,
            )
        # Renew a little early: the registry checks expiry against its own clock.
        return tokens.Token(value, started + max(1.0, lifetime * 0.9))

    async def _send(
        self,
        *,
        target: _Target,
        method: str,
        url: str,
        kind: str,
        headers: Mapping[str, str],
        stream: bool = False,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One logical request with retries on connection errors, 408, 429 and 5xx."""
        last_status: int | None = None
        last_error = ""
        retry_after: float | None = None
        for attempt in range(1, self._max_attempts + 1):
            request = self._http.build_request(method, url, headers=headers, content=content)
            try:
                # The whole answer (its headers; the body too unless streamed) within `timeout`:
                # httpx's own timeout is per read, which a body sent a byte at a time never trips.
                async with asyncio.timeout(self._timeout):
                    with activity.waiting_on(f"the registry {target.registry} ({kind})"):
                        response = await self._http.send(
                            request, stream=stream, follow_redirects=kind == "blob"
                        )
            except TimeoutError:
                last_status, last_error = None, f"no whole answer within {self._timeout:g}s"
                retry_after = None
                metrics.report_registry_request(operation=kind, status=None, failed=True)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                last_status, last_error = None, type(e).__name__
                retry_after = None
                metrics.report_registry_request(operation=kind, status=None, failed=True)
            else:
                status = response.status_code
                if not is_retryable(status):
                    metrics.report_registry_request(operation=kind, status=status, failed=False)
                    return response
                await response.aread()
                await response.aclose()
                last_status, last_error = status, _registry_error(response)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                metrics.report_registry_request(operation=kind, status=status, failed=True)
                if retry_after is not None and retry_after > self._max_retry_after:
                    raise RegistryUnavailable(
                        f"{target.registry} asks to retry {kind} requests for"
                        f" {target.repository} after {retry_after:.0f}s ({last_error})",
                        registry=target.registry,
                        repository=target.repository,
                        status=status,
                        attempts=attempt,
                        retry_after=retry_after,
                    )
            if attempt == self._max_attempts:
                break
            delay = backoff.delay(
                attempt,
                base=self._backoff,
                cap=self._max_backoff,
                jitter=True,
                at_least=retry_after,
                rng=self._rng,
            )
            logger.debug(
                "%s %s on %s: %s; retrying in %.2fs",
                method,
                kind,
                target.registry,
                last_error,
                delay,
            )
            await self._sleep(delay)
        raise RegistryUnavailable(
            f"{kind} request for {target.repository} on {target.registry} failed after"
            f" {self._max_attempts} attempts ({last_error or 'no answer'})",
            registry=target.registry,
            repository=target.repository,
            status=last_status,
            attempts=self._max_attempts,
            retry_after=retry_after,
        )

    # -- errors ------------------------------------------------------------------------------

    def _auth_error(
        self, target: _Target, response: httpx.Response, what: str
    ) -> RegistryAuthError:
        anonymous = self._credentials_for(target.registry) is None
        who = "anonymous access" if anonymous else "the configured credentials"
        return RegistryAuthError(
            f"{what} to {target.action} {target.repository} on {target.registry}"
            f" with {who} ({_registry_error(response)})",
            registry=target.registry,
            repository=target.repository,
            action=target.action,
            status=response.status_code,
            anonymous=anonymous,
        )

    def _manifest_missing(
        self, target: _Target, ref: reference.Reference, response: httpx.Response
    ) -> ManifestNotFound:
        return ManifestNotFound(
            f"manifest {ref.identifier} not found in {target.repository} on {target.registry}"
            f" ({_registry_error(response)})",
            registry=target.registry,
            repository=target.repository,
            reference=ref.identifier,
        )

    def _unexpected(
        self, target: _Target, response: httpx.Response, what: str
    ) -> RegistryProtocolError:
        return RegistryProtocolError(
            f"{what} for {target.repository} on {target.registry}: unexpected"
            f" {_registry_error(response)}",
            registry=target.registry,
            repository=target.repository,
            status=response.status_code,
        )

    def _too_large(self, target: _Target, what: str, cap: int) -> RegistryProtocolError:
        return RegistryProtocolError(
            f"{what} of {target.repository} on {target.registry} is larger than {cap} bytes",
            registry=target.registry,
            repository=target.repository,
        )


def _pick(challenges: Sequence[auth.Challenge]) -> auth.Challenge:
    """Bearer over Basic over anything else, as Docker does."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return challenges[0]
