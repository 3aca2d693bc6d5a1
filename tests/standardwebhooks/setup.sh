#!/usr/bin/env bash
# Installs the official Standard Webhooks Python package (pinned, from PyPI) into a venv for
# tests/it/endpoints.rs, which runs tests/standardwebhooks/receiver.py on 127.0.0.1 as an
# endpoint that verifies every request belfry posts with that package, not with our code.
# Usage: setup.sh VENV_DIR (the test passes a directory under the cargo target dir).
# Idempotent; prints little.
set -euo pipefail
VENV=${1:?usage: setup.sh VENV_DIR}
VERSION=1.1.0
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('standardwebhooks') != '$VERSION')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "standardwebhooks==$VERSION"
