"""Reading the operator configuration from environment variables (controller.config.from_env)."""

from __future__ import annotations

import pytest

from controller import config


def test_defaults_from_empty_env() -> None:
    cfg = config.from_env({})
    assert cfg == config.Config()
    assert cfg.namespaces == ()
    assert cfg.clusterwide
    assert cfg.max_concurrent_reconciles == 8
    assert cfg.resync_interval == 60.0
    assert cfg.max_concurrent_builds == 4
    assert cfg.build_pending_timeout == 300.0
    assert cfg.insecure_registries == ()
    assert (cfg.metrics_port, cfg.health_port, cfg.receiver_port) == (8080, 8081, 9292)
    assert cfg.log_format is config.LogFormat.PLAIN
    assert cfg.log_level == "INFO"
    assert cfg.peering == ""


def test_blank_values_mean_defaults() -> None:
    names = (
        "ADE_WATCH_NAMESPACES",
        "ADE_MAX_CONCURRENT_RECONCILES",
        "ADE_RESYNC_INTERVAL",
        "ADE_PROGRESS_INTERVAL",
        "ADE_METRICS_PORT",
        "ADE_HEALTH_PORT",
        "ADE_RECEIVER_PORT",
        "ADE_LOG_FORMAT",
        "ADE_LOG_LEVEL",
        "ADE_PEERING",
        "ADE_WORK_DIR",
        "ADE_MAX_CONCURRENT_BUILDS",
        "ADE_BUILD_PENDING_TIMEOUT",
        "ADE_BUILD_RETRIES",
        "ADE_BUILD_RETRY_DELAY",
        "ADE_BUILDKIT_ADDR",
        "ADE_BUILDKIT_TLS_DIR",
        "ADE_BUILDKIT_IMAGE",
        "ADE_INSECURE_REGISTRIES",
        "ADE_CATALOG_BATCH_WINDOW",
        "ADE_CATALOG_BATCH_MAX_WINDOW",
        "ADE_AZURE_RESOURCE_MANAGER",
        "ADE_AZURE_AUTHORITY_HOST",
        "ADE_AZURE_CA_BUNDLE",
        "ADE_AZURE_CHECK_INTERVAL",
        "ADE_REGISTRY_TIMEOUT",
        "ADE_RECONCILE_TIMEOUT",
    )
    blank = dict.fromkeys(names, "  ")
    assert config.from_env(blank) == config.Config()


def test_every_variable_read() -> None:
    cfg = config.from_env(
        {
            "ADE_WATCH_NAMESPACES": " team-a, ,team-b ,",
            "ADE_MAX_CONCURRENT_RECONCILES": " 3 ",
            "ADE_RESYNC_INTERVAL": "1h30m",
            "ADE_METRICS_PORT": "0",
            "ADE_HEALTH_PORT": "65535",
            "ADE_RECEIVER_PORT": "0",
            "ADE_LOG_FORMAT": " JSON ",
            "ADE_LOG_LEVEL": "debug",
            "ADE_PEERING": " ade-peering ",
        }
    )
    assert cfg.namespaces == ("team-a", "team-b")
    assert not cfg.clusterwide
    assert cfg.max_concurrent_reconciles == 3
    assert cfg.resync_interval == 5400.0
    assert cfg.metrics_port == 0
    assert cfg.health_port == 65535
    assert cfg.receiver_port == 0
    assert cfg.log_format is config.LogFormat.JSON
    assert cfg.log_level == "DEBUG"
    assert cfg.peering == "ade-peering"


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR", "warning"])
def test_log_levels_accepted(level: str) -> None:
    assert config.from_env({"ADE_LOG_LEVEL": level}).log_level == level.upper()


def test_resync_of_one_second_is_allowed() -> None:
    assert config.from_env({"ADE_RESYNC_INTERVAL": "1s"}).resync_interval == 1.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADE_MAX_CONCURRENT_RECONCILES", "eight"),
        ("ADE_MAX_CONCURRENT_RECONCILES", "2.5"),
        ("ADE_MAX_CONCURRENT_RECONCILES", "0"),
        ("ADE_MAX_CONCURRENT_RECONCILES", "-1"),
        ("ADE_RESYNC_INTERVAL", "10"),
        ("ADE_RESYNC_INTERVAL", "ten minutes"),
        ("ADE_RESYNC_INTERVAL", "500ms"),
        ("ADE_RESYNC_INTERVAL", "0s"),
        ("ADE_METRICS_PORT", "http"),
        ("ADE_METRICS_PORT", "65536"),
        ("ADE_METRICS_PORT", "-1"),
        ("ADE_HEALTH_PORT", "8081x"),
        ("ADE_HEALTH_PORT", "70000"),
        ("ADE_RECEIVER_PORT", "-1"),
        ("ADE_LOG_FORMAT", "yaml"),
        ("ADE_LOG_LEVEL", "TRACE"),
        ("ADE_LOG_LEVEL", "CRITICAL"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.from_env({name: value})
    assert str(caught.value).startswith(f"{name}: ")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(config.ConfigError, ValueError)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ADE_MAX_CONCURRENT_RECONCILES", "eight", "'eight'"),
        ("ADE_METRICS_PORT", "65536", "65536"),
        ("ADE_RESYNC_INTERVAL", "10", "'10'"),
    ],
)
def test_bad_value_quotes_what_was_given(name: str, value: str, expected: str) -> None:
    with pytest.raises(config.ConfigError, match=expected):
        config.from_env({name: value})


def test_catalog_batch_windows_read() -> None:
    assert (config.Config.catalog_batch_window, config.Config.catalog_batch_max_window) == (
        0.2,
        5.0,
    )
    cfg = config.from_env({"ADE_CATALOG_BATCH_WINDOW": "0s", "ADE_CATALOG_BATCH_MAX_WINDOW": "1m"})
    assert (cfg.catalog_batch_window, cfg.catalog_batch_max_window) == (0.0, 60.0)
    with pytest.raises(config.ConfigError, match=r"^ADE_CATALOG_BATCH_MAX_WINDOW: "):
        config.from_env({"ADE_CATALOG_BATCH_MAX_WINDOW": "soon"})


def test_build_settings_read() -> None:
    cfg = config.from_env(
        {
            "ADE_WORK_DIR": "/var/cache/ade",
            "ADE_MAX_CONCURRENT_BUILDS": "2",
            "ADE_BUILD_PENDING_TIMEOUT": "90s",
            "ADE_BUILD_RETRIES": "0",
            "ADE_BUILD_RETRY_DELAY": "1m",
            "ADE_BUILDKIT_ADDR": "tcp://buildkitd:1234",
            "ADE_BUILDKIT_TLS_DIR": "/etc/buildkit/tls",
            "ADE_BUILDKIT_IMAGE": "mirror.local/buildkit:v0.25.2-rootless",
            "ADE_INSECURE_REGISTRIES": "registry.local:5000, mirror.local",
            "ADE_BUILD_HOST_NETWORK": "True",
            "ADE_PEERING_LIFETIME": "30s",
        }
    )
    assert cfg.build_host_network is True
    assert cfg.peering_lifetime == 30.0
    assert cfg.work_dir == "/var/cache/ade"
    assert cfg.max_concurrent_builds == 2
    assert cfg.build_pending_timeout == 90.0
    assert (cfg.build_retries, cfg.build_retry_delay) == (0, 60.0)
    assert cfg.buildkit_addr == "tcp://buildkitd:1234"
    assert cfg.buildkit_tls_dir == "/etc/buildkit/tls"
    assert cfg.buildkit_image == "mirror.local/buildkit:v0.25.2-rootless"
    assert cfg.insecure_registries == ("registry.local:5000", "mirror.local")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADE_MAX_CONCURRENT_BUILDS", "0"),
        ("ADE_BUILD_PENDING_TIMEOUT", "soon"),
        ("ADE_BUILD_RETRIES", "-1"),
        ("ADE_BUILD_RETRY_DELAY", "later"),
        ("ADE_BUILD_HOST_NETWORK", "yes"),
        ("ADE_PEERING_LIFETIME", "1s"),
        ("ADE_PEERING_LIFETIME", "never"),
    ],
)
def test_bad_build_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(config.ConfigError, match=f"^{name}: "):
        config.from_env({name: value})


def test_azure_settings_read() -> None:
    cfg = config.from_env(
        {
            "ADE_AZURE_RESOURCE_MANAGER": "https://management.usgovcloudapi.net/",
            "ADE_AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us",
            "ADE_AZURE_CA_BUNDLE": "/etc/ade/ca.pem",
            "ADE_AZURE_CHECK_INTERVAL": "5m",
        }
    )
    assert cfg.azure_resource_manager == "https://management.usgovcloudapi.net"
    assert cfg.azure_authority_host == "https://login.microsoftonline.us"
    assert cfg.azure_ca_bundle == "/etc/ade/ca.pem"
    assert cfg.azure_check_interval == 300.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADE_AZURE_RESOURCE_MANAGER", "http://management.azure.com"),
        ("ADE_AZURE_AUTHORITY_HOST", "login.microsoftonline.com"),
        ("ADE_AZURE_CHECK_INTERVAL", "0s"),
    ],
)
def test_bad_azure_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(config.ConfigError, match=f"^{name}: "):
        config.from_env({name: value})


def test_time_outs_read() -> None:
    assert (config.Config().registry_timeout, config.Config().reconcile_timeout) == (30.0, 600.0)
    cfg = config.from_env({"ADE_REGISTRY_TIMEOUT": "5s", "ADE_RECONCILE_TIMEOUT": "2m"})
    assert (cfg.registry_timeout, cfg.reconcile_timeout) == (5.0, 120.0)
    with pytest.raises(config.ConfigError, match="ADE_RECONCILE_TIMEOUT"):
        config.from_env({"ADE_RECONCILE_TIMEOUT": "100ms"})
