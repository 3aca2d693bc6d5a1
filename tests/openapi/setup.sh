#!/usr/bin/env bash
# Installs schemathesis (pinned, from PyPI) into tests/openapi/.venv for the OpenAPI fuzz test.
# Idempotent; prints little.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VERSION=4.32.5
if [[ -x .venv/bin/st ]] && .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$VERSION')" 2>/dev/null; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
