#!/usr/bin/env bash
# The whole test suite: lint, data validation, one training run on the real config,
# then pytest (unit, conversation tests with `rasa test`, end-to-end with real servers).
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2
BIN=.venv/bin

echo "==> ruff and mypy"
"$BIN/ruff" check xiaoer actions tests bench
"$BIN/ruff" format --check --quiet xiaoer actions tests bench
"$BIN/mypy"

echo "==> rasa data validate --fail-on-warnings"
if ! "$BIN/rasa" data validate --fail-on-warnings >/tmp/xiaoer-validate.log 2>&1; then
  grep -v -E "DeprecationWarning|declare_namespace|pkg_resources|xla_computation" /tmp/xiaoer-validate.log | tail -40
  exit 1
fi

echo "==> training once for the whole run (skipped when the model is up to date)"
start=$(date +%s)
"$BIN/rasa" train --out models --quiet >/tmp/xiaoer-train.log 2>&1 || { tail -50 /tmp/xiaoer-train.log; exit 1; }
echo "    done in $(( $(date +%s) - start )) s"
MODEL="$(ls -t models/*.tar.gz | head -1)"
export XIAOER_TEST_MODEL="$PWD/$MODEL"

echo "==> pytest"
exec "$BIN/python" -m pytest -p no:cacheprovider "$@"
