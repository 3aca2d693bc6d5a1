#!/bin/sh
# Builds the plugin and assembles its package in ./package (manifest.toml, plugin.wasm, assets/).
set -eu
cd "$(dirname "$0")"
SDK="${BELFRY_SDK:-__SDK__}"
if [ ! -f "$SDK/plugins/sdk/Cargo.toml" ]; then
  echo "build.sh: no belfry plugin SDK at $SDK/plugins/sdk (set BELFRY_SDK to a belfry checkout)" >&2
  exit 1
fi
cargo build --release --target wasm32-wasip2
TARGET="${CARGO_TARGET_DIR:-target}"
rm -rf package
mkdir -p package
cp manifest.toml package/
cp "$TARGET/wasm32-wasip2/release/__CRATE__.wasm" package/plugin.wasm
if [ -d assets ]; then cp -R assets package/assets; fi
echo "built package/ (next: belfry plugin check package)"
