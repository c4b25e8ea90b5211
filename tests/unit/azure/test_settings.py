"""Azure settings: public defaults, sovereign clouds, the emulator, normalisation."""

from __future__ import annotations

import pytest

from controller.azure.settings import AzureSettings


def test_public_cloud_defaults() -> None:
    config = AzureSettings()
    assert config.resource_manager == "https://management.azure.com"
    assert config.authority_host == "https://login.microsoftonline.com"
    assert config.scope == "https://management.azure.com/.default"
    assert config.credential_scope == config.scope
    assert config.ca_bundle is None
    assert config.verify is True


def test_sovereign_cloud_is_only_other_values() -> None:
    config = AzureSettings(
        resource_manager="https://management.chinacloudapi.cn/",
        authority_host="https://login.chinacloudapi.cn/",
    )
    assert config.resource_manager == "https://management.chinacloudapi.cn"
    assert config.authority_host == "https://login.chinacloudapi.cn"
    assert config.scope == "https://management.chinacloudapi.cn/.default"


def test_emulator_keeps_the_public_scope_and_trusts_its_ca() -> None:
    config = AzureSettings(
        resource_manager="https://127.0.0.1:8443",
        authority_host="https://127.0.0.1:8443",
        credential_scope="https://management.azure.com/.default",
        ca_bundle="/tmp/ca.pem",
    )
    assert config.scope == "https://management.azure.com/.default"
    assert config.verify == "/tmp/ca.pem"


def test_empty_ca_bundle_means_system_cas() -> None:
    assert AzureSettings(ca_bundle="  ").ca_bundle is None


def test_plain_http_is_refused() -> None:
    with pytest.raises(ValueError, match="resource_manager"):
        AzureSettings(resource_manager="http://management.azure.com")
    with pytest.raises(ValueError, match="authority_host"):
        AzureSettings(authority_host="http://login.microsoftonline.com")


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        AzureSettings(timeout=0)
