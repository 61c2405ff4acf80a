#!/usr/bin/env bash
# Install the browser the browser tests drive: Debian's chromium package (headless, no download by a
# test tool). Idempotent and quiet: does nothing when Chromium is already there.
#   bash ci/install_browser.sh
# SHORTCUT_NB_CHROMIUM points at another Chromium build (then nothing is installed).
# JupyterLab and Playwright's Python client come from pip (the project's `browser` extra, ci/setup_env.sh).
set -euo pipefail
CHROMIUM="${SHORTCUT_NB_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ -n "${SHORTCUT_NB_CHROMIUM:-}" ]; then
  echo "[browser] SHORTCUT_NB_CHROMIUM=$CHROMIUM is not an executable" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] $CHROMIUM is missing and apt-get is not available: install Chromium and set SHORTCUT_NB_CHROMIUM" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "[browser] $CHROMIUM is missing; installing it needs root (run: sudo apt-get install -y chromium)" >&2
    exit 1
  fi
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
echo "[browser] installing chromium with apt-get"
# Try the local package lists first; refresh them only when that fails (a fresh image has none).
if ! $SUDO apt-get install -y -q chromium >"$log" 2>&1; then
  if ! { $SUDO apt-get update -q >>"$log" 2>&1 && $SUDO apt-get install -y -q chromium >>"$log" 2>&1; }; then
    echo "[browser] apt-get install chromium failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "[browser] apt-get finished but $CHROMIUM is missing" >&2
  exit 1
fi
echo "[browser] $("$CHROMIUM" --version 2>/dev/null | head -n 1)"
