#!/usr/bin/env bash
# ctest's entry for deploy/k8s (tests/cmake/k8s.cmake): runs check_manifests.py with the validator's environment,
# which scripts/install-deps.sh creates (tests/k8s/validator_env.sh). Arguments go to check_manifests.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$(bash "$here/validator_env.sh" --check)"
exec "$venv/bin/python" "$here/check_manifests.py" "$@"
