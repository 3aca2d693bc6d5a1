#!/usr/bin/env bash
# Installs aiosmtpd (pinned, from PyPI) into a venv for tests/it/adapters.rs, which runs
# tests/smtp/server.py on 127.0.0.1 as the SMTP server the smtp adapter talks to.
# Usage: setup.sh VENV_DIR (the test passes a directory under the cargo target dir).
# Idempotent; prints little.
set -euo pipefail
VENV=${1:?usage: setup.sh VENV_DIR}
VERSION=1.4.6
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('aiosmtpd') != '$VERSION')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$VERSION"
