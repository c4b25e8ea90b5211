#!/usr/bin/env bash
# Compiles the test environment's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kubectl, kwok, buildkitd, buildctl, rootlesskit, helm, notation) from
# the Go module proxy at the versions pinned in hack/tools.versions, caches them outside the
# repository keyed by name and version, and reuses the cache.
#
#   hack/tools.sh              build what is missing, print progress, then the bin directory
#   hack/tools.sh --print-bin  the same, but print only the bin directory on stdout
#
# Cache root: $ADE_TOOLS_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/ade-runner-operator/tools.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tools.versions
source "$here/tools.versions"

cache=${ADE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ade-runner-operator/tools}
quiet=false
[ "${1:-}" = "--print-bin" ] && quiet=true

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

log() { echo "[tools $(date +%H:%M:%S)] $*" >&2; }

# Prints a line every 100 packages compiled, so a long cold build shows it is alive.
progress() {
  local name=$1 n=0
  while IFS= read -r line; do
    n=$((n + 1))
    if [ $((n % 100)) -eq 0 ]; then log "$name: $n packages compiled"; fi
    case "$line" in *.go:*|*cannot*|*"no required module"*) echo "$line" >&2 ;; esac
  done
  log "$name: $n packages compiled in total"
}

# build NAME VERSION MODULE@VERSION "EXTRA go.mod LINES" "LDFLAGS" PKG[=BINARY]...
build() {
  local name=$1 version=$2 require=$3 extra=$4 ldflags=$5
  shift 5
  local dest="$cache/$name-$version"
  if [ -f "$dest/.complete" ]; then
    log "$name $version: cached in $dest"
    return
  fi
  local work start
  work=$(mktemp -d)
  start=$(date +%s)
  log "$name $version: preparing a wrapper module in $work"
  {
    echo "module ade.dev/tools/$name"
    echo "go 1.24"
    echo "require ${require%@*} ${require#*@}"
    printf '%s\n' "$extra"
  } >"$work/go.mod"
  {
    echo "//go:build tools"
    echo "package tools"
    for pkg in "$@"; do echo "import _ \"${pkg%%=*}\""; done
  } >"$work/tools.go"
  log "$name $version: resolving and downloading modules"
  (cd "$work" && go mod tidy >&2)
  mkdir -p "$dest.tmp"
  for pkg in "$@"; do
    local binary=${pkg##*/}
    case "$pkg" in *=*) binary=${pkg#*=} pkg=${pkg%%=*} ;; esac
    log "$name $version: compiling $binary"
    (cd "$work" && go build -v -trimpath -ldflags "-s -w $ldflags" -o "$dest.tmp/$binary" "$pkg" 2>&1) |
      progress "$binary"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { log "$name: build of $pkg failed"; exit 1; }
  done
  rm -rf "$dest" && mv "$dest.tmp" "$dest" && touch "$dest/.complete"
  rm -rf "$work"
  log "$name $version: done in $(($(date +%s) - start)) s"
}

# k8s.io/kubernetes points its staging modules at ./staging; a wrapper module replaces each with
# the published k8s.io/<name> v0.<minor>.<patch>. Sets k8s_replaces and k8s_ldflags.
kubernetes_module() {
  local v=$KUBERNETES_VERSION staging mod minor
  mod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  k8s_replaces=""
  for staging in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$mod"); do
    k8s_replaces+="replace $staging => $staging v0.${v#v1.}"$'\n'
  done
  minor=${v#v1.}
  minor=${minor%%.*}
  local x="-X k8s.io/component-base/version"
  k8s_ldflags="$x.gitVersion=$v $x.gitMajor=1 $x.gitMinor=$minor $x.gitTreeState=clean"
  k8s_ldflags+=" $x.buildDate=1970-01-01T00:00:00Z"
}

kubernetes() {
  local v=$KUBERNETES_VERSION
  build kubernetes "$v" "k8s.io/kubernetes@$v" "$k8s_replaces" "$k8s_ldflags" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
}

# The real node (tests/env/node.py): the kubelet, and kubectl at the same version (the machine's
# kubectl is older). A cache entry of its own, so adding it rebuilt nothing else.
kubelet() {
  local v=$KUBERNETES_VERSION
  build kubelet "$v" "k8s.io/kubernetes@$v" "$k8s_replaces" "$k8s_ldflags" \
    k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kubectl
}

buildkit() {
  # github.com/moby/buildkit's go.mod has no replace lines; the OCI (runc) and containerd workers
  # are in the default build. Version strings as upstream's Dockerfile sets them.
  local v=$BUILDKIT_VERSION x="-X github.com/moby/buildkit/version"
  build buildkit "$v" "github.com/moby/buildkit@$v" "" \
    "$x.Version=$v $x.Package=github.com/moby/buildkit" \
    github.com/moby/buildkit/cmd/buildkitd \
    github.com/moby/buildkit/cmd/buildctl
}

# rootlesskit for the rootless BuildKit image the real node runs Job builds in
# (tests/env/node_images.py), at the version BuildKit's Dockerfile pins for BUILDKIT_VERSION.
rootlesskit() {
  local v=$ROOTLESSKIT_VERSION
  build rootlesskit "$v" "github.com/rootless-containers/rootlesskit/v3@$v" "" "" \
    github.com/rootless-containers/rootlesskit/v3/cmd/rootlesskit
}

helm_() {
  # helm.sh/helm/v3 (cmd/helm) for the chart tests. Version strings and the default Kubernetes
  # version (from the client-go helm is built with) as upstream's Makefile sets them.
  local v=$HELM_VERSION mod client
  mod=$(go mod download -json "helm.sh/helm/v3@$v" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  client=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$mod")
  local x="-X helm.sh/helm/v3/internal/version" k="-X helm.sh/helm/v3/pkg" flags
  flags="$x.version=$v $x.metadata= $x.gitTreeState=clean"
  flags+=" $k/lint/rules.k8sVersionMajor=1 $k/lint/rules.k8sVersionMinor=$client"
  flags+=" $k/chartutil.k8sVersionMajor=1 $k/chartutil.k8sVersionMinor=$client"
  build helm "$v" "helm.sh/helm/v3@$v" "" "$flags" helm.sh/helm/v3/cmd/helm
}

# The Notation CLI (tests verify the operator's image signatures with it). Version strings as
# upstream's Makefile sets them for a tagged release (no build metadata), with the tag's commit
# from the proxy's .info (its Origin.Hash; empty if the proxy did not record it).
notation_() {
  local v=$NOTATION_VERSION info commit x="-X github.com/notaryproject/notation/internal/version"
  info=$(go mod download -json "github.com/notaryproject/notation@$v" |
    sed -n 's/.*"Info": "\(.*\)",*/\1/p')
  commit=$(sed -n 's/.*"Hash":"\([0-9a-f]*\)".*/\1/p' "$info")
  build notation "$v" "github.com/notaryproject/notation@$v" "" \
    "$x.Version=$v $x.BuildMetadata= $x.GitCommit=$commit" \
    github.com/notaryproject/notation/cmd/notation
}

# The kstatus checker (hack/kstatus: main.go, go.mod), with sigs.k8s.io/cli-utils pinned to
# CLI_UTILS_VERSION. Built from a copy of the folder (go.sum is made there, not in the repo) and
# cached by that version and a hash of the checker's source, so an edit of main.go rebuilds it.
kstatus_check() {
  local v=$CLI_UTILS_VERSION src="$here/kstatus" hash work start
  hash=$(cd "$src" && cat go.mod ./*.go | sha256sum | cut -c1-12)
  kstatus_dir="$cache/kstatus-check-$v-$hash"
  if [ -f "$kstatus_dir/.complete" ]; then
    log "kstatus-check $v ($hash): cached in $kstatus_dir"
    return
  fi
  work=$(mktemp -d)
  start=$(date +%s)
  log "kstatus-check $v ($hash): resolving and downloading modules in $work"
  cp "$src/go.mod" "$src"/*.go "$work/"
  (cd "$work" && go mod edit -require="sigs.k8s.io/cli-utils@$v" && go mod tidy >&2)
  mkdir -p "$kstatus_dir.tmp"
  log "kstatus-check $v ($hash): compiling kstatus-check"
  (cd "$work" && go build -v -trimpath -ldflags "-s -w" -o "$kstatus_dir.tmp/kstatus-check" . 2>&1) |
    progress kstatus-check
  [ "${PIPESTATUS[0]}" -eq 0 ] || { log "kstatus-check: build failed"; exit 1; }
  rm -rf "$kstatus_dir" && mv "$kstatus_dir.tmp" "$kstatus_dir" && touch "$kstatus_dir/.complete"
  rm -rf "$work"
  log "kstatus-check $v ($hash): done in $(($(date +%s) - start)) s"
}

mkdir -p "$cache"
build etcd "$ETCD_VERSION" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "" "" go.etcd.io/etcd/server/v3=etcd
kubernetes_module
kubernetes
kubelet
build kwok "$KWOK_VERSION" "sigs.k8s.io/kwok@$KWOK_VERSION" "" \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" sigs.k8s.io/kwok/cmd/kwok
buildkit
rootlesskit
helm_
notation_
kstatus_check

# One directory of links to the pinned binaries, keyed by the versions file.
key=$(sha256sum "$here/tools.versions" | cut -c1-12)
bin="$cache/bin-$key"
mkdir -p "$bin"
ln -sfn "$cache/etcd-$ETCD_VERSION/etcd" "$bin/etcd"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  ln -sfn "$cache/kubernetes-$KUBERNETES_VERSION/$b" "$bin/$b"
done
for b in kubelet kubectl; do
  ln -sfn "$cache/kubelet-$KUBERNETES_VERSION/$b" "$bin/$b"
done
ln -sfn "$cache/kwok-$KWOK_VERSION/kwok" "$bin/kwok"
for b in buildkitd buildctl; do
  ln -sfn "$cache/buildkit-$BUILDKIT_VERSION/$b" "$bin/$b"
done
ln -sfn "$cache/rootlesskit-$ROOTLESSKIT_VERSION/rootlesskit" "$bin/rootlesskit"
ln -sfn "$cache/helm-$HELM_VERSION/helm" "$bin/helm"
ln -sfn "$cache/notation-$NOTATION_VERSION/notation" "$bin/notation"
ln -sfn "$kstatus_dir/kstatus-check" "$bin/kstatus-check"
$quiet || log "all tools ready in $bin"
echo "$bin"
