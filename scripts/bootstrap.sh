# Sourced by run_all.sh and run_tests.sh: make sure a suitable Python environment is active.
#
# - An active environment (virtualenv or conda) that already imports paperlib, torch and
#   papermill is used as it is.
# - Otherwise a local .venv is created (once) and the pinned lock plus the package (editable)
#   are installed into it. A stamp holding the lock's hash makes later runs start in seconds.
# Sets $PY to the interpreter to use.

_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="$_root/.venv"
_lock="$_root/requirements-lock.txt"

_suitable() {
  "$1" - <<'PY' >/dev/null 2>&1
import importlib.util, sys
need = ("torch", "papermill", "jupytext", "sklearn", "librosa", "mlxtend", "pytest", "paperlib")
sys.exit(0 if all(importlib.util.find_spec(m) for m in need) else 1)
PY
}

_hash() { cat "$_lock" "$_root/pyproject.toml" | sha256sum | cut -d' ' -f1; }

if [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] && [ "${VIRTUAL_ENV:-}" != "$_venv" ] \
   && command -v python >/dev/null && _suitable python; then
  PY="$(command -v python)"
else
  if [ ! -x "$_venv/bin/python" ]; then
    _base=""
    for cand in python3.11 python3.12 python3.10 python3; do
      if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        _base="$cand"; break
      fi
    done
    [ -n "$_base" ] || { echo "error: Python >= 3.10 is needed to create .venv" >&2; exit 1; }
    echo "bootstrap: creating $_venv with $($_base --version)"
    "$_base" -m venv "$_venv" || { echo "error: could not create $_venv (is the venv module installed?)" >&2; exit 1; }
  fi
  PY="$_venv/bin/python"
  if [ "$(cat "$_venv/.paperlib-stamp" 2>/dev/null)" != "$(_hash)" ] || ! _suitable "$PY"; then
    echo "bootstrap: installing the pinned dependencies (requirements-lock.txt) ..."
    _log="$_venv/bootstrap.log"
    "$PY" -m pip install -q --upgrade pip >"$_log" 2>&1
    "$PY" -m pip install -q -r "$_lock" >>"$_log" 2>&1 \
      || { tail -20 "$_log" >&2; echo "error: installing requirements-lock.txt failed; see $_log" >&2; exit 1; }
    "$PY" -m pip install -q --no-deps -e "$_root" >>"$_log" 2>&1 \
      || { tail -20 "$_log" >&2; echo "error: installing paperlib failed; see $_log" >&2; exit 1; }
    _hash > "$_venv/.paperlib-stamp"
    echo "bootstrap: environment ready"
  fi
fi
export PY
