#!/usr/bin/env bash
# tuneforge adapters round-trip through real Hugging Face PEFT, with real processes: tuneforge-metadata on its
# embedded PostgreSQL, two tuneforge-trainer workers, driven by the tuneforge CLI.
#   forward: fine-tuning jobs train LoRA adapters (fp32, a few steps); PEFT loads each with
#            PeftModel.from_pretrained, must take every tensor of adapter_model.safetensors bit for bit, and its
#            fp32 logits must equal tuneforge-parity's within 1e-4.
#   reverse: adapters made by PEFT (get_peft_model, a few AdamW steps, save_pretrained) are imported with
#            `tuneforge adapters add`; tuneforge-parity loads the imported adapter's path and must give PEFT's
#            logits within 1e-4.
# Both directions cover llama (all-linear; q_proj,v_proj only) and phi3's fused qkv_proj / gate_up_proj, with and
# without rsLoRA, eager and sdpa attention, with lora_dropout > 0 in the configs (it must not act at inference). One
# negative control shows the logit comparison fails on a 1% change of one tensor.
#   exports: `tuneforge models export --watch` runs export jobs on the same trainers: merged models (fp32 sharded,
#            fp32 single file, bf16) that transformers loads alone must give PeftModel(base, adapter)'s fp32 logits
#            within 1e-4 and PEFT's merge_and_unload() weights; an adapter export is byte-identical; an existing
#            destination needs --overwrite, which gives the exported model a new revision.
#   parquet: the demo rows written as Parquet by pyarrow train exactly as the jsonl rows do (the same loss).
#   evaluation: `tuneforge eval start --watch` scores tiny-llama and two trained adapters on the test split; each
#            loss equals transformers' (PeftModel's) on the same rows within 1e-4.
# The models, inputs, PEFT adapters and training all come from one seed, printed first
# (PEFT_ROUNDTRIP_SEED=N replays it).
# Usage: peft_roundtrip_test.sh METADATA_BINARY TRAINER_BINARY CLI_BINARY PARITY_BINARY PYTHON SOURCE_DIR
set -uo pipefail
metadata_bin="$1"
trainer_bin="$2"
cli_bin="$3"
parity_bin="$4"
py="$5"
src="$6"
helper="$src/tests/reference/peft_roundtrip.py"
seed="${PEFT_ROUNDTRIP_SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000 ))}"
echo "seed=$seed (replay: PEFT_ROUNDTRIP_SEED=$seed bash $0 $*)"
work="$(mktemp -d /tmp/tuneforge-peft-roundtrip-XXXXXX)"
chmod 755 "$work"
home="$work/home"
data="$home/data"
port=$((20000 + RANDOM % 20000))
source "$src/tests/e2e/lib.sh"

tf() { "$cli_bin" --server "127.0.0.1:$port" "$@"; }
helper() { "$py" "$helper" "$@"; }
record_matches() {  # AddAdapterResponse JSON on stdin; R ALPHA RSLORA(0|1) TARGETS(a,b)
  "$py" -c '
import json, sys
try:
    a = json.load(sys.stdin)["adapter"]
except Exception as e:
    sys.exit(f"no adapter in the response ({e})")
got = (a.get("source_type"), int(a.get("rank", 0)), float(a.get("alpha", 0)), bool(a.get("use_rslora", False)),
       sorted(a.get("target_modules", [])))
want = ("SOURCE_TYPE_LOCAL", int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1", sorted(sys.argv[4].split(",")))
print("matches" if got == want else f"got {got}, want {want}")' "$@" 2>&1
}
# Runs the Python checks and counts their ok / FAIL lines.
python_checks() {
  local out
  out="$(helper "$@" 2>>"$work/python.log")"
  local rc=$?
  echo "$out"
  passes=$((passes + $(grep -c '^ok ' <<<"$out")))
  failures=$((failures + $(grep -c '^FAIL ' <<<"$out")))
  if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then fail "check-adapter exited $rc"; fi
}

server_ready() { tf --timeout 2 models list >/dev/null 2>&1; }

# Inputs: the demo dataset, a tiny llama and a tiny phi3 (transformers, the demo's tokenizer, a logits input).
mkdir -p "$data"
"$py" "$src/scripts/make_demo_data.py" "$data" >/dev/null || { fail "make_demo_data.py failed"; exit 1; }
helper make-model llama "$data/tiny-llama" --seed "$seed" 2>>"$work/python.log" &
helpers+=($!)
helper make-model phi3 "$data/tiny-phi3" --seed "$seed" 2>>"$work/python.log" &
helpers+=($!)
start_server
start_trainer t1
start_trainer t2
for p in "${helpers[@]}"; do wait "$p" || { fail "make-model failed"; tail -20 "$work/python.log"; exit 1; }; done
helpers=()

for family in llama phi3; do
  check "models add tiny-$family" "family: $family" "$(tf models add "tiny-$family" "$data/tiny-$family" 2>&1)"
done
check "datasets add demo-instructions" "name: demo-instructions" "$(tf datasets add demo-instructions \
  "$data/demo-instructions/train.jsonl" --test-file "$data/demo-instructions/test.jsonl" 2>&1)"
check "prompts add qa" "name: qa" "$(tf prompts add qa --dataset demo-instructions --template-input $'Q: {question}\nA: ' \
  --template-completion '{answer}' 2>&1)"
# The same rows as Parquet (written by pyarrow, several row groups): a job on them must train exactly as on jsonl.
for split in train test; do
  "$py" -c 'import sys, pyarrow.json as pj, pyarrow.parquet as pq
pq.write_table(pj.read_json(sys.argv[1]), sys.argv[2], row_group_size=8, compression="zstd")' \
    "$data/demo-instructions/$split.jsonl" "$data/demo-instructions/$split.parquet" 2>>"$work/python.log"
done
check "datasets add demo-parquet (Parquet files)" "format: parquet" "$(tf datasets add demo-parquet \
  "$data/demo-instructions/train.parquet" --test-file "$data/demo-instructions/test.parquet" 2>&1)"
check "prompts add qa-pq" "name: qa-pq" "$(tf prompts add qa-pq --dataset demo-parquet \
  --template-input $'Q: {question}\nA: ' --template-completion '{answer}' 2>&1)"

# 1. Forward: fine-tuning jobs on the two trainers (fp32, 4 steps, a high constant rate so every lora_B moves).
# name|model|r|alpha|use_rslora|target_modules (JSON)|dataset|prompt
forward_jobs=(
  "fwd-llama-all|tiny-llama|8|16|false|\"all-linear\""
  "fwd-llama-all-parquet|tiny-llama|8|16|false|\"all-linear\"|demo-parquet|qa-pq"
  "fwd-llama-qv-rslora|tiny-llama|4|8|true|[\"q_proj\",\"v_proj\"]"
  "fwd-phi3-all-rslora|tiny-phi3|8|16|true|\"all-linear\""
  "fwd-phi3-fused|tiny-phi3|4|8|false|[\"qkv_proj\",\"gate_up_proj\"]"
)
for spec in "${forward_jobs[@]}"; do
  IFS='|' read -r name model r alpha rslora targets dataset prompt <<<"$spec"
  out="$(tf jobs start --model "$model" --dataset "${dataset:-demo-instructions}" --prompt "${prompt:-qa}" --name "$name" \
    --set "lora.r=$r" --set "lora.lora_alpha=$alpha" --set "lora.use_rslora=$rslora" \
    --set "lora.target_modules=$targets" \
    --set training.max_steps=4 --set training.learning_rate=0.01 --set training.lr_scheduler=constant \
    --set training.warmup_ratio=0 --set training.per_device_batch_size=4 --set training.max_seq_len=64 \
    --set training.dtype=fp32 --set training.device=cpu --set training.seed=$((seed % 2147483647)) \
    --set training.save_steps=0 --set training.eval_every_epoch=false 2>&1)"
  check "jobs start $name" "QUEUED" "$out"
done

# 2. Reverse, while the jobs train: PEFT makes adapters (3 AdamW steps each) under an allowed root.
# name|model|r|alpha|rslora flag|targets
reverse_adapters=(
  "peft-llama-all-rslora|tiny-llama|8|16|--rslora|q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
  "peft-llama-qv|tiny-llama|4|8||q_proj,v_proj"
  "peft-phi3-fused-rslora|tiny-phi3|8|16|--rslora|qkv_proj,gate_up_proj"
  "peft-phi3-all|tiny-phi3|4|8||qkv_proj,o_proj,gate_up_proj,down_proj"
)
i=0
for spec in "${reverse_adapters[@]}"; do
  IFS='|' read -r name model r alpha rslora targets <<<"$spec"
  i=$((i + 1))
  if ! helper make-adapter --model "$data/$model" --out "$data/$name" --seed $((seed + i)) --targets "$targets" \
       --r "$r" --alpha "$alpha" $rslora 2>>"$work/python.log"; then
    fail "make-adapter $name failed"
  fi
done

# Importing checks the adapter against its base: a phi3 adapter is no llama adapter.
check "adapters add refuses a phi3 adapter for the llama base" "INVALID_ARGUMENT" \
  "$(tf adapters add wrong-base "$data/peft-phi3-all" --model tiny-llama 2>&1)"

declare -A adapter_path=()
for spec in "${reverse_adapters[@]}"; do
  IFS='|' read -r name model r alpha rslora targets <<<"$spec"
  got="$(tf adapters add "$name" "$data/$name" --model "$model" --output json 2>&1)"
  check "adapters add $name records r=$r alpha=$alpha ${rslora:+rslora }$targets" "matches" \
    "$(echo "$got" | record_matches "$r" "$alpha" "$([ -n "$rslora" ] && echo 1 || echo 0)" "$targets")"
  adapter_path[$name]="$(echo "$got" | field "['adapter']['source']")"
done

# The jobs end SUCCEEDED with a registered adapter in the artifacts.
for spec in "${forward_jobs[@]}"; do
  IFS='|' read -r name model r alpha rslora targets <<<"$spec"
  if timeout 300 "$cli_bin" --server "127.0.0.1:$port" jobs watch "$name" >>"$work/watch.log" 2>&1; then
    ok "job $name SUCCEEDED"
  else
    fail "job $name did not succeed: $(tf jobs get "$name" 2>&1 | grep -iE 'state|error' | head -5)"
    continue
  fi
  adapter="$(tf jobs get "$name" --output json 2>&1 | field "['job']['adapter_id']")"
  got="$(tf adapters get "$adapter" --output json 2>&1)"
  check "job $name registered its adapter as trained" "SOURCE_TYPE_TRAINED" "$got"
  adapter_path[$name]="$(echo "$got" | field "['adapter']['source']")"
done

loss_of() { tf jobs get "$1" --output json 2>&1 | field "['job']['metrics']['train_loss']"; }
jsonl_loss="$(loss_of fwd-llama-all)"
parquet_loss="$(loss_of fwd-llama-all-parquet)"
if [ -n "$jsonl_loss" ] && [ "$jsonl_loss" == "$parquet_loss" ]; then
  ok "the job on the Parquet files trains exactly as on jsonl (train loss $parquet_loss)"
else
  fail "the job on the Parquet files: train loss '$parquet_loss', on jsonl '$jsonl_loss'"
fi

# 3. tuneforge's logits for every adapter, from its registered path.
logits() {  # logits NAME MODEL ATTN
  local dir="${adapter_path[$1]:-}"
  if [ -z "$dir" ] || [ ! -f "$dir/adapter_model.safetensors" ]; then fail "$1: no adapter directory ('$dir')"; return; fi
  if "$parity_bin" logits --model="$data/$2" --adapter="$dir" --inputs="$data/$2/inputs.safetensors" \
       --out="$work/$1.logits.safetensors" --device=cpu --attn="$3" --dtype=fp32 2>>"$work/parity.log"; then
    ok "tuneforge-parity logits $1 ($3)"
  else
    fail "tuneforge-parity logits $1: $(tail -1 "$work/parity.log")"
  fi
}
case_arg() {  # case_arg NAME R ALPHA RSLORA(0|1) TARGETS(a+b) [EXTRA]
  echo "name=$1,adapter=${adapter_path[$1]:-missing},logits=$work/$1.logits.safetensors,r=$2,alpha=$3,rslora=$4,targets=$5${6:-}"
}
llama_all="q_proj+k_proj+v_proj+o_proj+gate_proj+up_proj+down_proj"
phi3_all="qkv_proj+o_proj+gate_up_proj+down_proj"
for n in fwd-llama-all fwd-llama-qv-rslora; do logits "$n" tiny-llama sdpa; done
for n in fwd-phi3-all-rslora fwd-phi3-fused; do logits "$n" tiny-phi3 eager; done
for n in peft-llama-all-rslora peft-llama-qv; do logits "$n" tiny-llama eager; done
for n in peft-phi3-fused-rslora peft-phi3-all; do logits "$n" tiny-phi3 sdpa; done

# 4. PEFT loads each adapter and compares (one line per check, with its max diff).
python_checks check-adapter --model "$data/tiny-llama" --inputs "$data/tiny-llama/inputs.safetensors" --attn sdpa \
  --case "$(case_arg fwd-llama-all 8 16 0 "$llama_all")" \
  --case "$(case_arg fwd-llama-qv-rslora 4 8 1 q_proj+v_proj)" \
  --case "$(case_arg fwd-llama-qv-rslora 4 8 1 q_proj+v_proj ,corrupt=1)"
python_checks check-adapter --model "$data/tiny-phi3" --inputs "$data/tiny-phi3/inputs.safetensors" --attn eager \
  --case "$(case_arg fwd-phi3-all-rslora 8 16 1 "$phi3_all")" \
  --case "$(case_arg fwd-phi3-fused 4 8 0 qkv_proj+gate_up_proj)"
python_checks check-adapter --model "$data/tiny-llama" --inputs "$data/tiny-llama/inputs.safetensors" --attn eager \
  --case "$(case_arg peft-llama-all-rslora 8 16 1 "$llama_all")" \
  --case "$(case_arg peft-llama-qv 4 8 0 q_proj+v_proj)"
python_checks check-adapter --model "$data/tiny-phi3" --inputs "$data/tiny-phi3/inputs.safetensors" --attn sdpa \
  --case "$(case_arg peft-phi3-fused-rslora 8 16 1 qkv_proj+gate_up_proj)" \
  --case "$(case_arg peft-phi3-all 4 8 0 "$phi3_all")"

# 5. Export jobs on the same trainers: merged models written by tuneforge, loaded by transformers alone, against
# PeftModel(base, adapter); an adapter export; the destination and overwrite rules.
mkdir -p "$data/exports"
export_watch() {  # export_watch LABEL ARGS...: models export ... --watch must exit 0; its output is left in $exported
  local label="$1"; shift
  exported="$(timeout 300 "$cli_bin" --server "127.0.0.1:$port" models export "$@" --watch 2>&1)"
  local rc=$?
  echo "$exported" >>"$work/export.log"
  if [ "$rc" -eq 0 ] && [[ "$exported" == *"exported to "* ]]; then
    ok "$label"
  else
    fail "$label (exit $rc): $(echo "$exported" | tail -4)"
  fi
}
# name|base model|adapter name|dtype|max shard size|layout|attn
merged_exports=(
  "merged-fwd-llama-all|tiny-llama|fwd-llama-all|fp32|100KB|sharded|sdpa"
  "merged-peft-phi3-fused-rslora|tiny-phi3|peft-phi3-fused-rslora|fp32||single|eager"
  "merged-peft-llama-qv-bf16|tiny-llama|peft-llama-qv|bf16||single|eager"
)
for spec in "${merged_exports[@]}"; do
  IFS='|' read -r name model adapter dtype shard layout attn <<<"$spec"
  export_watch "models export $name ($dtype${shard:+, shards of $shard}) SUCCEEDED" "$model" \
    --adapter "$adapter" --type merged --destination "$data/exports/$name" --exported-name "$name" \
    --dtype "$dtype" ${shard:+--max-shard-size "$shard"}
  check "export $name registered the merged model" "registered model $name" "$exported"
  check "models get $name: a local $model-family model at the destination" "$data/exports/$name" \
    "$(tf models get "$name" 2>&1)"
  python_checks check-merged --model "$data/$model" --adapter "${adapter_path[$adapter]:-missing}" \
    --merged "$data/exports/$name" --inputs "$data/$model/inputs.safetensors" --name "$name" --dtype "$dtype" \
    --shards "$layout" --attn "$attn"
done

# The merged model's lineage leads back through the export and the trained adapter to the job's inputs.
lineage="$(tf lineage model merged-fwd-llama-all --up 2>&1)"
check "lineage: the merged model was exported from adapter fwd-llama-all" "<- adapter: adapter fwd-llama-all" "$lineage"
check "lineage: ... which job fwd-llama-all trained" "<- trained by: job fwd-llama-all SUCCEEDED [fine_tune]" "$lineage"
check "lineage: ... on dataset demo-instructions" "<- dataset: dataset demo-instructions r1" "$lineage"
check "lineage: ... from base model tiny-llama" "<- base model: model tiny-llama r1" "$lineage"

# An adapter export copies the PEFT directory byte for byte and registers no model.
export_watch "models export --type adapter SUCCEEDED" tiny-phi3 --adapter fwd-phi3-fused --type adapter \
  --destination "$data/exports/adapter-fwd-phi3-fused"
for f in adapter_config.json adapter_model.safetensors; do
  if cmp -s "${adapter_path[fwd-phi3-fused]:-missing}/$f" "$data/exports/adapter-fwd-phi3-fused/$f"; then
    ok "adapter export: $f byte-identical"
  else
    fail "adapter export: $f differs from the adapter's"
  fi
done

# An existing destination is refused unless --overwrite, which replaces it and gives the model a new revision.
check "export into an existing directory is refused, naming --overwrite" "overwrite" \
  "$(tf models export tiny-llama --adapter peft-llama-qv --type merged --destination \
     "$data/exports/merged-peft-llama-qv-bf16" --exported-name merged-peft-llama-qv-bf16 2>&1)"
export_watch "export --overwrite (fp32 over the bf16 export) SUCCEEDED" tiny-llama --adapter peft-llama-qv \
  --type merged --destination "$data/exports/merged-peft-llama-qv-bf16" \
  --exported-name merged-peft-llama-qv-bf16 --dtype fp32 --overwrite
check "the overwritten export is revision 2 of its model" "2" \
  "$(tf models get merged-peft-llama-qv-bf16 --output json 2>&1 | field "['model']['latest_revision']['revision_number']")"
python_checks check-merged --model "$data/tiny-llama" --adapter "${adapter_path[peft-llama-qv]:-missing}" \
  --merged "$data/exports/merged-peft-llama-qv-bf16" --inputs "$data/tiny-llama/inputs.safetensors" \
  --name "overwritten export" --dtype fp32 --shards single
check "models exports lists the five exports" "5" \
  "$("$py" -c 'import json,sys; print(len(json.load(sys.stdin).get("exports", [])))' \
     <<<"$(tf models exports --output json 2>&1)")"

# Evaluation: the base and two trained adapters scored on the test split by a trainer; every loss equals
# transformers' (PeftModel's for the adapters) on the same rows, and the results show side by side.
evaluated="$(timeout 300 "$cli_bin" --server "127.0.0.1:$port" eval start --model tiny-llama \
  --adapter fwd-llama-all,fwd-llama-qv-rslora --dataset demo-instructions --prompt qa --samples 2 \
  --set generation.max_new_tokens=8 --device cpu --name eval-tiny-llama --watch 2>&1)"
rc=$?
echo "$evaluated" >>"$work/eval.log"
if [ "$rc" -eq 0 ]; then
  ok "eval start --watch SUCCEEDED"
else
  fail "eval start --watch (exit $rc): $(tail -4 <<<"$evaluated")"
fi
check "eval watch prints the candidates side by side" "fwd-llama-qv-rslora" "$evaluated"
check "eval watch prints the samples" "reference:" "$evaluated"
tf eval get eval-tiny-llama --output json >"$work/eval.json" 2>&1
python_checks check-eval --model "$data/tiny-llama" --rows "$data/demo-instructions/test.jsonl" \
  --input-template $'Q: {question}\nA: ' --completion-template '{answer}' --result "$work/eval.json" \
  --adapter "fwd-llama-all=${adapter_path[fwd-llama-all]:-missing}" \
  --adapter "fwd-llama-qv-rslora=${adapter_path[fwd-llama-qv-rslora]:-missing}"
check "lineage: adapter fwd-llama-all was evaluated by eval-tiny-llama" "evaluated: job eval-tiny-llama" \
  "$(tf lineage adapter fwd-llama-all --down 2>&1)"
check "eval list shows the job" "eval-tiny-llama" "$(tf eval list 2>&1)"

echo "$passes passed, $failures failed (seed=$seed)"
[ "$failures" -eq 0 ]
