"""The Notation CLI (compiled by `hack/tools.sh`) verifying image signatures, with its own config.

`verify(reference, trusted_pems, insecure_registry=)` runs `notation verify` with a private
configuration (`XDG_CONFIG_HOME`, also `HOME` and `XDG_CACHE_HOME`, in a folder of its own: nothing
of the user's ~/.config/notation or Docker credentials is read): a trust store `ca:ade-test`
holding the given PEM certificates (`notation/truststore/x509/ca/ade-test/*.crt`) and a trust
policy (version 1.0) for every registry (`registryScopes: ["*"]`) at the strict level, trusting
any identity the store's certificates issued. The binary is `$ADE_TOOLS_BIN/notation` (else the
tools' bin directory, built on first use).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile
from collections.abc import Sequence

from tests.env import controlplane

STORE = "ade-test"


def binary(bin_dir: pathlib.Path | None = None) -> pathlib.Path:
    return (bin_dir or controlplane.tools_bin()) / "notation"


def trust_policy(store: str = STORE) -> dict[str, object]:
    """Trust policy document version 1.0: every registry, strict, the `ca:<store>` trust store."""
    return {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "ade-test",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": [f"ca:{store}"],
                "trustedIdentities": ["*"],
            }
        ],
    }


def configure(folder: pathlib.Path, trusted_pems: Sequence[bytes]) -> dict[str, str]:
    """Writes the trust store and policy under `folder`; the environment to run notation in."""
    config = folder / "config"
    store = config / "notation" / "truststore" / "x509" / "ca" / STORE
    store.mkdir(parents=True, exist_ok=True)
    for index, pem in enumerate(trusted_pems):
        (store / f"trusted-{index}.crt").write_bytes(pem)
    (config / "notation" / "trustpolicy.json").write_text(json.dumps(trust_policy(), indent=2))
    (folder / "home").mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder / "home"),
        "XDG_CONFIG_HOME": str(config),
        "XDG_CACHE_HOME": str(folder / "cache"),
        "LC_ALL": "C",
    }


def verify(
    reference: str,
    trusted_pems: Sequence[bytes],
    *,
    insecure_registry: bool,
    folder: pathlib.Path | None = None,
    bin_dir: pathlib.Path | None = None,
    timeout: float = 60,
    username: str = "",
    password: str = "",
) -> subprocess.CompletedProcess[str]:
    """`notation verify reference` trusting `trusted_pems` (not checked: see returncode, stdout,
    stderr). `insecure_registry` for a plain-HTTP registry; `folder` keeps the configuration
    (default: a temporary folder, removed afterwards); `username` and `password` for a registry
    that asks for credentials (notation's --username and --password)."""
    args = [str(binary(bin_dir)), "verify"]
    if username:
        args += ["--username", username, "--password", password]
    if insecure_registry:
        args.append("--insecure-registry")
    args.append(reference)
    with tempfile.TemporaryDirectory(prefix="notation-") as scratch:
        env = configure(folder or pathlib.Path(scratch), trusted_pems)
        return subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
