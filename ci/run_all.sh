#!/usr/bin/env bash
# Run every notebook headlessly on the embedded synthetic benchmark.
#   bash ci/run_all.sh                 # cpu profile (a laptop, minutes per notebook)
#   PROFILE=smoke bash ci/run_all.sh   # about a minute per notebook
# Extra arguments go to the runner, e.g. --only 01,03
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup_env.sh
exec .venv/bin/python -m shortcut_nb run --profile "${PROFILE:-cpu}" --out "${OUT:-runs/report}" "$@"
