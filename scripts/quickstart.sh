#!/usr/bin/env bash
# The quick start: installs what tuneforge needs, builds it, starts tuneforge-metadata on its own embedded
# PostgreSQL and one tuneforge-trainer, then fine-tunes a model end to end with the tuneforge CLI: register the
# model, a small instruction dataset and a prompt, start a LoRA job, watch its loss fall, and show the adapter.
#
#   bash scripts/quickstart.sh                      # offline: a tiny generated Llama-architecture model
#   bash scripts/quickstart.sh Qwen/Qwen2.5-0.5B-Instruct   # a Hugging Face model (needs the internet)
#
# TUNEFORGE_HOME (default ~/.tuneforge) holds the database, the data and the artifacts; run it again at will.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
hf_model="${1:-}"

bash scripts/install-deps.sh
bash scripts/build.sh

export TUNEFORGE_HOME="${TUNEFORGE_HOME:-$HOME/.tuneforge}"
port="${TUNEFORGE_PORT:-50051}"
export TUNEFORGE_SERVER="127.0.0.1:$port"
data="$TUNEFORGE_HOME/data"
mkdir -p "$data"
python3 scripts/make_demo_data.py "$data" >/dev/null
tuneforge="build/services/cli/tuneforge"

log="$TUNEFORGE_HOME/metadata.log"
trainer_log="$TUNEFORGE_HOME/trainer.log"
echo "== starting tuneforge-metadata on $TUNEFORGE_SERVER (embedded PostgreSQL in $TUNEFORGE_HOME/postgres; log: $log)"
build/services/metadata/tuneforge-metadata --port "$port" >"$log" 2>&1 &
server=$!
trainer=""
stop() {
  set +e
  if [ -n "$trainer" ]; then kill "$trainer" 2>/dev/null; wait "$trainer" 2>/dev/null; fi
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
}
trap stop EXIT
for _ in $(seq 1 150); do
  if "$tuneforge" models list >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "tuneforge-metadata exited:"; cat "$log"; exit 1; fi
  sleep 0.2
done
echo "== starting tuneforge-trainer (log: $trainer_log)"
build/services/trainer/tuneforge-trainer --metadata "$TUNEFORGE_SERVER" --port 0 >"$trainer_log" 2>&1 &
trainer=$!

if [ -z "$hf_model" ]; then
  model="demo-llama"
  echo "== register the model: a tiny Llama-architecture model with random weights (local directory)"
  "$tuneforge" models add "$model" "$data/demo-llama" --description "tiny Llama-architecture demo model"
  settings=(--set lora.r=16 --set lora.lora_alpha=32 --set lora.target_modules=all-linear
            --set training.learning_rate=0.005 --set training.lr_scheduler=constant --set training.warmup_ratio=0
            --set training.num_epochs=1 --set training.per_device_batch_size=4 --set training.gradient_accumulation_steps=1
            --set training.max_seq_len=64 --set training.dtype=fp32)
else
  model="$(echo "$hf_model" | tr '/' '-' | tr '[:upper:]' '[:lower:]')"
  echo "== register the model: $hf_model from the Hugging Face Hub"
  "$tuneforge" models add "$model" --hf "$hf_model"
  settings=(--set training.num_epochs=1 --set training.per_device_batch_size=4
            --set training.gradient_accumulation_steps=1 --set training.max_seq_len=128)
fi
echo "== register the dataset: 200 arithmetic questions (train.jsonl, test.jsonl)"
"$tuneforge" datasets add demo-instructions "$data/demo-instructions/train.jsonl" \
  --test-file "$data/demo-instructions/test.jsonl"
echo "== register the prompt: what the model reads, and what it learns to write"
"$tuneforge" prompts add qa --dataset demo-instructions --template-input $'Question: {question}\nAnswer: ' \
  --template-completion '{answer}'
job="quickstart-$(date +%Y%m%d-%H%M%S)"
echo "== fine-tune: LoRA job $job (progress from the trainer, streamed by WatchFineTuningJob)"
"$tuneforge" jobs start --name "$job" --model "$model" --dataset demo-instructions --prompt qa "${settings[@]}" --watch
echo "== the loss, from the job's events"
"$tuneforge" jobs watch "$job" --output json | python3 -c '
import json, sys
losses = [e["event"]["metrics"]["train_loss"] for e in map(json.loads, sys.stdin)
          if e.get("event", {}).get("metrics", {}).get("train_loss")]
if losses:
    print("  train loss %.3f at the first report -> %.3f at the end (%d reports)" % (losses[0], losses[-1], len(losses)))'
echo "== the adapter it registered (PEFT format, with its lineage)"
"$tuneforge" adapters get "$job"
echo "== done. Logs: $log, $trainer_log; adapters and checkpoints under $TUNEFORGE_HOME/artifacts"
