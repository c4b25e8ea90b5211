"""The operator's configuration: one typed object read from environment variables.

| variable | default | meaning |
| --- | --- | --- |
| `ADE_WATCH_NAMESPACES` | (empty: all) | comma-separated namespaces; empty: the whole cluster |
| `ADE_MAX_CONCURRENT_RECONCILES` | `8` | RunnerImages reconciled at once |
| `ADE_RESYNC_INTERVAL` | `1m` | how often each RunnerImage is looked at with no change seen |
| `ADE_PROGRESS_INTERVAL` | `2s` | how often work in flight is looked at (the net: builds wake it) |
| `ADE_METRICS_PORT` | `8080` | port of the Prometheus `/metrics` endpoint; `0` turns it off |
| `ADE_HEALTH_PORT` | `8081` | port of the liveness endpoint `/healthz`; `0` turns it off |
| `ADE_RECEIVER_PORT` | `9292` | port of the webhook receivers (`POST /hook/...`); `0`: off |
| `ADE_LOG_FORMAT` | `plain` | `plain` or `json` |
| `ADE_LOG_LEVEL` | `INFO` | `DEBUG`, `INFO`, `WARNING` or `ERROR` |
| `ADE_PEERING` | (empty: standalone) | name of a kopf peering object, for several replicas |
| `ADE_PEERING_LIFETIME` | `12s` | a replica unheard of this long is dead: the standby takes over |
| `ADE_WORK_DIR` | `/tmp/ade-runner-operator` | where fetched sources (build contexts) are kept |
| `ADE_MAX_CONCURRENT_BUILDS` | `4` | builds in flight across the operator; more wait queued |
| `ADE_BUILD_PENDING_TIMEOUT` | `5m` | a Job build pod Pending longer than this fails the build |
| `ADE_BUILD_RETRIES` | `2` | automatic retries of a build that failed on the way to the registry |
| `ADE_BUILD_RETRY_DELAY` | `15s` | wait before the first such retry; each next waits double |
| `ADE_BUILDKIT_ADDR` | `unix:///run/buildkit/buildkitd.sock` | buildkitd for BuildKitDaemon |
| `ADE_BUILDKIT_TLS_DIR` | (empty) | folder with ca.crt, tls.crt, tls.key for mTLS to buildkitd |
| `ADE_BUILDKIT_IMAGE` | (pinned) | rootless BuildKit image the Job backend runs |
| `ADE_BUILD_HOST_NETWORK` | `false` | Job build pods use the node's network (`true` or `false`) |
| `ADE_CATALOG_BATCH_WINDOW` | `200ms` | how long a catalog batch waits for one more change |
| `ADE_CATALOG_BATCH_MAX_WINDOW` | `5s` | the longest a batch collects changes that keep coming |
| `ADE_INSECURE_REGISTRIES` | (empty) | registries reached over plain HTTP (loopback always is) |
| `ADE_REGISTRY_TIMEOUT` | `30s` | one whole answer of a registry (a blob's: each read) |
| `ADE_RECONCILE_TIMEOUT` | `10m` | the most one reconcile's steps may take in all |
| `ADE_AZURE_RESOURCE_MANAGER` | `https://management.azure.com` | ARM endpoint (sovereign clouds) |
| `ADE_AZURE_AUTHORITY_HOST` | `https://login.microsoftonline.com` | Microsoft Entra ID authority |
| `ADE_AZURE_CA_BUNDLE` | (empty: system CAs) | PEM bundle trusted for the two endpoints above |
| `ADE_AZURE_CREDENTIAL_SCOPE` | (empty: `<resource manager>/.default`) | token scope for ARM |
| `ADE_AZURE_CHECK_INTERVAL` | `1m` | how often a registry's access is read again (drift) |

Every variable is read once at start; a bad value stops the operator with a message naming it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from controller import durations


class LogFormat(enum.StrEnum):
    PLAIN = "plain"
    JSON = "json"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """A configuration variable has a value the operator cannot use."""


@dataclasses.dataclass(frozen=True)
class Config:
    namespaces: tuple[str, ...] = ()
    max_concurrent_reconciles: int = 8
    resync_interval: float = 60.0
    progress_interval: float = 2.0
    catalog_batch_window: float = 0.2
    catalog_batch_max_window: float = 5.0
    metrics_port: int = 8080
    health_port: int = 8081
    receiver_port: int = 9292
    log_format: LogFormat = LogFormat.PLAIN
    log_level: str = "INFO"
    peering: str = ""
    peering_lifetime: float = 12.0
    work_dir: str = "/tmp/ade-runner-operator"  # noqa: S108 - a cache, private to the process
    max_concurrent_builds: int = 4
    build_pending_timeout: float = 300.0
    build_retries: int = 2
    build_retry_delay: float = 15.0
    buildkit_addr: str = "unix:///run/buildkit/buildkitd.sock"
    buildkit_tls_dir: str = ""
    buildkit_image: str = ""
    build_host_network: bool = False
    insecure_registries: tuple[str, ...] = ()
    registry_timeout: float = 30.0
    reconcile_timeout: float = 600.0
    azure_resource_manager: str = "https://management.azure.com"
    azure_authority_host: str = "https://login.microsoftonline.com"
    azure_ca_bundle: str = ""
    azure_credential_scope: str = ""
    azure_check_interval: float = 60.0

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}: must be a port number from 0 to 65535 (got {value})")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be a whole number (got {raw!r})") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise ConfigError(f"{name}: must be true or false (got {raw!r})")
    return raw == "true"


def from_env(env: Mapping[str, str]) -> Config:
    """Read the configuration from `env` (normally `os.environ`)."""
    namespaces = tuple(
        n.strip() for n in env.get("ADE_WATCH_NAMESPACES", "").split(",") if n.strip()
    )
    workers = _int(env, "ADE_MAX_CONCURRENT_RECONCILES", Config.max_concurrent_reconciles)
    if workers < 1:
        raise ConfigError(f"ADE_MAX_CONCURRENT_RECONCILES: must be at least 1 (got {workers})")
    resync = _duration(env, "ADE_RESYNC_INTERVAL", "1m")
    progress = _duration(env, "ADE_PROGRESS_INTERVAL", "2s")
    builds = _int(env, "ADE_MAX_CONCURRENT_BUILDS", Config.max_concurrent_builds)
    if builds < 1:
        raise ConfigError(f"ADE_MAX_CONCURRENT_BUILDS: must be at least 1 (got {builds})")
    build_retries = _int(env, "ADE_BUILD_RETRIES", Config.build_retries)
    if build_retries < 0:
        raise ConfigError(f"ADE_BUILD_RETRIES: must be 0 or more (got {build_retries})")
    try:
        log_format = LogFormat(env.get("ADE_LOG_FORMAT", "plain").strip().lower() or "plain")
    except ValueError:
        raise ConfigError("ADE_LOG_FORMAT: must be plain or json") from None
    level = env.get("ADE_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigError(f"ADE_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}")
    return Config(
        namespaces=namespaces,
        max_concurrent_reconciles=workers,
        resync_interval=resync,
        progress_interval=progress,
        catalog_batch_window=_duration(env, "ADE_CATALOG_BATCH_WINDOW", "200ms", minimum=0.0),
        catalog_batch_max_window=_duration(env, "ADE_CATALOG_BATCH_MAX_WINDOW", "5s", minimum=0.0),
        metrics_port=_port(env, "ADE_METRICS_PORT", Config.metrics_port),
        health_port=_port(env, "ADE_HEALTH_PORT", Config.health_port),
        receiver_port=_port(env, "ADE_RECEIVER_PORT", Config.receiver_port),
        log_format=log_format,
        log_level=level,
        peering=env.get("ADE_PEERING", "").strip(),
        peering_lifetime=_duration(env, "ADE_PEERING_LIFETIME", "12s", minimum=2.0),
        work_dir=env.get("ADE_WORK_DIR", "").strip() or Config.work_dir,
        max_concurrent_builds=builds,
        build_pending_timeout=_duration(env, "ADE_BUILD_PENDING_TIMEOUT", "5m"),
        build_retries=build_retries,
        build_retry_delay=_duration(env, "ADE_BUILD_RETRY_DELAY", "15s"),
        buildkit_addr=env.get("ADE_BUILDKIT_ADDR", "").strip() or Config.buildkit_addr,
        buildkit_tls_dir=env.get("ADE_BUILDKIT_TLS_DIR", "").strip(),
        buildkit_image=env.get("ADE_BUILDKIT_IMAGE", "").strip(),
        build_host_network=_bool(env, "ADE_BUILD_HOST_NETWORK", Config.build_host_network),
        insecure_registries=tuple(
            h.strip() for h in env.get("ADE_INSECURE_REGISTRIES", "").split(",") if h.strip()
        ),
        registry_timeout=_duration(env, "ADE_REGISTRY_TIMEOUT", "30s"),
        reconcile_timeout=_duration(env, "ADE_RECONCILE_TIMEOUT", "10m"),
        azure_resource_manager=_https(
            env, "ADE_AZURE_RESOURCE_MANAGER", Config.azure_resource_manager
        ),
        azure_authority_host=_https(env, "ADE_AZURE_AUTHORITY_HOST", Config.azure_authority_host),
        azure_ca_bundle=env.get("ADE_AZURE_CA_BUNDLE", "").strip(),
        azure_credential_scope=env.get("ADE_AZURE_CREDENTIAL_SCOPE", "").strip(),
        azure_check_interval=_duration(env, "ADE_AZURE_CHECK_INTERVAL", "1m"),
    )


def _https(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip().rstrip("/") or default
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise ConfigError(f"{name}: must be an https:// URL (got {value!r})")
    return value


def _duration(env: Mapping[str, str], name: str, default: str, *, minimum: float = 1.0) -> float:
    try:
        seconds = durations.parse(env.get(name, "").strip() or default)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None
    if seconds < minimum:
        raise ConfigError(f"{name}: must be at least {minimum:g}s")
    return seconds
