# Shared by hack/*.sh: the project's Python environment in .venv, installed from PyPI and
# refreshed whenever pyproject.toml changes.
ensure_venv() {
  local root stamp want
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  stamp="$root/.venv/.installed"
  want=$(sha256sum "$root/pyproject.toml" | cut -c1-16)
  if [ ! -x "$root/.venv/bin/python" ]; then
    echo "[setup] creating $root/.venv" >&2
    python3 -m venv "$root/.venv"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing the operator and its test tools into .venv" >&2
    "$root/.venv/bin/pip" install --quiet --upgrade pip >&2
    "$root/.venv/bin/pip" install --quiet -e "$root[dev]" >&2
    echo "$want" >"$stamp"
  fi
}

# Shared by hack/*.sh: the Debian packages the test environment runs (runc for buildkitd's OCI
# worker, the Docker engine, the distribution registry, a static busybox for the stand-in base
# image, git, prometheus for promtool and a real server that check the chart's alerts and
# dashboard, debootstrap for the real node's Debian image and containernetworking-plugins for
# its loopback CNI plugin). Installs only what is missing (`apt-get update` once, then one install);
# apt's output goes to a log that is shown only when it fails. Needs root, or sudo.
ensure_debian_packages() {
  local wanted=(runc docker.io docker-registry busybox-static git prometheus debootstrap
    containernetworking-plugins) missing=() pkg
  local sudo=() log
  for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed; then
      missing+=("$pkg")
    fi
  done
  [ "${#missing[@]}" -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  log=$(mktemp)
  echo "[setup] installing Debian packages: ${missing[*]} (apt-get update, then install)" >&2
  if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "[setup] installing ${missing[*]} failed (whole log: $log)" >&2
    return 1
  fi
  rm -f "$log"
  echo "[setup] installed ${missing[*]}" >&2
}
