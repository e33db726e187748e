# Sourced by run_all.sh and run_tests.sh: make sure a suitable Python environment is active.
#
# - An active environment (virtualenv or conda) of a supported Python that already imports
#   paperlib, torch and papermill is used as it is.
# - Otherwise a local .venv is created (once) and the pinned lock plus the package (editable)
#   are installed into it. A stamp holding the locks' hash makes later runs start in seconds.
#
# Python: the floor is pyproject.toml's requires-python (one place). PAPERLIB_PYTHON=/path/to/python
# picks the interpreter for .venv; otherwise the newest python3.X on PATH that meets the floor.
#
# torch (PAPERLIB_TORCH):
#   auto (default)  the CPU build from the PyTorch CPU index (requirements-torch-cpu.txt); when
#                   that index cannot be reached within a few seconds, torch from PyPI instead
#                   (requirements-torch-cuda.txt: on Linux x86_64 that is the CUDA build, unless
#                   pip's own configuration offers a local CPU wheel), with a message saying so
#   cpu             the CPU build only; fails when the CPU index is unreachable
#   cuda            the CUDA build from PyPI, with the CUDA libraries torch pins
# The build that ends up installed is printed either way.
#
# Sets $PY to the interpreter to use.

_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="$_root/.venv"
_lock="$_root/requirements-lock.txt"
_torch_cpu="$_root/requirements-torch-cpu.txt"
_torch_cuda="$_root/requirements-torch-cuda.txt"
_cpu_index="https://download.pytorch.org/whl/cpu"
# the floor, e.g. 3.11, from `requires-python = ">=3.11"`
_floor="$(sed -n 's/^requires-python *= *">= *\([0-9][0-9.]*\)".*/\1/p' "$_root/pyproject.toml")"
[ -n "$_floor" ] || { echo "error: pyproject.toml has no requires-python = \">=X.Y\" line" >&2; exit 1; }
_floor_tuple="(${_floor/./, })"

_meets_floor() { "$1" -c "import sys; sys.exit(sys.version_info[:2] < $_floor_tuple)" >/dev/null 2>&1; }

_suitable() {
  _meets_floor "$1" || return 1
  "$1" - <<'PY' >/dev/null 2>&1
import importlib.util, sys
need = ("torch", "papermill", "jupytext", "sklearn", "librosa", "mlxtend", "pytest", "paperlib")
sys.exit(0 if all(importlib.util.find_spec(m) for m in need) else 1)
PY
}

_torch_choice="${PAPERLIB_TORCH:-auto}"
case "$_torch_choice" in
  auto|cpu|cuda) ;;
  *) echo "error: PAPERLIB_TORCH=$_torch_choice is not accepted; use auto (default), cpu or cuda" >&2
     exit 1 ;;
esac

_hash() {
  { cat "$_lock" "$_torch_cpu" "$_torch_cuda" "$_root/pyproject.toml"; echo "$_torch_choice"; } \
    | sha256sum | cut -d' ' -f1
}

_pick_python() {
  # prints the interpreter for .venv, or explains on stderr why none qualifies
  if [ -n "${PAPERLIB_PYTHON:-}" ]; then
    if _meets_floor "$PAPERLIB_PYTHON"; then echo "$PAPERLIB_PYTHON"; return 0; fi
    echo "error: PAPERLIB_PYTHON=$PAPERLIB_PYTHON is $("$PAPERLIB_PYTHON" --version 2>&1 || echo 'not runnable');" \
         "paperlib needs Python >= $_floor (pyproject.toml requires-python)" >&2
    return 1
  fi
  local cand seen=""
  for cand in python3.14 python3.13 python3.12 python3.11 python3 python; do
    command -v "$cand" >/dev/null 2>&1 || continue
    if _meets_floor "$cand"; then echo "$cand"; return 0; fi
    seen="$seen $cand ($("$cand" --version 2>&1 | cut -d' ' -f2))"
  done
  echo "error: paperlib needs Python >= $_floor (pyproject.toml requires-python) to create .venv;" \
       "found on PATH:${seen:- none}. Install Python $_floor or newer (apt-get install python$_floor," \
       "pyenv install $_floor, or conda create -n paperlib python=$_floor), then rerun, or point" \
       "PAPERLIB_PYTHON at it." >&2
  return 1
}

_cpu_index_reachable() {
  # a short timeout: where the index is blocked, the fallback must cost seconds, not minutes
  "$PY" - "$_cpu_index/torch/" <<'PY' 2>&1
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5).close()
except Exception as err:
    print(type(err).__name__, str(getattr(err, "reason", err))[:80])
    sys.exit(1)
PY
}

_install_torch() {
  local why
  case "$_torch_choice" in
    cpu)
      echo "bootstrap: torch: the CPU build from $_cpu_index (PAPERLIB_TORCH=cpu)"
      "$PY" -m pip install -q --no-deps --retries 1 --timeout 10 -r "$_torch_cpu" >>"$_log" 2>&1 ;;
    cuda)
      echo "bootstrap: torch: the CUDA build from PyPI (PAPERLIB_TORCH=cuda)"
      "$PY" -m pip install -q -r "$_torch_cuda" >>"$_log" 2>&1 ;;
    auto)
      if why="$(_cpu_index_reachable)"; then
        echo "bootstrap: torch: the CPU build from $_cpu_index (PAPERLIB_TORCH=cuda selects CUDA)"
        "$PY" -m pip install -q --no-deps -r "$_torch_cpu" >>"$_log" 2>&1
      else
        echo "bootstrap: torch: the PyTorch CPU index is unreachable ($why); installing torch" \
             "from PyPI instead (on Linux x86_64 a CUDA build, unless pip offers a local CPU wheel)"
        "$PY" -m pip install -q -r "$_torch_cuda" >>"$_log" 2>&1
      fi ;;
  esac
}

if [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] && [ "${VIRTUAL_ENV:-}" != "$_venv" ] \
   && command -v python >/dev/null && _suitable python; then
  PY="$(command -v python)"
else
  if [ ! -x "$_venv/bin/python" ] || ! _meets_floor "$_venv/bin/python"; then
    _base="$(_pick_python)" || exit 1
    echo "bootstrap: creating $_venv with $("$_base" --version 2>&1)"
    "$_base" -m venv --clear "$_venv" \
      || { echo "error: could not create $_venv (is the venv module installed?)" >&2; exit 1; }
  fi
  PY="$_venv/bin/python"
  if [ "$(cat "$_venv/.paperlib-stamp" 2>/dev/null)" != "$(_hash)" ] || ! _suitable "$PY"; then
    echo "bootstrap: installing the pinned dependencies (requirements-lock.txt) ..."
    _log="$_venv/bootstrap.log"
    "$PY" -m pip install -q --upgrade pip >"$_log" 2>&1
    "$PY" -m pip install -q -r "$_lock" >>"$_log" 2>&1 \
      || { tail -20 "$_log" >&2; echo "error: installing requirements-lock.txt failed; see $_log" >&2; exit 1; }
    _install_torch \
      || { tail -20 "$_log" >&2; echo "error: installing torch failed; see $_log" >&2; exit 1; }
    echo "bootstrap: torch $("$PY" -c 'import torch; print(torch.__version__, "(CUDA " + torch.version.cuda + " build)" if torch.version.cuda else "(CPU build)")')"
    "$PY" -m pip install -q --no-deps -e "$_root" >>"$_log" 2>&1 \
      || { tail -20 "$_log" >&2; echo "error: installing paperlib failed; see $_log" >&2; exit 1; }
    _hash > "$_venv/.paperlib-stamp"
    echo "bootstrap: environment ready"
  fi
fi
export PY
