#!/usr/bin/env bash
# Debian packages the test suite starts as real servers or drives:
#   redis-server     Redis lock store of the scale-out profile
#   postgresql-15    PostgreSQL tracker store of the scale-out profile
#   chromium         the browser of the console's browser tests (Playwright drives it;
#                    no browser is ever downloaded by Playwright)
#   fonts-wqy-microhei  a CJK font, so the console's screenshots show Chinese text
#   nodejs npm       install the console's charts (package.json: ECharts; scripts/assets.sh)
# Installs only what is missing; a second run costs a few dpkg queries.
# With arguments, only those packages (scripts/assets.sh: `system-deps.sh nodejs npm`).
set -euo pipefail

packages=("$@")
[[ ${#packages[@]} -eq 0 ]] && packages=(redis-server postgresql-15 chromium fonts-wqy-microhei nodejs npm)
missing=()
for pkg in "${packages[@]}"; do
  # Node.js from another source (NodeSource's nodejs bundles npm, and Debian's npm package
  # conflicts with it): the commands are what the project needs
  if [[ $pkg == nodejs ]] && command -v node >/dev/null 2>&1; then continue; fi
  if [[ $pkg == npm ]] && command -v npm >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
    echo "error: missing Debian packages: ${missing[*]} (run as root: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
fi
echo "==> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >/dev/null 2>&1 || true
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
