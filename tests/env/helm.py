"""Helm (compiled from the Go module proxy by `hack/tools.sh`) against the repository's chart.

`Helm` runs the pinned binary with its own config, cache and data folders (nothing is read from or
written to the user's ~/.config/helm), renders the chart into parsed documents and installs it
into a test control plane with the admin's kubeconfig.
"""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

from ruamel.yaml import YAML

from tests.env import controlplane

CHART = controlplane.REPO / "deploy" / "helm" / "ade-runner-operator"

Manifest = dict[str, Any]


def parse_documents(text: str) -> list[Manifest]:
    """Every non-empty YAML document in `text`, as plain dicts and lists."""
    yaml = YAML(typ="safe", pure=True)
    return [doc for doc in yaml.load_all(io.StringIO(text)) if doc]


def set_args(values: Mapping[str, str] | None) -> list[str]:
    out: list[str] = []
    for key, value in (values or {}).items():
        out += ["--set", f"{key}={value}"]
    return out


class Helm:
    """The pinned helm binary with private homes under `folder`."""

    def __init__(self, folder: pathlib.Path, bin_dir: pathlib.Path | None = None) -> None:
        self.binary = (bin_dir or controlplane.tools_bin()) / "helm"
        self.env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(folder / "config"),
            "HELM_CACHE_HOME": str(folder / "cache"),
            "HELM_DATA_HOME": str(folder / "data"),
        }
        self.env.pop("KUBECONFIG", None)

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def template(
        self,
        values: Mapping[str, str] | None = None,
        *,
        release: str = "ade",
        namespace: str = "ade-system",
        extra: Iterable[str] = (),
    ) -> list[Manifest]:
        """The chart rendered with `--set` values, parsed."""
        result = self.run(
            "template", release, str(CHART), "--namespace", namespace, *set_args(values), *extra
        )
        return parse_documents(result.stdout)

    def install(
        self,
        plane: controlplane.ControlPlane,
        *,
        release: str,
        namespace: str,
        values: Mapping[str, str] | None = None,
        values_files: Iterable[pathlib.Path] = (),
        wait: bool = False,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """`helm install` as the admin; `wait` waits for the workloads too (they need nodes)."""
        return self.run(
            "install", release, str(CHART),
            "--kubeconfig", str(plane.kubeconfig),
            "--namespace", namespace, "--create-namespace",
            *(["--wait"] if wait else []), "--timeout", f"{int(timeout)}s",
            *[arg for path in values_files for arg in ("--values", str(path))],
            *set_args(values),
            timeout=timeout + 30,
        )  # fmt: skip

    def uninstall(self, plane: controlplane.ControlPlane, *, release: str, namespace: str) -> None:
        self.run(
            "uninstall", release, "--kubeconfig", str(plane.kubeconfig), "--namespace", namespace,
            check=False,
        )  # fmt: skip


def find(docs: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """The documents of `kind` (and `name`, when given)."""
    return [
        doc
        for doc in docs
        if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def one(docs: Iterable[Manifest], kind: str) -> Manifest:
    found = find(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container_env(deployment: Manifest) -> dict[str, str]:
    """The operator container's literal environment variables."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
