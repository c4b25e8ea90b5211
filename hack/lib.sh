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
