#!/usr/bin/env bash
# Run the test suite (unit tests, and every notebook in the smoke profile through the runner).
# Extra arguments go to pytest, e.g. -m "not notebook" or -k sscore
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup_env.sh
bash ci/install_browser.sh  # Debian's chromium for the browser tests of the widgets
exec .venv/bin/python -m pytest "$@"
