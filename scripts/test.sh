#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, lints the protos, and runs ctest
# (unit, PostgreSQL, gRPC end-to-end and the buf curl test against the real binary).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/install-deps.sh
bash scripts/build.sh
echo "== buf lint"
tools/node_modules/.bin/buf lint
echo "== ctest"
cd build
ctest --output-on-failure -j "${TUNEFORGE_TEST_JOBS:-2}"
