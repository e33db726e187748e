#!/usr/bin/env bash
# Run the test suite: ./run_tests.sh [pytest args]
# Sets up .venv on first use (see scripts/bootstrap.sh). A run that collects no test fails.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
"$PY" -m ruff check paperlib tests benchmarks notebooks scripts
"$PY" -m paperlib.suite.notebooks check
exec "$PY" -m pytest "$@"
