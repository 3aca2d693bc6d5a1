#!/usr/bin/env bash
# Installs the toolchains that build belfry plugins written in JavaScript and Python, into the
# repository's ignored directories, from the package registries only:
#
#   sdk/js/node_modules          componentize-js and jco, exactly as sdk/js/package-lock.json
#                                pins them (npm ci)
#   sdk/js/types                 the contract's TypeScript declarations, generated from
#                                wit/plugin@1 by jco's bindgen (sdk/js/scripts/types.mjs)
#   target/guest-tools/venv      componentize-py (pinned below), in a venv of its own
#   target/guest-tools/wit/wasi  the WASI 0.2 WIT (wasi:http and what it uses) that a Python
#                                channel adapter imports, copied from the wasmtime-wasi-http
#                                crate the host itself links, so guest and host agree on the
#                                version
#
# Idempotent: a second run with everything in place takes about a second and prints nothing.
# Usage: sdk/install-guest-tools.sh   (BELFRY_GUEST_TOOLS=DIR moves target/guest-tools)
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${BELFRY_GUEST_TOOLS:-$ROOT/target/guest-tools}
say() { echo "install-guest-tools: $*" >&2; }

# --- JavaScript: componentize-js (npm ci, only when the lock file changed since last time) ---
command -v npm >/dev/null || { say "npm is missing (install Node.js 18 or newer)"; exit 1; }
JS=$ROOT/sdk/js
stamp=$JS/node_modules/.belfry-lock
if [[ ! -f $stamp ]] || ! cmp -s "$JS/package-lock.json" "$stamp"; then
  say "npm ci in sdk/js (componentize-js, jco)"
  (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$JS/package-lock.json" "$stamp"
fi
# The contract's TypeScript declarations (sdk/js/types/<world>/), regenerated whenever
# wit/plugin@1 is newer than them.
if [[ ! -d $JS/types ]] || [[ -n $(find "$ROOT/wit/plugin@1" -newer "$JS/types" -name '*.wit' 2>/dev/null) ]]; then
  (cd "$JS" && node scripts/types.mjs 2>/dev/null) || { say "generating sdk/js/types failed: cd sdk/js && npm run types"; exit 1; }
  touch "$JS/types"
fi

# --- Python: componentize-py in a venv ---
command -v python3 >/dev/null || { say "python3 is missing (3.11 or newer)"; exit 1; }
# belfry-build-py reads manifests with tomllib (3.11); componentize-py brings its own CPython
# for what runs inside the component.
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { say "python3 is $(python3 -V 2>&1), belfry-build-py needs 3.11 or newer"; exit 1; }
VENV=$TOOLS/venv
if ! [[ -x $VENV/bin/componentize-py ]] || ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('componentize-py') != '$COMPONENTIZE_PY_VERSION')" 2>/dev/null; then
  say "componentize-py $COMPONENTIZE_PY_VERSION into ${VENV#"$ROOT"/}"
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

# --- WASI WIT for Python adapters (wasi:http/outgoing-handler) ---
WASI=$TOOLS/wit/wasi
if ! [[ -f $WASI/http.wit ]]; then
  command -v cargo >/dev/null || { say "cargo is missing (rustup; see README.md)"; exit 1; }
  say "WASI WIT from the host's wasmtime-wasi-http into ${WASI#"$ROOT"/}"
  src=$(cd "$ROOT" && cargo metadata --format-version 1 --locked \
    | "$VENV/bin/python" -c '
import json, os, sys
meta = json.load(sys.stdin)
hits = [p for p in meta["packages"] if p["name"] == "wasmtime-wasi-http"]
if len(hits) != 1:
    sys.exit("expected one wasmtime-wasi-http in Cargo.lock, found %d" % len(hits))
print(os.path.join(os.path.dirname(hits[0]["manifest_path"]), "wit", "deps"))')
  [[ -f $src/http.wit ]] || { say "no http.wit in $src"; exit 1; }
  mkdir -p "$WASI.tmp"
  cp "$src"/*.wit "$WASI.tmp/"
  rm -rf "$WASI" && mv "$WASI.tmp" "$WASI"
fi
