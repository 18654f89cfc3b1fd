#!/usr/bin/env bash
# Installs every Debian and npm package that tuneforge's build, tests and benchmarks need.
# Safe to run again: apt and npm skip what is already there.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake pkg-config ninja-build ccache git ca-certificates curl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libpqxx-dev libabsl-dev libspdlog-dev libcurl4-openssl-dev nlohmann-json3-dev
  libpcre2-dev libcpp-httplib-dev libssl-dev openssl
  python3-venv
  postgresql postgresql-contrib
  libgtest-dev libgmock-dev libbenchmark-dev
)
# Node.js and npm run buf; a machine that already has them (any vendor) keeps its own.
if ! command -v npm >/dev/null 2>&1; then APT_PACKAGES+=(nodejs npm); fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "tuneforge: installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# buf: a real external gRPC client (buf curl) and the proto linter, from npm.
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$here/tools/node_modules/.bin/buf" ]; then
  echo "tuneforge: installing buf from npm into tools/node_modules"
  (cd "$here/tools" && npm install --no-audit --no-fund --silent)
fi
# The Kubernetes schema validator that tests deploy/k8s: a small pinned Python environment, once per machine
# (tests/k8s/validator_env.sh). Not in the Docker build, whose context holds this script alone.
if [ -f "$here/tests/k8s/validator_env.sh" ]; then
  bash "$here/tests/k8s/validator_env.sh" >/dev/null
fi
echo "tuneforge: dependencies ready"
