#!/usr/bin/env bash
# Run the test suite: ./run_tests.sh [pytest args]
# Sets up .venv on first use (see scripts/bootstrap.sh). A run that collects no test fails.
# The tests run on every core, at most 4, one pytest-xdist worker per test file (each test is
# one-threaded, tests/conftest.py); pass -n 0 to run them in this process, e.g. under a debugger.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
"$PY" -m ruff check paperlib tests benchmarks notebooks scripts
"$PY" -m paperlib.suite.notebooks check
xdist=()
if "$PY" -c "import xdist" >/dev/null 2>&1; then
  workers="$(nproc 2>/dev/null || echo 1)"
  [ "$workers" -le 4 ] || workers=4
  xdist=(-n "$workers" --dist loadfile)
else
  echo "run_tests.sh: pytest-xdist is not installed in this environment; the tests run in one process"
fi
exec "$PY" -m pytest ${xdist[@]+"${xdist[@]}"} "$@"
