#!/usr/bin/env bash
# One LoRA training step over a set of sequences of mixed lengths on the CPU, in each batch form: tuneforge with
# all sequences in one row (padding-free, its default), packed rows of ROW_LEN attended sequence by sequence
# (training.packing), the same rows through a block-diagonal mask (the form before per-sequence attention), and one
# sequence a row with right padding; transformers + PEFT with one sequence a row (padding) and with all sequences
# in one row with restarting position ids (its DataCollatorWithFlattening form). Every form computes the same loss over the same label tokens; tokens/s counts tokens that are not padding.
# Usage: bench/packing_step.sh [BUILD_DIR] [THREADS] [WARMUP] [STEPS]   (defaults: build 2 1 3)
# PYTHON: the Python with torch, transformers and peft (default: the project's environment, scripts/python-env.sh).
# SEQUENCES=N MIN_LEN=A MAX_LEN=B ROW_LEN=L: the set (default 12 sequences of 64 to 512 tokens, rows of 1024).
set -euo pipefail

bench_name=train_step_bench
default3=1
default4=3
source "$(dirname "${BASH_SOURCE[0]}")/cpu_bench_setup.sh"
warmup="$arg3"
steps="$arg4"
"$python" - "$here" "$work" "${SEQUENCES:-12}" "${MIN_LEN:-64}" "${MAX_LEN:-512}" "${ROW_LEN:-1024}" <<'PY'
import sys
import torch
sys.path.insert(0, sys.argv[1])
import bench_models
work = sys.argv[2]
count, lo, hi, row = (int(x) for x in sys.argv[3:7])
bench_models.make_model("bench-llama", work + "/model", dtype=torch.float32)
lengths = bench_models.make_sequence_set(work, bench_models.vocab_size("bench-llama"), count, lo, hi, row, seed=91)
print(f"{count} sequences, {sum(lengths)} tokens, lengths {lengths}; packed rows of {row}")
PY
echo "cores: $(nproc); threads: $threads; warm-up $warmup + $steps timed steps; load average $(cut -d' ' -f1-3 /proc/loadavg)"

log="$work/log"
args=(--model="$work/model" --device=cpu --threads="$threads" --warmup="$warmup" --steps="$steps" --attn=sdpa)
for dtype in fp32 bf16; do
  "$bench" "${args[@]}" --dtype="$dtype" --inputs="$work/padding_free.safetensors" |
    sed 's/^RESULT /RESULT form=padding-free /' | tee -a "$log"
  "$bench" "${args[@]}" --dtype="$dtype" --inputs="$work/packed.safetensors" | sed 's/^RESULT /RESULT form=packed /' | tee -a "$log"
  "$bench" "${args[@]}" --dtype="$dtype" --inputs="$work/packed.safetensors" --per-sequence=0 |
    sed 's/^RESULT /RESULT form=packed-mask /' | tee -a "$log"
  "$bench" "${args[@]}" --dtype="$dtype" --inputs="$work/padded.safetensors" | sed 's/^RESULT /RESULT form=padded /' | tee -a "$log"
  "$python" "$here/hf_train_step.py" "${args[@]}" --dtype="$dtype" --inputs="$work/padded.safetensors" |
    sed 's/^RESULT /RESULT form=padded /' | tee -a "$log"
  "$python" "$here/hf_train_step.py" "${args[@]}" --dtype="$dtype" --inputs="$work/flat.safetensors" |
    sed 's/^RESULT /RESULT form=flat /' | tee -a "$log"
done

# Per dtype: each run's tokens/s and its ratio to transformers + PEFT's faster form, the memory the steps added to
# the resident size, and the first loss (equal across forms when each computes the same function).
"$python" - "$log" <<'PY'
import sys
runs = []
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        runs.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
print(f"\n{'dtype':5} {'impl':17} {'form':12} {'attention':12} {'tokens':>6} {'tok/s':>8} {'vs best HF':>10} "
      f"{'step MiB':>8} {'MiB vs HF':>9} {'first loss':>10}")
for dtype in ("fp32", "bf16"):
    rows = [r for r in runs if r["dtype"] == dtype]
    hf = [r for r in rows if r["impl"] != "tuneforge"]
    if not hf:
        continue
    best = max(hf, key=lambda r: float(r["tokens_per_s"]))
    for r in rows:
        mib = float(r["train_rss_mib"]) if r["train_rss_mib"] != "n/a" else float("nan")
        print(f"{dtype:5} {r['impl']:17} {r['form']:12} {r.get('attention', 'sdpa'):12} {r['tokens']:>6} "
              f"{float(r['tokens_per_s']):8.1f} {float(r['tokens_per_s']) / float(best['tokens_per_s']):10.2f} "
              f"{mib:8.1f} {mib / float(best['train_rss_mib']):9.2f} {float(r['first_loss']):10.6f}")
PY
