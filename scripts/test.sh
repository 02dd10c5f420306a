#!/usr/bin/env bash
# The whole test suite: the lock check, lint, data validation, one training run on the real config,
# then pytest (unit, conversation tests with `rasa test`, end-to-end with real servers).
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2
BIN=.venv/bin

# first, and offline: the lock must be compiled from the dependencies pyproject.toml declares
echo "==> requirements/lock.txt against pyproject.toml"
"$BIN/python" scripts/check_lock.py

# real servers and the browser the tests start (redis-server, postgresql-15, chromium)
bash scripts/system-deps.sh

echo "==> ruff and mypy"
"$BIN/ruff" check xiaoer actions tests bench scripts
"$BIN/ruff" format --check --quiet xiaoer actions tests bench scripts
"$BIN/mypy"

echo "==> rasa data validate --fail-on-warnings"
mkdir -p var
if ! "$BIN/rasa" data validate --fail-on-warnings >var/validate.log 2>&1; then
  grep -v -E "DeprecationWarning|declare_namespace|pkg_resources|xla_computation" var/validate.log | tail -40
  exit 1
fi

echo "==> training once for the whole run (skipped when the model is up to date)"
mkdir -p var
"$BIN/xiaoer" train --quiet --print-path >var/train.log 2>&1 || { tail -50 var/train.log; exit 1; }
grep "==>" var/train.log || true
MODEL="$(tail -1 var/train.log)"
export XIAOER_TEST_MODEL="$MODEL"

echo "==> pytest"
exec "$BIN/python" -m pytest -p no:cacheprovider "$@"
