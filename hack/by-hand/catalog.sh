# Sourced by the by-hand scripts: the catalog half of what the operator does for one change.
# point_catalog_at URL BRANCH MANIFEST REFERENCE: clone the catalog, set the manifest's `runner:`
# value to REFERENCE (a trailing comment is kept), commit and push, as a person would.
point_catalog_at() {
  local url="$1" branch="$2" manifest="$3" reference="$4"
  local clone
  clone="$(mktemp -d)/catalog"
  git clone --quiet --depth 1 --branch "$branch" "$url" "$clone"
  sed -i -E "s~^(runner:[[:space:]]*)(\"[^\"]*\"|'[^']*'|[^[:space:]#]+)~\\1\"${reference}\"~" \
    "$clone/$manifest"
  git -C "$clone" commit --quiet --all --message "runner: ${reference}"
  git -C "$clone" push --quiet origin "HEAD:${branch}"
  rm -rf "$(dirname "$clone")"
}
