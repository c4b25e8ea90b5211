"""The two readers of a RunnerImage's health that the health tests compare.

`kstatus()` runs the compiled checker (`hack/kstatus`, sigs.k8s.io/cli-utils' kstatus, built by
hack/tools.sh as `kstatus-check`); `argocd()` runs the shipped Argo CD health script
(`deploy/health/runnerimage.lua`) in Lua 5.1, the language of Argo CD's interpreter (gopher-lua),
with the global `obj` set and no `os`, `io` or module loading, as Argo CD does. `agree()` says
whether the two readings mean the same thing.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
from collections.abc import Mapping
from typing import Any

import lupa.lua51  # type: ignore[import-untyped]

from tests.env import controlplane

LUA_SCRIPT = controlplane.REPO / "deploy" / "health" / "runnerimage.lua"
ARGOCD_CM = controlplane.REPO / "deploy" / "health" / "argocd-cm.yaml"
ARGOCD_KEY = "resource.customizations.health.runners.ade.dev_RunnerImage"

ARGO_STATUSES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})

# kstatus status -> the Argo CD health statuses that mean the same.
_SAME = {
    "Current": {"Healthy"},
    "InProgress": {"Progressing"},
    "Failed": {"Degraded"},
    "Terminating": {"Progressing"},  # Argo CD itself says "Progressing: Pending deletion"
    "NotFound": {"Missing"},
}


@dataclasses.dataclass(frozen=True)
class Health:
    status: str
    message: str


def kstatus(obj: Mapping[str, Any], *, bin_dir: pathlib.Path | None = None) -> Health:
    """What kstatus computes for `obj` (as `kubectl get -o json` returns it)."""
    checker = (bin_dir or controlplane.tools_bin()) / "kstatus-check"
    out = subprocess.run(
        [str(checker)], input=json.dumps(obj), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise AssertionError(f"kstatus-check failed ({out.returncode}): {out.stderr}")
    result = json.loads(out.stdout)
    return Health(status=str(result["status"]), message=str(result["message"]))


def argocd(obj: Mapping[str, Any], *, script: str | None = None) -> Health:
    """What the Argo CD health script returns for `obj`, in a fresh Lua 5.1 runtime."""
    runtime = lupa.lua51.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
    names = runtime.globals()
    for unsafe in ("os", "io", "require", "dofile", "loadfile", "package", "debug"):
        names[unsafe] = None
    names.obj = runtime.table_from(json.loads(json.dumps(obj)), recursive=True)
    hs = runtime.execute(LUA_SCRIPT.read_text() if script is None else script)
    found = dict(hs.items())
    status, message = found.get("status"), found.get("message")
    if status not in ARGO_STATUSES or not isinstance(message, str):
        raise AssertionError(f"not an Argo CD health status: {found!r}")
    return Health(status=str(status), message=message)


def agree(ks: Health, argo: Health, obj: Mapping[str, Any]) -> bool:
    """Whether a kstatus reading and an Argo CD reading of `obj` mean the same.

    kstatus has no "suspended": a suspended RunnerImage is InProgress there (Ready=False,
    reason Suspended), Suspended in Argo CD.
    """
    if argo.status == "Suspended":
        suspended = (obj.get("spec") or {}).get("suspend") is True
        return suspended and ks.status == "InProgress"
    return argo.status in _SAME.get(ks.status, set())
