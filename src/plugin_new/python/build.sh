#!/bin/sh
# Builds the plugin with the belfry Python SDK and assembles its package in ./package.
set -eu
cd "$(dirname "$0")"
SDK="${BELFRY_SDK:-__SDK__}"
BUILD="$SDK/sdk/python/bin/belfry-build-py"
if [ ! -f "$BUILD" ]; then
  echo "build.sh: no $BUILD (set BELFRY_SDK to a belfry checkout)" >&2
  exit 1
fi
rm -rf package
mkdir -p target
bash "$BUILD" . -o target/__NAME__.wasm --package package
echo "built package/ (next: belfry plugin check package)"
