#!/usr/bin/env bash
# One LoRA training step of the bench Llama (57 M parameters, batch 4 x 256) on the CPU: tuneforge
# (train_step_bench) against transformers + PEFT (hf_train_step.py) at the same thread count, on the same model
# directory (written by transformers), tokens and settings, one after the other; prints ours/theirs per dtype.
# Usage: bench/train_step.sh [BUILD_DIR] [THREADS] [WARMUP] [STEPS]   (defaults: build 2 2 5)
# PYTHON: the Python with torch, transformers and peft (default: the project's environment, scripts/python-env.sh).
# PROMPT_FRACTION=F: the first F of each row's labels carry no loss on both sides (an SFT prompt; default 0).
# ROUNDS=N: the whole sequence of runs N times over (default 1); the table shows each figure's median over the rounds,
# which the machine's run-to-run spread moves less than a single run.
set -euo pipefail

bench_name=train_step_bench
default3=2
default4=5
source "$(dirname "${BASH_SOURCE[0]}")/cpu_bench_setup.sh"
warmup="$arg3"
steps="$arg4"
"$python" - "$here" "$work" <<'PY'
import sys
import torch
sys.path.insert(0, sys.argv[1])
import bench_models
work = sys.argv[2]
bench_models.make_model("bench-llama", work + "/model", dtype=torch.float32)
bench_models.make_inputs(work + "/inputs.safetensors", bench_models.vocab_size("bench-llama"), 4, 256, seed=5678)
PY
echo "cores: $(nproc); threads: $threads; warm-up $warmup + $steps timed steps; load average $(cut -d' ' -f1-3 /proc/loadavg)"

log="$work/log"
args=(--model="$work/model" --inputs="$work/inputs.safetensors" --device=cpu --threads="$threads" --warmup="$warmup"
      --steps="$steps" --attn=sdpa --prompt-fraction="${PROMPT_FRACTION:-0}")
# Per dtype the three run back to back (ours with the whole logits, ours with the chunked loss, transformers + PEFT),
# so that all see about the same load from the rest of the machine.
rounds="${ROUNDS:-1}"
for round in $(seq "$rounds"); do
  [ "$rounds" = 1 ] || echo "== round $round of $rounds"
  for dtype in fp32 bf16; do
    "$bench" "${args[@]}" --dtype="$dtype" --loss=logits | tee -a "$log"
    "$bench" "${args[@]}" --dtype="$dtype" --loss=chunked | tee -a "$log"
    "$python" "$here/hf_train_step.py" "${args[@]}" --dtype="$dtype" | tee -a "$log"
  done
done

# RESULT lines are key=value. Per dtype and loss form: ratios (ours/theirs, > 1: we are faster) of the median step,
# of the best step and of the median CPU time per step (both less disturbed by other processes); the memory the
# training steps added to the process's resident size (train_rss, MiB) and its ratio (ours/theirs, < 1: we use
# less); the first and last losses: the first losses are equal when both compute the same function (LoRA B starts
# at zero).
awk '
  # The median of the n values v[k, 1..n].
  function median(v, k, n,    a, i, j, t) {
    for (i = 1; i <= n; ++i) a[i] = v[k, i] + 0
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] > a[j]; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  /^RESULT/ {
    delete kv
    for (i = 2; i <= NF; ++i) { split($i, p, "="); kv[p[1]] = p[2] }
    k = kv["dtype"] " " (kv["impl"] == "tuneforge" ? kv["loss"] : "hf")
    c = ++n[k]
    tps[k, c] = kv["tokens_per_s"]; best[k, c] = kv["best_step_ms"]; cpu[k, c] = kv["cpu_ms"]
    rss[k, c] = kv["train_rss_mib"]
    first[k] = kv["first_loss"]; last[k] = kv["last_loss"]; th = kv["threads"]
  }
  END {
    printf "\n%-5s %-8s %-7s %-6s %-10s %-10s %-8s %-9s %-8s %-9s %-9s %-8s %-21s %s\n", "dtype", "loss", "threads",
           "rounds", "ours tok/s", "HF tok/s", "ours/HF", "best-step", "cpu-time", "ours MiB", "HF MiB", "MiB o/HF",
           "first loss ours / HF", "last loss ours / HF"
    split("fp32 bf16", dtypes, " ")
    split("logits chunked", losses, " ")
    for (j = 1; j <= 2; ++j) for (l = 1; l <= 2; ++l) {
      d = dtypes[j]; k = d " " losses[l]; h = d " hf"
      if (!(k in n) || !(h in n)) continue
      ours = median(tps, k, n[k]); hf = median(tps, h, n[h])
      ours_rss = median(rss, k, n[k]); hf_rss = median(rss, h, n[h])
      printf "%-5s %-8s %-7s %-6s %-10.1f %-10.1f %-8.2f %-9.2f %-8.2f %-9.1f %-9.1f %-8.2f %-21s %s / %s\n", d,
             losses[l], th, n[k], ours, hf, ours / hf, median(best, h, n[h]) / median(best, k, n[k]),
             median(cpu, h, n[h]) / median(cpu, k, n[k]), ours_rss, hf_rss, (hf_rss > 0 ? ours_rss / hf_rss : 0),
             first[k] " / " first[h], last[k], last[h]
    }
  }' "$log"
