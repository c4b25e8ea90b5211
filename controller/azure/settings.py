"""Where the operator reaches Azure and how patient it is: one typed, immutable settings object.

Pure: no I/O. The defaults are public Azure; a sovereign cloud (or the test emulator) is only other
values: the Resource Manager endpoint, the Entra ID authority, and the token scope, which defaults
to `<resource manager>/.default` as the SDKs expect. `ca_bundle` is a PEM file trusted instead of
the system CAs (empty or None: the system CAs). The bounds keep a call from hanging a reconcile:
`timeout` covers a whole operation (retries and long-running-operation polling included).
"""

from __future__ import annotations

import dataclasses

PUBLIC_RESOURCE_MANAGER = "https://management.azure.com"
PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com"


@dataclasses.dataclass(frozen=True)
class AzureSettings:
    resource_manager: str = PUBLIC_RESOURCE_MANAGER
    authority_host: str = PUBLIC_AUTHORITY_HOST
    credential_scope: str | None = None
    """Token scope for Resource Manager; None: `<resource_manager>/.default`."""
    ca_bundle: str | None = None
    timeout: float = 120.0
    """Seconds one operation may take in all (retries, Retry-After waits, LRO polling)."""
    retry_total: int = 3
    """Retries of one HTTP request (429, 408, 5xx, connection errors), as azure-core counts them."""
    max_retry_after: float = 30.0
    """A longer Retry-After is not slept in-process: the error carries it to the caller."""
    polling_interval: float = 5.0
    """Seconds between polls of a long-running operation when ARM sends no Retry-After."""
    connection_timeout: float = 10.0
    read_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("resource_manager", "authority_host"):
            value = getattr(self, name).strip().rstrip("/")
            if not value.startswith("https://") or len(value) <= len("https://"):
                raise ValueError(f"{name}: must be an https:// URL (got {value!r})")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "ca_bundle", (self.ca_bundle or "").strip() or None)
        scope = (self.credential_scope or "").strip()
        object.__setattr__(self, "credential_scope", scope or f"{self.resource_manager}/.default")
        if self.timeout <= 0 or self.retry_total < 0 or self.polling_interval <= 0:
            raise ValueError("timeout and polling_interval must be positive, retry_total >= 0")

    @property
    def scope(self) -> str:
        """The token scope, always set after construction."""
        return self.credential_scope or f"{self.resource_manager}/.default"

    @property
    def verify(self) -> str | bool:
        """`connection_verify` for azure-core transports: the CA bundle path, or True."""
        return self.ca_bundle or True
