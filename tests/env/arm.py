"""An Azure Resource Manager emulator on loopback HTTPS, for the real Azure SDK clients.

`ArmEmulator` serves, on one `https://127.0.0.1:PORT` with a certificate from a throw-away CA
(`ca_file`; azure-core sends bearer tokens over TLS only), the two services the operator uses:

- Entra ID, as MSAL inside azure-identity's `ClientSecretCredential` uses it (`arm_identity`):
  pass `authority=arm.authority` and `disable_instance_discovery=True`.
- ARM, for exactly the calls the operator makes: azure-mgmt-containerregistry 15
  `registries.get` / `begin_update` (`arm_resources.Registries`), azure-mgmt-authorization 4
  role assignments and role definitions (`arm_rbac`), azure-mgmt-devcenter 1.1 catalogs `get`
  and `begin_sync` on dev centers and projects (`arm_resources.Catalogs`), and the operation
  status URLs their pollers follow (`arm_state.Operations`). Every ARM request needs a bearer
  token issued here and an `api-version` the installed SDK sends.

Tests inject faults per (method, path substring) with `inject()`, answered after the token is
checked; a fault with `retry_after` remembers when it was sent, and the retry's arrival shows
whether the client waited (`retries`, `retry_after_violations`). Every request is recorded in
`requests`, never with a token or a secret; every answer carries `x-ms-request-id` and
`x-ms-correlation-request-id`.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import pathlib
import re
import ssl
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from tests.env import certs, httpserver
from tests.env.arm_identity import ARM_SCOPE, TOKEN_LIFETIME, Identity, aad_error
from tests.env.arm_rbac import ACR_PULL, RoleAssignment, RoleAssignments
from tests.env.arm_resources import (
    AnonymousPullHook,
    Catalogs,
    CatalogState,
    CatalogSync,
    ParentKind,
    Registries,
    RegistryState,
)
from tests.env.arm_state import ArmError, Caller, Groups, Operations, Principal, Reply
from tests.env.arm_traffic import Fault, RequestRecord, RetryObservation, Traffic, fault_error

__all__ = [
    "ACR_PULL",
    "API_VERSIONS",
    "ARM_SCOPE",
    "AnonymousPullHook",
    "ArmEmulator",
    "CatalogState",
    "CatalogSync",
    "Fault",
    "Principal",
    "RegistryState",
    "RequestRecord",
    "RetryObservation",
    "RoleAssignment",
    "anonymous_pull_webhook",
]

API_VERSIONS: Mapping[str, Collection[str]] = {
    "Microsoft.ContainerRegistry": ("2025-11-01",),
    "Microsoft.Authorization": ("2022-04-01",),
    "Microsoft.DevCenter": ("2024-02-01",),
}
"""Per provider, the api-versions accepted: those the installed SDKs send by default."""

_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_GROUP = _SUB + r"/resourceGroups/(?P<group>[^/]+)"
_ACR = _GROUP + r"/providers/Microsoft\.ContainerRegistry/registries/(?P<name>[^/]+)"
_CATALOG = (
    _GROUP + r"/providers/Microsoft\.DevCenter/(?P<kind>devcenters|projects)/(?P<parent>[^/]+)"
    r"/catalogs/(?P<name>[^/]+)"
)
_AUTHZ = r"(?P<scope>/.*?)/providers/Microsoft\.Authorization"
_ROUTES: list[tuple[str, frozenset[str], re.Pattern[str]]] = [
    (name, frozenset(methods.split()), re.compile(pattern, re.I))
    for name, methods, pattern in (
        ("registry", "GET PATCH", _ACR),
        ("registry_operation", "GET", _ACR + r"/operationStatuses/(?P<op>[^/]+)"),
        ("catalog", "GET", _CATALOG),
        ("catalog_sync", "POST", _CATALOG + "/sync"),
        (
            "devcenter_operation",
            "GET",
            _SUB
            + r"/providers/Microsoft\.DevCenter/locations/[^/]+/operationStatuses/(?P<op>[^/]+)",
        ),
        ("role_assignments", "GET", _AUTHZ + "/roleAssignments"),
        ("role_assignment", "GET PUT DELETE", _AUTHZ + r"/roleAssignments/(?P<name>[^/]+)"),
        ("role_definitions", "GET", _AUTHZ + "/roleDefinitions"),
        ("role_definition", "GET", _AUTHZ + r"/roleDefinitions/(?P<role>[^/]+)"),
    )
]
_PROVIDER = re.compile(r"/providers/(Microsoft\.[A-Za-z]+)/", re.I)
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_TOKEN_PATH = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")
_OPENID_PATH = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$")


def anonymous_pull_webhook(url: str, admin_token: str) -> AnonymousPullHook:
    """A hook that POSTs `{"enabled": bool}` with a bearer token (`TokenServer`'s admin form).

    For a token server in another process; in-process, pass
    `lambda _registry, enabled: token_server.set_anonymous_pull(enabled)`.
    """

    def post(_registry: str, enabled: bool) -> None:
        request = urllib.request.Request(
            url,
            data=json.dumps({"enabled": enabled}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    return post


@dataclasses.dataclass
class _Answer:
    status: int
    body: Any
    headers: dict[str, str]
    client_id: str | None = None
    code: str | None = None
    recorded_body: Any = None
    fault: bool = False


class ArmEmulator:
    """ARM and Entra ID on one loopback HTTPS port; `start()`/`stop()`, or `with`."""

    def __init__(
        self,
        folder: pathlib.Path,
        *,
        tenant_id: str = "72f988bf-0000-4000-8000-00000000a11e",
        principals: Mapping[str, Principal] | None = None,
        on_anonymous_pull: AnonymousPullHook | None = None,
        lro_polls: int = 2,
        lro_retry_after: float | None = 1,
        api_versions: Mapping[str, Collection[str]] | None = None,
        token_lifetime: int = TOKEN_LIFETIME,
    ) -> None:
        """`principals` maps app (client) ids to their secret and rights. An operation answers
        `InProgress` to `lro_polls` polls, then ends; `lro_retry_after` is the delay it asks
        between polls: whole seconds as `Retry-After`, a fraction as `retry-after-ms` (None:
        no header, so the SDK waits its `polling_interval`, 30 s by default)."""
        self.folder = folder
        self.identity = Identity(tenant_id, principals or {}, lifetime=token_lifetime)
        self.api_versions = {
            provider.lower(): frozenset(versions)
            for provider, versions in (api_versions or API_VERSIONS).items()
        }
        lock = threading.RLock()
        self.groups = Groups(lock)
        self.operations = Operations(lock, polls=lro_polls, retry_after=lro_retry_after)
        self.registries = Registries(
            lock, self.groups, self.operations, on_anonymous_pull=on_anonymous_pull
        )
        self.catalogs = Catalogs(lock, self.groups, self.operations)
        self.rbac = RoleAssignments(lock, self.groups, self.registries)
        self.traffic = Traffic()
        self._http = httpserver.LoopbackServer("arm")
        pki = certs.Authority(folder / "arm-pki", name="ade-test-arm-ca")
        self.pki = pki
        """The CA that signed the certificate (issue a fault proxy's from it)."""
        self._pair = pki.issue("arm", "127.0.0.1", hosts=("127.0.0.1", "localhost"))
        self.ca_file = pki.cert
        """The CA (PEM): `connection_verify=str(ca_file)` for the credential and the clients."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._pair.cert, self._pair.key)
        self._http.start(type("Handler", (_Handler,), {"owner": self}), tls=context)

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> ArmEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def base_url(self) -> str:
        """ARM's endpoint: the SDK clients' `base_url`."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        """Entra ID's host, for azure-identity's `authority` (which appends `/{tenant}`)."""
        return self.base_url

    @property
    def tenant_id(self) -> str:
        return self.identity.tenant_id

    @property
    def principals(self) -> dict[str, Principal]:
        """The apps that can sign in, by client id (add to it to let another in)."""
        return self.identity.principals

    def issued_tokens(self) -> frozenset[str]:
        """Every token issued so far: for tests that grep outputs for leaked tokens."""
        return self.identity.issued()

    @property
    def _tokens(self) -> frozenset[str]:
        """Kept for tests written against the first draft; use `issued_tokens()`."""
        return self.issued_tokens()

    # -- the resources ---------------------------------------------------------------------

    def add_registry(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        login_server: str,
        anonymous_pull: bool = False,
        public_network_access: str = "Enabled",
        sku: str = "Standard",
        location: str = "westeurope",
    ) -> RegistryState:
        return self.registries.add(
            subscription_id,
            resource_group,
            name,
            login_server=login_server,
            anonymous_pull=anonymous_pull,
            public_network_access=public_network_access,
            sku=sku,
            location=location,
        )

    def registry(self, name: str) -> RegistryState:
        """The registry as it is now (a snapshot); KeyError when unknown."""
        return self.registries.get(name)

    def set_registry(
        self,
        name: str,
        *,
        anonymous_pull: bool | None = None,
        public_network_access: str | None = None,
        sku: str | None = None,
    ) -> RegistryState:
        """Change a registry at once, as someone else would (drift); `on_anonymous_pull` is
        told when `anonymous_pull` is given."""
        return self.registries.set(
            name,
            anonymous_pull=anonymous_pull,
            public_network_access=public_network_access,
            sku=sku,
        )

    @property
    def hook_errors(self) -> list[Exception]:
        """What `on_anonymous_pull` raised, if anything."""
        return list(self.registries.hook_errors)

    def add_resource_group(self, subscription_id: str, resource_group: str) -> None:
        """Make a group exist without resources in it (scopes of role assignments)."""
        self.groups.add(subscription_id, resource_group)

    def add_role_assignment(
        self, scope: str, role: str, principal_id: str, *, name: str | None = None
    ) -> RoleAssignment:
        """Seed an assignment made by someone else."""
        return self.rbac.add(scope, role, principal_id, name=name)

    def role_assignments(self, scope: str | None = None) -> list[RoleAssignment]:
        """Every assignment, or those made exactly at `scope`."""
        return self.rbac.all(scope)

    def add_catalog(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        dev_center: str | None = None,
        project: str | None = None,
        repo_uri: str = "https://github.com/example/ade-catalog.git",
        branch: str = "main",
        path: str = "/Environments",
        location: str = "westeurope",
    ) -> CatalogState:
        """A catalog of a dev center or (exclusive) of a project."""
        return self.catalogs.add(
            subscription_id,
            resource_group,
            name,
            dev_center=dev_center,
            project=project,
            repo_uri=repo_uri,
            branch=branch,
            path=path,
            location=location,
        )

    def catalog(
        self, name: str, *, dev_center: str | None = None, project: str | None = None
    ) -> CatalogState:
        return self.catalogs.get(name, dev_center=dev_center, project=project)

    @property
    def syncs(self) -> list[CatalogSync]:
        """Every catalog sync asked for, in order, with its outcome."""
        return self.catalogs.syncs

    def inject_lro_failure(
        self,
        path_contains: str = "",
        *,
        code: str = "InternalServerError",
        message: str = "An internal error occurred while processing the operation.",
        times: int = 1,
    ) -> None:
        """The next `times` operations started on a resource whose id contains `path_contains`
        end `Failed` with this error (and change nothing)."""
        self.operations.inject_failure(path_contains, code=code, message=message, times=times)

    def finish_operations(self) -> int:
        """End every long-running operation still in progress (see `Operations.finish_all`)."""
        return self.operations.finish_all()

    def expire_tokens(self) -> None:
        """Make every token issued so far expired (ARM: 401 `ExpiredAuthenticationToken`)."""
        self.identity.expire_tokens()

    # -- faults and records ------------------------------------------------------------------

    def inject(
        self,
        *,
        method: str | None = None,
        path_contains: str = "",
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        code: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer the next `times` matching requests with an ARM error, after their token was
        checked (requests to the token endpoint match too). Code and message default to ARM's
        for the status (`arm_traffic.FAULT_DEFAULTS`); a 401 carries ARM's `WWW-Authenticate`."""
        return self.traffic.inject(
            method=method,
            path_contains=path_contains,
            status=status,
            times=times,
            retry_after=retry_after,
            code=code,
            message=message,
            headers=headers,
        )

    def clear_faults(self) -> None:
        self.traffic.clear_faults()

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request so far, as answered (`time` is its arrival); no token, no secret."""
        return self.traffic.requests()

    @property
    def retries(self) -> list[RetryObservation]:
        """Every request that came again after a `Retry-After` answer, and how long it waited."""
        return self.traffic.retries()

    @property
    def retry_after_violations(self) -> list[RetryObservation]:
        """The retries that came sooner than their `Retry-After` said (empty when all waited)."""
        return [r for r in self.retries if not r.respected]

    def clear_records(self) -> None:
        self.traffic.clear_records()

    # -- answering -----------------------------------------------------------------------------

    def answer(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        raw: bytes,
        incoming: Mapping[str, str],
    ) -> _Answer:
        """One request (after its arrival was noted) -> the answer. `incoming`: the headers,
        names in lower case."""
        request_id = str(uuid.uuid4())
        headers = {
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": incoming.get("x-ms-correlation-request-id")
            or request_id,
            "x-ms-routing-request-id": f"WESTEUROPE:{time.strftime('%Y%m%dT%H%M%SZ')}:{request_id}",
        }
        if incoming.get("x-ms-client-request-id"):
            headers["x-ms-client-request-id"] = incoming["x-ms-client-request-id"]
        identity = _TOKEN_PATH.match(path) or _OPENID_PATH.match(path)
        if identity is not None:
            answer = self._answer_identity(method, path, identity["tenant"], raw, incoming)
        else:
            answer = self._answer_arm(method, path, query, raw, incoming.get("authorization"))
        answer.headers = {**headers, **answer.headers}
        if answer.body is not None and isinstance(answer.body.get("error"), dict):
            message = answer.body["error"].get("message", "")
            answer.body["error"]["message"] = message.replace("{request_id}", request_id)
        if "Retry-After" in answer.headers and answer.status >= 400:
            self.traffic.told_to_wait(method, path, float(answer.headers["Retry-After"]))
        return answer

    def _answer_identity(
        self, method: str, path: str, tenant: str, raw: bytes, incoming: Mapping[str, str]
    ) -> _Answer:
        fault = self.traffic.take(method, path)
        client_id: str | None = None
        if fault is not None:
            error = fault_error(fault)
            status, body, headers = error.status, error.body(), error.headers
        elif method == "GET" and _OPENID_PATH.match(path):
            host = incoming.get("host") or f"127.0.0.1:{self.port}"
            status, body = self.identity.openid_configuration(host, tenant)
            headers = {}
        elif method == "POST" and _TOKEN_PATH.match(path):
            form = {
                k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode(errors="replace")).items()
            }
            status, body = self.identity.issue(tenant, form)
            client_id = form.get("client_id") or None
            headers = {}
        else:
            status, body = aad_error(405, "invalid_request", 900561, f"{method} is not allowed.")
            headers = {}
        code = body.get("error") if status >= 400 else None
        return _Answer(
            status,
            body,
            {**headers, "Cache-Control": "no-store, no-cache"},
            client_id=client_id,
            code=code if isinstance(code, str) else (code or {}).get("code"),
            fault=fault is not None,
        )

    def _answer_arm(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        raw: bytes,
        authorization: str | None,
    ) -> _Answer:
        caller: Caller | None = None
        body: Any = None
        fault: Fault | None = None
        try:
            caller = self.identity.authenticate(authorization)
            fault = self.traffic.take(method, path)
            if fault is not None:
                raise fault_error(fault)
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as error:
                    raise ArmError(
                        400,
                        "InvalidRequestContent",
                        "The request content was invalid and could not be deserialized: "
                        f"'{error}'.",
                    ) from error
            reply = self.route(caller, method, path, query, body)
            answer = _Answer(reply.status, reply.body, dict(reply.headers))
        except ArmError as error:
            answer = _Answer(error.status, error.body(), dict(error.headers), code=error.code)
        answer.client_id = caller.client_id if caller is not None else None
        answer.recorded_body = body
        answer.fault = fault is not None
        return answer

    def route(
        self, caller: Caller, method: str, path: str, query: Mapping[str, str], body: Any
    ) -> Reply:
        """One authenticated ARM request -> the resource's answer (after the api-version)."""
        version = self._check_api_version(path, query)
        for name, methods, pattern in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method not in methods:
                raise ArmError(
                    405,
                    "HttpMethodNotAllowed",
                    f"The requested resource does not support http method '{method}'.",
                )
            return self._dispatch(name, match.groupdict(), caller, method, query, body, version)
        raise ArmError(
            404,
            "NotFound",
            f"The ARM emulator does not serve '{method} {path}' (tests/env/arm.py).",
        )

    def _dispatch(
        self,
        route: str,
        args: Mapping[str, str],
        caller: Caller,
        method: str,
        query: Mapping[str, str],
        body: Any,
        version: str,
    ) -> Reply:
        if route == "registry":
            where = (caller, args["sub"], args["group"], args["name"])
            if method == "GET":
                return self.registries.read(*where)
            return self.registries.update(*where, body, base_url=self.base_url, api_version=version)
        if route == "registry_operation":
            return self.registries.operation(
                caller, args["sub"], args["group"], args["name"], args["op"]
            )
        if route in ("catalog", "catalog_sync"):
            kind: ParentKind = "devcenters" if args["kind"].lower() == "devcenters" else "projects"
            at = (caller, args["sub"], args["group"], kind, args["parent"], args["name"])
            if route == "catalog":
                return self.catalogs.read(*at)
            return self.catalogs.sync(*at, base_url=self.base_url, api_version=version)
        if route == "devcenter_operation":
            return self.catalogs.operation(caller, args["sub"], args["op"])
        if route == "role_assignments":
            return self.rbac.list(caller, args["scope"], query.get("$filter"))
        if route == "role_assignment":
            if method == "PUT":
                return self.rbac.put(caller, args["scope"], args["name"], body)
            if method == "DELETE":
                return self.rbac.delete(caller, args["scope"], args["name"])
            return self.rbac.read(caller, args["scope"], args["name"])
        if route == "role_definitions":
            return self.rbac.list_definitions(caller, args["scope"], query.get("$filter"))
        return self.rbac.read_definition(caller, args["scope"], args["role"])

    def _check_api_version(self, path: str, query: Mapping[str, str]) -> str:
        """ARM's checks: present (`MissingApiVersionParameter`), well-formed
        (`InvalidApiVersionParameter`), known to the addressed type's provider
        (`NoRegisteredProviderFound`)."""
        version = query.get("api-version")
        if not version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        providers = _PROVIDER.findall(path + "/")
        # The addressed type's provider is the last one (a role assignment on a registry).
        supported = self.api_versions.get(providers[-1].lower()) if providers else None
        if supported is None:
            return version
        listed = ", ".join(sorted(supported))
        if not _API_VERSION.match(version):
            raise ArmError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are '{listed}'.",
            )
        if version not in supported:
            kind = path.rstrip("/").split("/")[-2]
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location 'westeurope' and API "
                f"version '{version}' for type '{kind}'. The supported api-versions are "
                f"'{listed}'. The supported locations are 'westeurope'.",
            )
        return version


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: ArmEmulator
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the records are the log."""

    def handle(self) -> None:
        try:
            assert isinstance(self.connection, ssl.SSLSocket)
            self.connection.do_handshake()
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        arrived = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        # ARM takes '//' as '/' (a scope joined to a path by hand often makes one).
        path = re.sub(r"/{2,}", "/", urllib.parse.unquote(url.path)).rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.owner.traffic.arrived(method, path, arrived)
        incoming = {key.lower(): value for key, value in self.headers.items()}
        answer = self.owner.answer(method, path, query, raw, incoming)
        self.owner.traffic.record(
            RequestRecord(
                time=arrived,
                method=method,
                path=path,
                query=query,
                status=answer.status,
                client_id=answer.client_id,
                body=answer.recorded_body,
                code=answer.code,
                fault=answer.fault,
            )
        )
        data = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        if answer.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
