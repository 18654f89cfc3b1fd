#!/usr/bin/env bash
# The GPU check, one command on any machine with an NVIDIA GPU and a Python that has torch (>= 2.5), transformers and
# peft: builds tuneforge's engine (TUNEFORGE_ENGINE_ONLY: libtorch, abseil, nlohmann-json, OpenSSL and PCRE2, no
# service dependencies) against that Python's torch, makes random-weight models of real shapes with transformers
# (Qwen2.5-0.5B; Llama-3.1-8B with 8 of its 32 layers) and prints:
#   (a) tuneforge's fp32 CUDA logits vs transformers' (eager and sdpa): max abs diff and argmax agreement;
#   (b) bf16 LoRA train-step tokens/s and peak GPU memory, tuneforge vs transformers + PEFT (sdpa), as ratios;
#   (c) an adapter trained by tuneforge on the GPU, loaded by PEFT: max logit difference to tuneforge's;
#   (d) sequences of mixed lengths: padding-free (varlen flash attention) and padded LoRA steps against
#       transformers + PEFT's flattened and padded forms: tokens/s, peak memory, equal first losses;
#   (e) long sequences (first shape): memory per token on each side, without and with activation checkpointing, and
#       the longest sequence in 40 GiB, each side in its better form;
#   (f) the fused ops against the plain forms they replace, on the device (bench/fused_ops_check.cc);
#   (g) one step of each side under the profiler (first shape): time per op and per GPU kernel.
# (b) also runs tuneforge's variants on the first shape: eager, whole logits, unfused, checkpointing, offload.
# With --cpu the same checks run on small models on the CPU (CI runs it that way).
#
# Usage: bench/gpu_check.sh [--cpu] [--python PY] [--build DIR] [--build-type T] [--work DIR] [--out DIR] [--steps N]
#                         [--deadline-s S]
#   --python  the Python whose torch the engine is built against and that runs transformers (default: python3 on
#             the PATH; with --cpu, the project's environment from scripts/python-env.sh)
#   --build   engine build directory (default: build-gpu-check, or build-gpu-check-cpu with --cpu)
#   --build-type  CMake build type (default Release)
#   --work    models, inputs and logits (default: a fresh temporary directory, removed at the end)
#   --out     logs and results.json (default: <build>/gpu-check), written after each part
#   --deadline-s  seconds the whole check may take, build included: a part that would not fit is skipped and named
#             at the end. The main checks of every shape run first, then (b)'s variants, (e) and (g) on the first shape.
# Extra CMake arguments may come in TUNEFORGE_CMAKE_ARGS, e.g. -DCMAKE_PREFIX_PATH=/opt/deps/usr for abseil etc.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

cpu=0
python=""
build=""
build_type="Release"
work=""
out=""
steps=()
deadline_s=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu=1 ;;
    --python) python="$2"; shift ;;
    --build) build="$2"; shift ;;
    --build-type) build_type="$2"; shift ;;
    --work) work="$2"; shift ;;
    --out) out="$2"; shift ;;
    --steps) steps=(--steps "$2"); shift ;;
    --deadline-s) deadline_s="$2"; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$python" ]; then
  if [ "$cpu" = 1 ]; then python="$(bash "$here/scripts/python-env.sh")/bin/python"; else python="python3"; fi
fi
python="$(command -v "$python" || echo "$python")"
if ! "$python" -c 'import torch, transformers, peft' 2>/dev/null; then
  echo "gpu_check.sh: $python cannot import torch, transformers and peft; name a Python that can with --python" >&2
  exit 2
fi
if [ "$cpu" = 0 ] && ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check.sh: torch in $python sees no GPU; run with --cpu for the CPU form of the check" >&2
  exit 2
fi
[ -n "$build" ] || build="$here/build-gpu-check$([ "$cpu" = 1 ] && echo -cpu || true)"
[ -n "$out" ] || out="$build/gpu-check"
if [ -z "$work" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi

start=$(date +%s)
echo "== building the engine against $("$python" -c 'import torch; print("torch", torch.__version__)') into $build"
mkdir -p "$build"
# shellcheck disable=SC2086
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "$here" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE="$build_type" -DTUNEFORGE_ENGINE_ONLY=ON \
  -DTUNEFORGE_TORCH="$python" ${TUNEFORGE_CMAKE_ARGS:-} >"$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target tuneforge-parity train_step_bench fused_ops_check
echo "== built in $(( $(date +%s) - start )) s"

export PYTHONUNBUFFERED=1
status=0
"$python" "$here/bench/gpu_check.py" --build "$build" --work "$work" --out "$out" \
  $([ "$cpu" = 1 ] && echo --cpu) "${steps[@]}" \
  $([ "$deadline_s" -gt 0 ] && echo --until "$(( start + deadline_s ))") || status=$?
echo "== gpu_check.sh took $(( $(date +%s) - start )) s"
exit $status
