#!/usr/bin/env bash
# Creates (once) and prints the folder of the small Python environment that validates deploy/k8s: the pins in
# tests/k8s/requirements.txt (kubernetes-validate, which bundles the Kubernetes JSON schemas, so nothing is fetched
# when the test runs). Kept beside scripts/python-env.sh's environment, keyed the same way (Python version and pins).
#   TUNEFORGE_CACHE   cache root (default ${XDG_CACHE_HOME:-~/.cache}/tuneforge)
#   TUNEFORGE_PYTHON  the Python to create it with (default python3)
# Usage: validator_env.sh           -> creates it when missing (PyPI), prints its folder; scripts/install-deps.sh runs this
#        validator_env.sh --check   -> prints its folder, or says how to create it and exits 1 (the tests use this)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
req="$here/requirements.txt"
py="${TUNEFORGE_PYTHON:-python3}"
cache="${TUNEFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tuneforge}"
pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( (echo "$pyver"; grep -v '^#' "$req") | sha256sum | cut -c1-16)"
venv="$cache/k8s-validate-$pyver-$key"
if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi
if [ "${1:-}" = "--check" ]; then
  echo "the Kubernetes schema validator is not installed ($venv); run: bash scripts/install-deps.sh" >&2
  exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.k8s-validate.lock"
flock 9
if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi
echo "tuneforge: creating the Kubernetes schema validator's environment $venv (about 150 MB, once)" >&2
rm -rf "$venv.partial"
"$py" -m venv "$venv.partial" >&2
"$venv.partial/bin/python" -m pip install -q --progress-bar off --disable-pip-version-check -r "$req" >&2
rm -rf "$venv"
mv "$venv.partial" "$venv"
grep -rlI --exclude-dir=site-packages "$venv.partial" "$venv" | xargs -r sed -i "s#$venv.partial#$venv#g"
"$venv/bin/python" -c 'import kubernetes_validate, yaml' >&2
touch "$venv/.complete"
echo "$venv"
