#!/usr/bin/env bash
# Greedy generation on the CPU: tuneforge with its KV cache and without (generation_bench) against transformers'
# generate() (with its cache, sdpa attention) on the bench Llama (57 M parameters, fp32), the same model directory
# (written by transformers), the same prompts and thread count, every row generating NEW tokens (no EOS). Batch 1
# (a 32-token prompt) and batch 8 (prompts of 8 to 32 tokens, left padded). Prints new tokens/s and the ratios, and
# whether the three produced the same tokens.
# Usage: bench/generation_bench.sh [BUILD_DIR] [THREADS] [NEW] [RUNS]   (defaults: build 2 64 3)
# The uncached mode runs once per batch (it is quadratic in the length and only the reference path).
# PYTHON: the Python with torch and transformers (default: the project's environment, scripts/python-env.sh).
set -euo pipefail

bench_name=generation_bench
default3=64
default4=3
source "$(dirname "${BASH_SOURCE[0]}")/cpu_bench_setup.sh"
new="$arg3"
runs="$arg4"
"$python" - "$here" "$work" <<'PY'
import json, sys
import torch
import transformers
transformers.utils.logging.disable_progress_bar()
sys.path.insert(0, sys.argv[1])
import bench_models
work = sys.argv[2]
bench_models.make_model("bench-llama", work + "/model", dtype=torch.float32)
vocab = bench_models.vocab_size("bench-llama")
g = torch.Generator().manual_seed(4321)
def prompts(lengths):
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]
json.dump({"prompts": prompts([32])}, open(work + "/prompts_b1.json", "w"))
json.dump({"prompts": prompts([32, 8, 20, 27, 12, 32, 16, 24])}, open(work + "/prompts_b8.json", "w"))
PY
echo "cores: $(nproc); threads: $threads; $new new tokens; $runs timed runs (+1 warm-up) cached, 1 uncached;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"

# transformers' generate() on the same model directory and prompts: RESULT line and tokens.
cat > "$work/hf_generate.py" <<'PY'
import json, os, statistics, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
import transformers
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
model_dir, prompts_file, new, threads, runs, out = sys.argv[1:]
new, threads, runs = int(new), int(threads), int(runs)
torch.set_num_threads(threads)
model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                          attn_implementation="sdpa").eval()
model.generation_config.eos_token_id = None
prompts = json.load(open(prompts_file))["prompts"]
longest = max(len(p) for p in prompts)
ids = torch.zeros(len(prompts), longest, dtype=torch.long)
mask = torch.zeros_like(ids)
for r, p in enumerate(prompts):
    ids[r, longest - len(p):] = torch.tensor(p)
    mask[r, longest - len(p):] = 1
times = []
with torch.inference_mode():
    for run in range(runs + 1):  # the first is a warm-up
        start = time.perf_counter()
        seq = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=new,
                             min_new_tokens=new, eos_token_id=None, pad_token_id=0, use_cache=True)
        if run > 0:
            times.append(time.perf_counter() - start)
assert seq.shape[1] == longest + new
json.dump({"cached": seq[:, longest:].tolist()}, open(out, "w"))
median = statistics.median(times)
print(f"RESULT impl=transformers mode=cached batch={len(prompts)} new_tokens={new} threads={torch.get_num_threads()} "
      f"runs={len(times)} median_s={median:.4f} best_s={min(times):.4f} "
      f"tokens_per_s={len(prompts) * new / median:.1f} version={transformers.__version__}")
PY
# Where tuneforge's cached tokens first differ from its uncached ones and from transformers'.
cat > "$work/compare.py" <<'PY'
import json, sys
ours, hf = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["cached"]
def first_difference(a, b):
    for r, (x, y) in enumerate(zip(a, b)):
        for s, (p, q) in enumerate(zip(x, y)):
            if p != q:
                return f"row{r}/step{s}"
    return "none"
print(f"TOKENS batch={len(hf)} cached_vs_uncached={first_difference(ours['cached'], ours['uncached'])} "
      f"cached_vs_transformers={first_difference(ours['cached'], hf)}")
PY

log="$work/log"
for b in b1 b8; do
  "$bench" --model="$work/model" --prompts="$work/prompts_$b.json" --new-tokens="$new" --threads="$threads" \
    --runs="$runs" --uncached-runs=1 --attn=sdpa --device=cpu --tokens-out="$work/tokens_$b.json" | tee -a "$log"
  "$python" "$work/hf_generate.py" "$work/model" "$work/prompts_$b.json" "$new" "$threads" "$runs" \
    "$work/hf_tokens_$b.json" | tee -a "$log"
  "$python" "$work/compare.py" "$work/tokens_$b.json" "$work/hf_tokens_$b.json" | tee -a "$log"
done

# Ratios (> 1: tuneforge with its cache is faster) of the median runs.
awk '
  /^RESULT/ {
    delete kv
    for (i = 2; i <= NF; ++i) { split($i, p, "="); kv[p[1]] = p[2] }
    tps[kv["impl"] "/" kv["mode"], kv["batch"]] = kv["tokens_per_s"]
  }
  /^TOKENS/ { split($2, q, "="); diff = $0; sub(/^TOKENS batch=[0-9]+ /, "", diff); same[q[2]] = diff }
  END {
    printf "\n%-6s %-13s %-15s %-18s %-10s %-16s %s\n", "batch", "cached tok/s", "uncached tok/s",
           "HF generate tok/s", "cached/HF", "cached/uncached", "first token difference"
    split("1 8", order, " ")
    for (j = 1; j <= 2; ++j) {
      b = order[j]
      c = tps["tuneforge/cached", b]; u = tps["tuneforge/uncached", b]; h = tps["transformers/cached", b]
      if (c == "" || u == "" || h == "") continue
      printf "%-6s %-13s %-15s %-18s %-10.2f %-16.2f %s\n", b, c, u, h, c / h, c / u, same[b]
    }
  }' "$log"
