#!/usr/bin/env bash
# Quick start, command 1: installs what is needed (Python environment, pinned tools compiled from
# the Go module proxy and cached), brings up the local stack and runs the operator end to end on
# examples/. Stays up until Ctrl-C; `hack/demo.sh --once` stops after showing the status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=lib.sh
source hack/lib.sh
ensure_venv
ensure_debian_packages
ADE_TOOLS_BIN=$(hack/tools.sh --print-bin)
export ADE_TOOLS_BIN
exec .venv/bin/python -m tests.env.stack "$@"
