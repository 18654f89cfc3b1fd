#!/usr/bin/env bash
# The longest sequence a LoRA training step fits in a memory budget, on the CPU: tuneforge (train_step_bench) against
# transformers + PEFT (hf_train_step.py) on the bench Llama (as train_step.sh), batch 1, one step after one warm-up
# step at two lengths, each side with and without activation checkpointing. The memory a step adds to the process's
# resident size grows linearly in the length (flash attention on both sides); its growth per token and the part that
# does not grow give the longest sequence within BUDGET_MIB, and ours over theirs.
# Usage: bench/long_seq.sh [BUILD_DIR] [THREADS] [SHORT] [LONG]   (defaults: build 2 1024 4096)
# PYTHON: the Python with torch, transformers and peft (default: the project's environment, scripts/python-env.sh).
# BUDGET_MIB=N: the memory budget for the steps (default 16384). DTYPES="fp32 bf16" (the default): which dtypes.
# Both sides run with glibc's mmap threshold fixed at 64 KiB (MALLOC_MMAP_THRESHOLD_): every tensor then has pages of
# its own, returned when it is freed, so the resident high-water mark is the peak of live memory. Under the default,
# adaptive threshold freed tensors stay in the heap and the mark moves with the order of allocations by tens of MiB.
# It slows both sides (fresh pages for every tensor), so no speed is reported.
set -euo pipefail
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-65536}"

bench_name=train_step_bench
default3=1024
default4=4096
source "$(dirname "${BASH_SOURCE[0]}")/cpu_bench_setup.sh"
short="$arg3"
long="$arg4"
if ! [[ "$short" =~ ^[0-9]+$ && "$long" =~ ^[0-9]+$ ]] || ((short >= long)); then
  echo "SHORT and LONG are token counts with SHORT < LONG (got $short and $long)" >&2
  exit 2
fi
"$python" - "$here" "$work" "$short" "$long" <<'PY'
import sys
import torch
sys.path.insert(0, sys.argv[1])
import bench_models
work = sys.argv[2]
bench_models.make_model("bench-llama", work + "/model", dtype=torch.float32)
for n in sys.argv[3:5]:
    bench_models.make_inputs(f"{work}/inputs{n}.safetensors", bench_models.vocab_size("bench-llama"), 1, int(n),
                             seed=17)
PY
echo "cores: $(nproc); threads: $threads; batch 1 at $short and $long tokens; load average $(cut -d' ' -f1-3 /proc/loadavg)"

log="$work/log"
for dtype in ${DTYPES:-fp32 bf16}; do
  for checkpointing in 0 1; do
    for n in "$short" "$long"; do
      args=(--model="$work/model" --inputs="$work/inputs$n.safetensors" --device=cpu --threads="$threads" --warmup=1
            --steps=1 --attn=sdpa --dtype="$dtype" --checkpointing="$checkpointing")
      "$bench" "${args[@]}" | grep '^RESULT' | tee -a "$log"
      "$python" "$here/hf_train_step.py" "${args[@]}" | grep '^RESULT' | tee -a "$log"
    done
  done
done

"$python" - "$log" "$short" "$long" "${BUDGET_MIB:-16384}" <<'PY'
import sys
log, short, long, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rss = {}
for line in open(log):
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    rss[(kv["dtype"], kv["checkpointing"], kv["impl"], int(kv["seq"]))] = float(kv["train_rss_mib"])
print(f"\nmemory the step adds (resident, MiB) at {short} and {long} tokens; longest sequence within {budget:.0f} MiB")
print(f"{'dtype':6} {'ckpt':5} {'side':18} {'MiB':>16} {'MiB/token':>10} {'fixed':>8} {'longest':>9} {'ours/HF':>8}")
best = {}
for dtype in ("fp32", "bf16"):
    for ckpt in ("0", "1"):
        longest = {}
        for impl in ("tuneforge", "transformers+peft"):
            if (dtype, ckpt, impl, short) not in rss or (dtype, ckpt, impl, long) not in rss:
                continue
            a, b = rss[(dtype, ckpt, impl, short)], rss[(dtype, ckpt, impl, long)]
            slope = (b - a) / (long - short)
            fixed = a - slope * short
            longest[impl] = (budget - fixed) / slope if slope > 0 else float("inf")
            best[(dtype, impl)] = max(best.get((dtype, impl), 0), longest[impl])
            ratio = f"{longest['tuneforge'] / longest[impl]:.2f}" if impl != "tuneforge" and "tuneforge" in longest \
                else ""
            print(f"{dtype:6} {ckpt:5} {impl:18} {a:7.0f} {b:8.0f} {slope:10.3f} {fixed:8.0f} {longest[impl]:9.0f} "
                  f"{ratio:>8}")
for dtype in ("fp32", "bf16"):
    if (dtype, "tuneforge") in best and (dtype, "transformers+peft") in best:
        ours, theirs = best[(dtype, "tuneforge")], best[(dtype, "transformers+peft")]
        print(f"{dtype}: each side's longer form, ours/HF {ours / theirs:.2f} ({ours:.0f} against {theirs:.0f} tokens)")
PY
