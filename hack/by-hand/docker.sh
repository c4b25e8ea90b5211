#!/usr/bin/env bash
# By hand, what the operator does for one change of a RunnerImage on the Docker backend:
# `docker build` and `docker push` the runner image, then point the catalog's manifest at the
# pushed digest (clone, edit the `runner:` line, commit, push).
# tests/benchmarks/test_by_hand_figures.py times this against the operator.
#
# Usage: hack/by-hand/docker.sh CONTEXT IMAGE CATALOG_URL MANIFEST [NAME=VALUE ...]
#   (as hack/by-hand/buildkitd.sh)
# Environment: DOCKER_HOST, DOCKER_CONFIG (logged in to the registry), DOCKER_BUILDKIT (the
# operator's Engine API build is the classic builder: 0), DOCKER (the CLI, default docker),
# CATALOG_BRANCH (default main).
set -euo pipefail
context="$1" image="$2" url="$3" manifest="$4"
shift 4
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/by-hand/catalog.sh
. "$here/catalog.sh"
docker="${DOCKER:-docker}"

args=()
for arg in "$@"; do args+=(--build-arg "$arg"); done
"$docker" build --quiet --tag "$image" "${args[@]}" "$context" >/dev/null
"$docker" push --quiet "$image" >/dev/null
# registry/repository@sha256:... of the pushed image (the tag is not in RepoDigests)
digest="$("$docker" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image" \
  | sed -n "s|^${image%:*}@||p" | head -n 1)"

point_catalog_at "$url" "${CATALOG_BRANCH:-main}" "$manifest" "${image}@${digest}"
echo "${image}@${digest}"
