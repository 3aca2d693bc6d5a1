#!/usr/bin/env bash
# Installs what the browser test needs: Debian's chromium (when /usr/bin/chromium is missing)
# and playwright-core from package-lock.json. Idempotent; prints little.
set -euo pipefail

# The browser tests run side by side and each calls this: one installs, the others wait (two
# apt-get runs would fight over dpkg's lock, and `npm ci` removes node_modules under a running
# node), and an install already at the locked version is kept.
exec 9>"${TMPDIR:-/tmp}/belfry-browser-setup.lock"
flock 9

if [[ ! -x /usr/bin/chromium ]]; then
  as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "setup.sh: /usr/bin/chromium is missing and we are not root (no sudo to install it)" >&2
      exit 1
    fi
  fi
  echo "setup.sh: installing chromium from Debian" >&2
  ${as_root[@]+"${as_root[@]}"} apt-get update -qq
  ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

cd "$(dirname "${BASH_SOURCE[0]}")"
locked=$(node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version")
installed=$(node -p "require('./node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [[ "$installed" != "$locked" ]]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
