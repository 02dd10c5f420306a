#!/usr/bin/env bash
# Create .venv with Python 3.10 and install the pinned dependencies.
# Idempotent: a second run only checks a stamp and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.xiaoer-installed"

find_python() {
  if [[ -n "${XIAOER_PYTHON:-}" ]]; then echo "$XIAOER_PYTHON"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local p
    p="$(pyenv root)/versions/3.10.13/bin/python3.10"
    if [[ -x "$p" ]]; then echo "$p"; return; fi
  fi
  for p in "${PYENV_ROOT:-$HOME/.pyenv}/versions/3.10.13/bin/python3.10" /root/.pyenv/versions/3.10.13/bin/python3.10; do
    if [[ -x "$p" ]]; then echo "$p"; return; fi
  done
  if command -v python3.10 >/dev/null 2>&1; then command -v python3.10; return; fi
  echo "error: Python 3.10 not found (Rasa 3.6 needs Python 3.10). Install it with pyenv (pyenv install 3.10.13) or set XIAOER_PYTHON." >&2
  exit 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
  PY="$(find_python)"
  echo "==> creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi

# the console's charts (package.json, npm): copied into its static files, cheap when done
scripts/assets.sh

want="$(cat requirements/*.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" == "$have" ]]; then
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
PIP=("$VENV/bin/python" -m pip)
echo "==> installing pinned dependencies into $VENV (first run: about 4 minutes)"
# requirements/lock.txt pins every package, pip and the build tools included; it is compiled
# from pyproject.toml's dependencies by `make lock` and is also the constraints file here.
"${PIP[@]}" install -q -c requirements/lock.txt pip
# Build tools first (setuptools, wheel, Cython, numpy at the lock's versions): pkuseg is an
# sdist whose setup.py imports numpy and Cython, so the lock is installed without build
# isolation and its few sdists build against these. pkuseg's default segmentation model
# ships inside the package (pkuseg/models/default).
"${PIP[@]}" install -q -c requirements/lock.txt -r requirements/build.txt
"${PIP[@]}" install -q --no-build-isolation -r requirements/lock.txt
"${PIP[@]}" install -q --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import rasa, pkuseg, xiaoer; print('==> rasa', rasa.__version__, 'ready')"
echo "$want" > "$STAMP"
