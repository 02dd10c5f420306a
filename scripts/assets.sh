#!/usr/bin/env bash
# The agent console's front-end packages (package.json: Apache ECharts for the analytics
# dashboard), installed from npm and copied into the console's own static files: the
# console serves them itself, never from a CDN. Idempotent: a second run only copies.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=xiaoer/console/static/vendor
BUILT=node_modules/echarts/dist/echarts.min.js

if [[ ! -f "$BUILT" || package-lock.json -nt node_modules/.package-lock.json ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    scripts/system-deps.sh nodejs npm  # a fresh machine: Debian's Node.js and npm
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found: install Node.js and npm (scripts/system-deps.sh) for the console's charts" >&2
    exit 1
  fi
  echo "==> installing the console's front-end packages (npm ci)"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
fi
mkdir -p "$DEST"
cp "$BUILT" "$DEST/echarts.min.js"
cp node_modules/echarts/LICENSE "$DEST/echarts.LICENSE"
