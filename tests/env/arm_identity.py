"""Entra ID for the ARM emulator (`tests.env.arm`): client-credential tokens and their check.

Pure, no I/O. MSAL (inside azure-identity's `ClientSecretCredential`) first reads
`/{tenant}/v2.0/.well-known/openid-configuration` (`openid_configuration()`: it needs
`authorization_endpoint` and `token_endpoint`, whose first path segment it takes as the
tenant), then POSTs `grant_type=client_credentials`, `client_id`, `client_secret` and
`scope={resource}/.default` to the token endpoint (`issue()`). Only configured apps with their
secret get a token; the errors are Entra ID's (`error`, `error_description` with the AADSTS
number): an unknown app AADSTS700016 (400), a wrong secret AADSTS7000215 (401), a scope other
than one `/.default` AADSTS1002012, a resource other than ARM's AADSTS500011, another tenant
AADSTS90002. A token is an opaque random string remembered with its app and expiry.

`authenticate()` is ARM's side: the `Authorization` header to a `Caller`, or ARM's 401
(`AuthenticationFailed`, `InvalidAuthenticationToken`, `ExpiredAuthenticationToken`) with
`WWW-Authenticate: Bearer authorization_uri=...`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from tests.env.arm_state import ArmError, Caller, Principal

ARM_SCOPE = "https://management.azure.com/.default"
"""The scope ARM tokens are asked for (the SDKs' default `credential_scopes`)."""

AUDIENCES = ("https://management.azure.com", "https://management.core.windows.net")
"""The resources a token may be asked for (`{resource}/.default`); both mean ARM."""

TOKEN_LIFETIME = 3600


@dataclasses.dataclass(frozen=True)
class _Token:
    client_id: str
    audience: str
    expires: float
    """`time.time()` from which ARM refuses it."""


class Identity:
    """The tenant's apps, and the tokens issued to them."""

    def __init__(
        self, tenant_id: str, principals: Mapping[str, Principal], *, lifetime: int
    ) -> None:
        self.tenant_id = tenant_id
        self.principals = dict(principals)
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}

    def openid_configuration(self, host: str, tenant: str) -> tuple[int, dict[str, Any]]:
        """The tenant's OIDC discovery document, as Entra ID's v2.0 endpoint has it."""
        if tenant.lower() != self.tenant_id.lower():
            return _unknown_tenant(tenant)
        base = f"https://{host}/{tenant}"
        return 200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }

    def issue(self, tenant: str, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """One token request (the form MSAL posts) -> status and body, as Entra ID answers."""
        client_id = form.get("client_id", "")
        scope = form.get("scope", "")
        resource = scope.removesuffix("/.default").rstrip("/")
        principal = self.principals.get(client_id)
        if tenant.lower() != self.tenant_id.lower():
            return _unknown_tenant(tenant)
        if form.get("grant_type") != "client_credentials":
            grant = form.get("grant_type", "")
            return aad_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        if principal is None:
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in "
                "the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        if not hmac.compare_digest(
            principal.secret.encode(), form.get("client_secret", "").encode()
        ):
            return aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        if len(scope.split()) != 1 or not scope.endswith("/.default"):
            return aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        if resource not in AUDIENCES:
            return aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant. "
                "You might have sent your authentication request to the wrong tenant.",
            )
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = _Token(client_id, resource, time.time() + self.lifetime)
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "ext_expires_in": self.lifetime,
            "access_token": token,
        }

    def authenticate(self, header: str | None) -> Caller:
        """The caller of an ARM request, from its `Authorization` header; or ARM's 401."""
        if not header:
            raise unauthenticated(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                "The authentication failed because of missing 'Authorization' header.",
            )
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthenticated(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid "
                "format.",
                "The authentication failed because of an invalid 'Authorization' header.",
            )
        with self._lock:
            token = self._tokens.get(value.strip())
        principal = self.principals.get(token.client_id) if token is not None else None
        if token is None or principal is None:
            raise unauthenticated(
                "InvalidAuthenticationToken",
                "The access token is invalid.",
                "The access token is invalid.",
            )
        if token.expires <= time.time():
            expired = datetime.datetime.fromtimestamp(token.expires, datetime.UTC)
            current = datetime.datetime.now(datetime.UTC)
            raise unauthenticated(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{expired:%m/%d/%Y %I:%M:%S %p}' is earlier "
                f"than current UTC time '{current:%m/%d/%Y %I:%M:%S %p}'.",
                "The access token has expired.",
            )
        return Caller(token.client_id, principal)

    def issued(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._tokens)

    def expire_tokens(self) -> None:
        """Make every token issued so far expired."""
        with self._lock:
            self._tokens = {
                key: dataclasses.replace(token, expires=0) for key, token in self._tokens.items()
            }


def unauthenticated(code: str, message: str, description: str) -> ArmError:
    """ARM's 401: the error body and the bearer challenge."""
    return ArmError(
        401,
        code,
        message,
        headers={
            "WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
            f'error="invalid_token", error_description="{description}"'
        },
    )


def aad_error(status: int, error: str, number: int, description: str) -> tuple[int, dict[str, Any]]:
    """Entra ID's error answer: `error`, `error_description` with the AADSTS number, ids."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return status, {
        "error": error,
        "error_description": f"AADSTS{number}: {description} Trace ID: {trace} Correlation ID: "
        f"{correlation} Timestamp: {stamp}",
        "error_codes": [number],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={number}",
    }


def _unknown_tenant(tenant: str) -> tuple[int, dict[str, Any]]:
    return aad_error(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud.",
    )
