#!/usr/bin/env bash
# By hand, what the operator does for one change of a RunnerImage on the BuildKitDaemon backend:
# build and push the runner image with `buildctl` against a BuildKit daemon, with the build
# options the operator uses by default (registry cache in `<repository>/buildcache`, SLSA
# provenance, reproducible timestamps), then point the catalog's manifest at the pushed digest
# (clone, edit the `runner:` line, commit, push).
# tests/benchmarks/test_by_hand_figures.py times this against the operator.
#
# Usage: hack/by-hand/buildkitd.sh CONTEXT IMAGE CATALOG_URL MANIFEST [NAME=VALUE ...]
#   CONTEXT      folder with the Dockerfile and scripts/
#   IMAGE        registry/repository:tag to push
#   CATALOG_URL  the catalog's git URL (credentials in it, or from a git credential helper)
#   MANIFEST     the manifest in the catalog whose `runner:` line is set
#   NAME=VALUE   build args
# Environment: BUILDKIT_HOST (the daemon, as buildctl reads it), DOCKER_CONFIG (push
# credentials), CATALOG_BRANCH (default main), SOURCE_DATE_EPOCH (the time the image's files and
# history get; default 0, as the operator's for an inline source).
set -euo pipefail
context="$1" image="$2" url="$3" manifest="$4"
shift 4
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/by-hand/catalog.sh
. "$here/catalog.sh"

metadata="$(mktemp)"
trap 'rm -f "$metadata"' EXIT
cache="${image%:*}/buildcache:latest"
args=(--opt "build-arg:SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}")
for arg in "$@"; do args+=(--opt "build-arg:${arg}"); done
# SLSA provenance, as the operator attaches by default (spec.build.attestations): the same image.
args+=(--opt "attest:provenance=mode=min")
# The registry cache, as the operator keeps it: a rebuild on an empty daemon is a warm one.
args+=(--export-cache "type=registry,ref=${cache},mode=max,ignore-error=true"
  --import-cache "type=registry,ref=${cache}")
buildctl build --frontend dockerfile.v0 \
  --local "context=${context}" --local "dockerfile=${context}" "${args[@]}" \
  --output "type=image,name=${image},push=true,rewrite-timestamp=true" \
  --metadata-file "$metadata"
digest="$(grep -o '"containerimage.digest": *"sha256:[0-9a-f]*"' "$metadata" \
  | grep -o 'sha256:[0-9a-f]*')"

point_catalog_at "$url" "${CATALOG_BRANCH:-main}" "$manifest" "${image}@${digest}"
echo "${image}@${digest}"
