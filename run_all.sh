#!/usr/bin/env bash
# Regenerate every figure and table: ./run_all.sh [--profile smoke|quick|paper] [--only NAME]
#                                                   [--jobs N] [--force]
#                                                   [--launcher slurm|local [--cluster-config FILE]]
# Sets up .venv on first use (see scripts/bootstrap.sh), then runs the notebooks with papermill.
# With --launcher, the notebooks' training runs are first trained as submitit jobs
# (python -m paperlib.suite.launch, with the same --profile, --only and -p); the notebooks then find
# every run folder complete and only evaluate.
set -euo pipefail
cd "$(dirname "$0")"
launch=()
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --launcher | --cluster-config)
      [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }
      launch+=("$1" "$2"); shift 2 ;;
    --launcher=* | --cluster-config=*) launch+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
source scripts/bootstrap.sh
if [ ${#launch[@]} -gt 0 ]; then
  "$PY" -m paperlib.suite.launch "${launch[@]}" ${args[@]+"${args[@]}"}
fi
exec "$PY" -m paperlib.suite.runner ${args[@]+"${args[@]}"}
