"""A Docker registry token server on loopback that behaves as Azure Container Registry's does.

`GET /oauth2/token?service=S&scope=repository:REPO:pull,push` (several `scope` parameters
allowed) answers `{"access_token": JWT}` for a configured user presenting HTTP Basic
credentials, granting the intersection of what was asked and what the user may do. Without
credentials the request is anonymous and is granted `pull` only while `anonymous_pull` is on
(ACR's `anonymousPullEnabled`); otherwise it gets a token with no access, and the registry then
refuses the pull, as ACR does. A wrong password or an unknown user is a 401 with a JSON error
body. `POST /oauth2/token` takes the OAuth2 password grant (containerd, BuildKit), and with
`grant_type=refresh_token` exchanges a user's identity token
(the `identitytoken` of a docker config) the same way.

The JWTs are ES256 with an `x5c` header (the signing certificate, issued by a throw-away CA) and
a `kid` in libtrust format; distribution 2.8 accepts either alone (`key_mode` picks them for
tests), checking the certificate chain or the key id against `auth.token.rootcertbundle`, which
is `ca_bundle` here (the CA and the signing certificate).

`POST /_admin/anonymous-pull` with `{"enabled": bool}` and `Authorization: Bearer <admin_token>`
flips the switch from another process (the Azure emulator). Every token request is recorded in
`requests` (who, the scopes asked and granted, the status), never with a password.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
import http.server
import json
import pathlib
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.env import httpserver

KeyMode = Literal["x5c", "kid", "both"]
TOKEN_LIFETIME = 300


@dataclasses.dataclass(frozen=True)
class User:
    """A user of the registry: the password, an optional identity token, what it may do."""

    password: str = dataclasses.field(repr=False)
    actions: frozenset[str] = frozenset({"pull", "push"})
    identity_token: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class Access:
    """One granted (or asked) resource: `repository:ade/bicep:pull,push`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclasses.dataclass(frozen=True)
class TokenRequest:
    """One request to the token endpoint as recorded for tests (no password, no token)."""

    time: float
    """`time.monotonic()` when it arrived."""
    user: str | None
    """The user name, or None for an anonymous request."""
    grant: str
    """`basic`, `password` (OAuth2 POST), `anonymous` or `refresh_token`."""
    service: str
    asked: tuple[Access, ...]
    granted: tuple[Access, ...]
    status: int


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id distribution derives from a key: base32 of the SPKI SHA-256, in 4-char groups."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(der).digest()[:30]
    text = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, 48, 4))


def parse_scope(scope: str) -> Access | None:
    """`repository:a/b:pull,push` -> Access; the name may hold a port-like ':' (split right)."""
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return Access(kind, name, tuple(a for a in actions.split(",") if a))


class TokenServer:
    """The token server; `start()` binds 127.0.0.1 on a free port, `stop()` shuts it down."""

    def __init__(
        self,
        folder: pathlib.Path,
        *,
        users: Mapping[str, User] | None = None,
        service: str = "ade-test-registry",
        issuer: str = "ade-test-token-issuer",
        anonymous_pull: bool = False,
        key_mode: KeyMode = "both",
        lifetime: int = TOKEN_LIFETIME,
    ) -> None:
        self.folder = folder
        self.users: dict[str, User] = dict(users or {})
        self.service = service
        self.issuer = issuer
        self.key_mode: KeyMode = key_mode
        self.lifetime = lifetime
        self.admin_token = secrets.token_urlsafe(24)
        self.requests: list[TokenRequest] = []
        self._anonymous_pull = anonymous_pull
        self._lock = threading.Lock()
        self._http = httpserver.LoopbackServer("token-server")
        self._make_keys()

    # -- keys --------------------------------------------------------------------------------

    def _make_keys(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ade-test-token-ca")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self._key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.issuer)]))
            .issuer_name(ca_name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self._x5c = [
            base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
            for cert in (leaf, ca)
        ]
        self.key_id = libtrust_key_id(self._key.public_key())
        self.ca_bundle = self.folder / "token-ca-bundle.pem"
        self.ca_bundle.write_bytes(
            ca.public_bytes(serialization.Encoding.PEM)
            + leaf.public_bytes(serialization.Encoding.PEM)
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._http.start(type("Handler", (_Handler,), {"owner": self}))

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> TokenServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/oauth2/token"

    # -- the switch and the records ----------------------------------------------------------

    @property
    def anonymous_pull(self) -> bool:
        with self._lock:
            return self._anonymous_pull

    def set_anonymous_pull(self, enabled: bool) -> None:
        with self._lock:
            self._anonymous_pull = enabled

    def recorded(self) -> list[TokenRequest]:
        """A copy of the requests recorded so far."""
        with self._lock:
            return list(self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- tokens ------------------------------------------------------------------------------

    def _grant(self, actions: frozenset[str], asked: Iterable[Access]) -> tuple[Access, ...]:
        granted = []
        for access in asked:
            if access.type == "repository":
                allowed = tuple(a for a in access.actions if a in actions or "*" in actions)
            else:
                allowed = access.actions if "*" in actions else ()
            granted.append(Access(access.type, access.name, allowed))
        return tuple(granted)

    def issue(
        self,
        *,
        grant: str,
        user: str | None,
        password: str | None,
        refresh_token: str | None,
        service: str,
        scopes: list[str],
    ) -> tuple[int, dict[str, Any]]:
        """Decide on one token request; returns the status and the JSON body."""
        asked = tuple(a for a in (parse_scope(s) for s in scopes) if a is not None)
        actions: frozenset[str] | None
        known = self.users.get(user) if user is not None else None
        if grant == "anonymous":
            actions = frozenset({"pull"}) if self.anonymous_pull else frozenset()
        elif known is None:
            actions = None
        elif grant == "refresh_token":
            ok = known.identity_token is not None and _same(known.identity_token, refresh_token)
            actions = known.actions if ok else None
        else:
            actions = known.actions if _same(known.password, password) else None
        if service != self.service:
            actions = None
        if actions is None:
            self._record(
                user=user, grant=grant, service=service, asked=asked, granted=(), status=401
            )
            return 401, {
                "errors": [
                    {
                        "code": "UNAUTHORIZED",
                        "message": "authentication required, visit https://aka.ms/acr/authorization"
                        " for more information.",
                    }
                ]
            }
        granted = self._grant(actions, asked)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": [
                {"type": a.type, "name": a.name, "actions": list(a.actions)} for a in granted
            ],
        }
        headers: dict[str, Any] = {"typ": "JWT"}
        if self.key_mode in ("x5c", "both"):
            headers["x5c"] = self._x5c
        if self.key_mode in ("kid", "both"):
            headers["kid"] = self.key_id
        token = jwt.encode(claims, self._key, algorithm="ES256", headers=headers)
        self._record(
            user=user, grant=grant, service=service, asked=asked, granted=granted, status=200
        )
        body: dict[str, Any] = {"access_token": token}
        if grant == "refresh_token" and refresh_token:
            body["refresh_token"] = refresh_token
        return 200, body

    def _record(
        self,
        *,
        user: str | None,
        grant: str,
        service: str,
        asked: tuple[Access, ...],
        granted: tuple[Access, ...],
        status: int,
    ) -> None:
        entry = TokenRequest(time.monotonic(), user, grant, service, asked, granted, status)
        with self._lock:
            self.requests.append(entry)


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: TokenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the records are the log."""

    def _send(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _basic(self) -> tuple[str, str] | Literal[False] | None:
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) if sep else False

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/oauth2/token":
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        query = urllib.parse.parse_qs(url.query)
        service = (query.get("service") or [""])[0]
        scopes = _split_scopes(query.get("scope", []))
        basic = self._basic()
        if basic is False:
            status, body = 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad header"}]}
        elif basic is None:
            status, body = self.owner.issue(
                grant="anonymous",
                user=None,
                password=None,
                refresh_token=None,
                service=service,
                scopes=scopes,
            )
        else:
            status, body = self.owner.issue(
                grant="basic",
                user=basic[0],
                password=basic[1],
                refresh_token=None,
                service=service,
                scopes=scopes,
            )
        extra = {"WWW-Authenticate": 'Basic realm="ade-test"'} if status == 401 else {}
        self._send(status, body, extra)

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        raw = self._read_body()
        if url.path == "/_admin/anonymous-pull":
            self._admin(raw)
            return
        if url.path != "/oauth2/token":
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        form = urllib.parse.parse_qs(raw.decode(errors="replace"))

        def one(key: str) -> str:
            return (form.get(key) or [""])[0]

        if one("grant_type") == "password":
            # The OAuth2 password grant: what containerd and BuildKit send with credentials.
            status, body = self.owner.issue(
                grant="password",
                user=one("username"),
                password=one("password"),
                refresh_token=None,
                service=one("service"),
                scopes=_split_scopes(form.get("scope", [])),
            )
            self._send(status, body)
            return
        if one("grant_type") != "refresh_token":
            self._send(400, {"errors": [{"code": "UNSUPPORTED", "message": "grant_type"}]})
            return
        # ACR's refresh tokens name no user; here the token itself picks the user.
        refresh = one("refresh_token")
        user = next(
            (
                name
                for name, spec in self.owner.users.items()
                if spec.identity_token and _same(spec.identity_token, refresh)
            ),
            None,
        )
        status, body = self.owner.issue(
            grant="refresh_token",
            user=user,
            password=None,
            refresh_token=refresh,
            service=one("service"),
            scopes=_split_scopes(form.get("scope", [])),
        )
        self._send(status, body)

    def _admin(self, raw: bytes) -> None:
        expected = f"Bearer {self.owner.admin_token}"
        if not _same(self.headers.get("Authorization", ""), expected):
            self._send(401, {"error": "admin token required"})
            return
        try:
            enabled = json.loads(raw)["enabled"]
        except (ValueError, KeyError, TypeError):
            enabled = None
        if not isinstance(enabled, bool):
            self._send(400, {"error": 'body must be {"enabled": true|false}'})
            return
        self.owner.set_anonymous_pull(enabled)
        self._send(200, {"enabled": enabled})


def _split_scopes(values: list[str]) -> list[str]:
    """Scopes come as several parameters and, from some clients, space-separated in one."""
    return [scope for value in values for scope in value.split(" ") if scope]


def _same(secret: str, given: str | None) -> bool:
    """Constant-time comparison of two secrets (any text)."""
    return hmac.compare_digest(secret.encode(), (given or "").encode())
