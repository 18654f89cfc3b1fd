#!/usr/bin/env bash
# Configures and builds tuneforge into build/ (Ninja, ccache when present) against the torch of the project's
# Python environment (scripts/python-env.sh), or the one TUNEFORGE_TORCH names (a Python with torch, a virtual
# environment or a libtorch folder). Used by quickstart.sh and test.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
jobs="${TUNEFORGE_BUILD_JOBS:-$(nproc)}"
if [ -z "${TUNEFORGE_TORCH:-}" ]; then
  TUNEFORGE_TORCH="$(bash "$here/scripts/python-env.sh")/bin/python"
fi
cmake -S "$here" -B "$here/build" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" \
  -DTUNEFORGE_TORCH="$TUNEFORGE_TORCH" >/dev/null
cmake --build "$here/build" -j "$jobs"
