#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this):
#   Python environment -> pinned tools (compiled once, cached) -> format, lint, types, layering
#   -> the real node's images (built once per change of their inputs, cached)
#   -> unit, API, end-to-end tests and benchmarks against the real control plane.
# Extra arguments go to pytest, e.g. `hack/test.sh -m "not e2e"` or `hack/test.sh -k idle`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=lib.sh
source hack/lib.sh

start=$(date +%s)
ensure_venv
ensure_debian_packages
ADE_TOOLS_BIN=$(hack/tools.sh --print-bin)
export ADE_TOOLS_BIN
echo "[test] tools in $ADE_TOOLS_BIN ($(($(date +%s) - start)) s so far)"

echo "[test] ruff format --check"; .venv/bin/ruff format --check --quiet .
echo "[test] ruff check";          .venv/bin/ruff check --quiet .
echo "[test] mypy --strict";       .venv/bin/mypy
echo "[test] import layering";     .venv/bin/lint-imports --no-cache >/dev/null
echo "[test] images the real node runs (built once per change of their inputs, cached)"
.venv/bin/python -m tests.env.node_images
echo "[test] pytest"
.venv/bin/pytest -ra "$@"
echo "[test] all green in $(($(date +%s) - start)) s"
