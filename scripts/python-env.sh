#!/usr/bin/env bash
# Creates (once) and prints the path of tuneforge's Python environment: pinned torch (whose wheel carries
# libtorch, which the trainer builds against) and the Hugging Face upstream the tests compare with.
# It lives outside the clone, keyed by the Python version and scripts/python-requirements.txt, so every
# clone and CI run on a machine shares one copy of the multi-GB torch wheel.
#   TUNEFORGE_CACHE   cache root (default ${XDG_CACHE_HOME:-~/.cache}/tuneforge)
#   TUNEFORGE_PYTHON  the Python to create it with (default python3)
# Usage: bash scripts/python-env.sh   -> prints the environment's folder on stdout; progress on stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
req="$here/scripts/python-requirements.txt"
py="${TUNEFORGE_PYTHON:-python3}"
cache="${TUNEFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tuneforge}"
pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( (echo "$pyver"; grep -v '^#' "$req") | sha256sum | cut -c1-16)"
venv="$cache/pyenv-$pyver-$key"
if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi

mkdir -p "$cache"
# One installer at a time per cache; a second clone waits and then reuses the result.
exec 9>"$cache/.pyenv.lock"
flock 9
if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi
echo "tuneforge: creating the Python environment $venv (torch and the Hugging Face libraries; several GB, once)" >&2
rm -rf "$venv.partial"
"$py" -m venv "$venv.partial" >&2
"$venv.partial/bin/python" -m pip install -q --upgrade pip >&2
"$venv.partial/bin/python" -m pip install -q --progress-bar off -r "$req" >&2
# A venv's scripts name their folder: build it under .partial, then move it into place and fix them up.
rm -rf "$venv"
mv "$venv.partial" "$venv"
grep -rlI --exclude-dir=site-packages "$venv.partial" "$venv" | xargs -r sed -i "s#$venv.partial#$venv#g"
"$venv/bin/python" -c 'import torch, transformers, peft' >&2
touch "$venv/.complete"
echo "$venv"
