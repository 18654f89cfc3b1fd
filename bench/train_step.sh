#!/usr/bin/env bash
# One LoRA training step of the bench Llama: tuneforge (train_step_bench) against plain PyTorch eager
# (train_step_reference.py) at the same thread count, one after the other; prints ours/eager per dtype.
# Usage: bench/train_step.sh [BUILD_DIR] [THREADS] [WARMUP] [STEPS]   (defaults: build 2 2 5)
# OPENBLAS_* variables are left as found; both sides set OpenBLAS's pool to THREADS through its API.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/../build}"
threads="${2:-2}"
warmup="${3:-2}"
steps="${4:-5}"
bench="$build/bench/train_step_bench"
# Debian's python3-torch is the same 1.13.1 as libtorch; pick the system interpreter, not a pyenv shim.
python="${PYTHON:-/usr/bin/python3}"

if [[ ! -x "$bench" ]]; then
  echo "no $bench: build it with cmake --build $build --target train_step_bench" >&2
  exit 1
fi
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "$python cannot import torch: apt-get install python3-torch (or set PYTHON)" >&2
  exit 1
fi

# libgomp and OpenBLAS each keep a thread pool; busy-waiting pools on few cores slow each other down.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
env | grep '^OPENBLAS_' | sed 's/^/env: /' || echo "env: no OPENBLAS_* variables set"
echo "cores: $(nproc); threads: $threads; warm-up $warmup + $steps timed steps"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
args=(--threads="$threads" --warmup="$warmup" --steps="$steps")
# Per dtype the two run back to back, so that both see about the same load from the rest of the machine.
for dtype in fp32 bf16; do
  "$bench" "${args[@]}" --dtype="$dtype" | tee -a "$log"
  "$python" "$here/train_step_reference.py" "${args[@]}" --dtype="$dtype" | tee -a "$log"
done

# RESULT lines are key=value. Ratios (ours/eager, > 1: we are faster) of the median step, of the best step
# and of the median CPU time per step (both less disturbed by other processes), and the last losses:
# equal losses mean both ran the same computation.
awk '
  /^RESULT/ {
    delete kv
    for (i = 2; i <= NF; ++i) { split($i, p, "="); kv[p[1]] = p[2] }
    d = kv["dtype"]; th = kv["threads"]
    if (kv["impl"] == "tuneforge") {
      ours[d] = kv["tokens_per_s"]; ours_best[d] = kv["best_step_ms"]; ours_cpu[d] = kv["cpu_ms"]
      mfu[d] = kv["mfu"]; ours_loss[d] = kv["last_loss"]
    } else {
      eager[d] = kv["tokens_per_s"]; eager_best[d] = kv["best_step_ms"]; eager_cpu[d] = kv["cpu_ms"]
      eager_loss[d] = kv["last_loss"]
    }
  }
  END {
    printf "\n%-5s %-7s %-11s %-12s %-11s %-11s %-10s %-8s %s\n", "dtype", "threads", "ours tok/s", "eager tok/s",
           "ours/eager", "best-step", "cpu-time", "ours MFU", "last loss ours / eager"
    split("fp32 bf16", order, " ")
    for (j = 1; j <= 2; ++j) {
      d = order[j]
      if (!(d in ours) || !(d in eager)) continue
      printf "%-5s %-7s %-11s %-12s %-11.2f %-11.2f %-10.2f %-8s %s / %s\n", d, th, ours[d], eager[d],
             ours[d] / eager[d], eager_best[d] / ours_best[d], eager_cpu[d] / ours_cpu[d], mfu[d], ours_loss[d],
             eager_loss[d]
    }
  }' "$log"
