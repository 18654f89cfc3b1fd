#!/usr/bin/env bash
# Tokens/s of a whole fine-tuning job through the services (tuneforge-metadata + one tuneforge-trainer, started
# by gRPC, watched to the end) against train_step_bench's bare training step, same model (the bench Llama),
# same shapes (batch 4 x 256 tokens, LoRA r=16 on q,k,v,o,gate,up,down, fp32) and threads, in this script.
# Prints both and their ratio: the service path's overhead (tokenizing, data pipeline, heartbeats, checkpoints,
# model load and eval are in the whole-job figure; the steady-state figure is the trainer's own per-step rate).
# Usage: bench/job_bench.sh [BUILD_DIR] [THREADS] [STEPS]   (defaults: build 2 30)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(cd "${1:-$here/../build}" && pwd)"
threads="${2:-2}"
steps="${3:-30}"
python="${PYTHON:-$(bash "$here/../scripts/python-env.sh")/bin/python}"
work="$(mktemp -d /tmp/tuneforge-job-bench-XXXXXX)"
chmod 755 "$work"
home="$work/home"
port=$((20000 + RANDOM % 20000))
tf="$build/services/cli/tuneforge --server 127.0.0.1:$port --api-token-file $home/admin-token"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$home/data"
"$python" "$here/make_bench_model.py" "$home/data" >/dev/null
echo "== reference: train_step_bench, fp32, $threads threads"
"$python" -c "import sys; sys.path.insert(0, '$here'); import bench_models as b
b.make_inputs('$work/inputs.safetensors', b.vocab_size('bench-llama'), 4, 256, seed=5678)"
ref="$("$build/bench/train_step_bench" --model="$home/data/bench-llama" --inputs="$work/inputs.safetensors" \
       --device=cpu --dtype=fp32 --attn=sdpa --threads="$threads" --warmup=2 --steps=5 | grep '^RESULT')"
echo "$ref"
ref_tps="$(echo "$ref" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p')"

TUNEFORGE_HOME="$home" "$build/services/metadata/tuneforge-metadata" --port "$port" >"$work/metadata.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do $tf models list >/dev/null 2>&1 && break; sleep 0.2; done
"$build/services/trainer/tuneforge-trainer" --home "$home" --metadata "127.0.0.1:$port" --port 0 \
  --threads "$threads" >"$work/trainer.log" 2>&1 &
pids+=($!)
$tf models add bench-llama "$home/data/bench-llama" >/dev/null
$tf datasets add bench-data "$home/data/bench-data/train.jsonl" --test-file "$home/data/bench-data/test.jsonl" >/dev/null
$tf prompts add lm --dataset bench-data --template-input '' --template-completion '{text}' >/dev/null
echo "== the same training as a job: $steps steps"
$tf jobs start --name bench --model bench-llama --dataset bench-data --prompt lm \
  --set lora.r=16 --set lora.lora_alpha=32 --set lora.lora_dropout=0 \
  --set 'lora.target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]' \
  --set training.max_steps="$steps" --set training.per_device_batch_size=4 --set training.gradient_accumulation_steps=1 \
  --set training.max_seq_len=256 --set training.dtype=fp32 --set training.learning_rate=0.0001 \
  --set training.lr_scheduler=constant --set training.warmup_ratio=0 --set training.train_on_input=true \
  --set training.device=cpu --watch >/dev/null
$tf jobs get bench --output json > "$work/job.json"
$tf jobs watch bench --output json > "$work/events.jsonl"
"$python" - "$work/job.json" "$work/events.jsonl" "$ref_tps" "$steps" <<'PY'
import datetime, json, sys
job = json.load(open(sys.argv[1]))["job"]
events = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
ref = float(sys.argv[3])
def t(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
assert job["state"] == "JOB_STATE_SUCCEEDED", job["state"]
tokens = int(job["progress"]["tokens"])
whole = tokens / (t(job["end_time"]) - t(job["start_time"])).total_seconds()
rates = sorted(float(e["event"]["metrics"]["tokens_per_second"]) for e in events
               if e.get("event", {}).get("metrics", {}).get("tokens_per_second"))
steady = rates[len(rates) // 2] if rates else 0.0
print("step bench (reference): %.0f tokens/s" % ref)
print("job steady state (median of %d step reports): %.0f tokens/s  ratio %.2f" % (len(rates), steady, steady / ref))
print("whole job, start to end (%d steps, %d tokens, load + tokenize + eval + checkpoints included): %.0f tokens/s  ratio %.2f"
      % (int(job["progress"]["step"]), tokens, whole, whole / ref))
PY
