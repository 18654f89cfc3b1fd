#!/usr/bin/env bash
# Configures and builds tuneforge into build/ (Ninja, ccache when present). Used by quickstart.sh and test.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
jobs="${TUNEFORGE_BUILD_JOBS:-$(nproc)}"
cmake -S "$here" -B "$here/build" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$here/build" -j "$jobs"
