#!/usr/bin/env bash
# Regenerate every figure and table: ./run_all.sh [--profile smoke|quick|paper] [--only NAME]
#                                                   [--jobs N] [--force]
# Sets up .venv on first use (see scripts/bootstrap.sh), then runs the notebooks with papermill.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec "$PY" -m paperlib.runner "$@"
