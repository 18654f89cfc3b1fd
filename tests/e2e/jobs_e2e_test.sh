#!/usr/bin/env bash
# End-to-end fine-tuning with real processes: tuneforge-metadata on its embedded PostgreSQL, two tuneforge-trainer
# workers, driven by buf curl. A job succeeds with a falling loss and a registered adapter; a cancel ends
# CANCELLED; SIGKILL of the trainer running a job -> the other trainer resumes it from its last checkpoint;
# restarting the metadata service mid-job -> the job still completes; bad Start requests -> typed errors.
# Usage: jobs_e2e_test.sh METADATA_BINARY TRAINER_BINARY SOURCE_DIR [CLI_BINARY]
set -uo pipefail
metadata_bin="$1"
trainer_bin="$2"
src="$3"
cli_bin="${4:-}"
buf="$src/tools/node_modules/.bin/buf"
work="$(mktemp -d /tmp/tuneforge-jobs-e2e-XXXXXX)"
chmod 755 "$work"
home="$work/home"
port=$((20000 + RANDOM % 20000))
source "$src/tests/e2e/lib.sh"
# With the admin token the service's first start writes (auth is on by default).
call() {
  "$buf" curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $(cat "$home/admin-token" 2>/dev/null)" \
    "http://127.0.0.1:$port/$1" -d "$2" 2>&1
}
watch_job() {  # watch_job JOB SECONDS: the job's events as WatchFineTuningJob streams them
  timeout "$2" "$buf" curl --protocol grpc --http2-prior-knowledge \
    -H "authorization: Bearer $(cat "$home/admin-token" 2>/dev/null)" \
    "http://127.0.0.1:$port/tuneforge.v1.FineTuningJobs/WatchFineTuningJob" -d "{\"job\": \"$1\"}" 2>&1
}
job_field() { call tuneforge.v1.FineTuningJobs/GetFineTuningJob "{\"job\": \"$1\"}" | field "$2"; }

server_ready() { call grpc.health.v1.Health/Check '{}' | grep -q SERVING; }
wait_state() {  # wait_state JOB STATES_REGEX SECONDS -> prints the state it ended in
  local state=""
  for _ in $(seq 1 $(($3 * 5))); do
    state="$(job_field "$1" "['job']['state']")"
    [[ "$state" =~ $2 ]] && break
    sleep 0.2
  done
  echo "$state"
}
wait_step() {  # wait_step JOB MIN_STEP SECONDS
  for _ in $(seq 1 $(($3 * 5))); do
    local step
    step="$(job_field "$1" "['job'].get('progress', {}).get('step', '0')")"
    [ "${step:-0}" -ge "$2" ] 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
start_job() {  # start_job NAME EXTRA_TRAINING_JSON
  call tuneforge.v1.FineTuningJobs/StartFineTuningJob "{\"name\": \"$1\", \"model\": \"demo-llama\", \
    \"dataset\": \"demo-instructions\", \"prompt\": \"qa\", \"lora\": {\"r\": 16, \"lora_alpha\": 32, \
    \"target_modules\": \"all-linear\"}, \"training\": {\"learning_rate\": 0.003, \"lr_scheduler\": \
    \"constant\", \"warmup_ratio\": 0, \"per_device_batch_size\": 4, \"gradient_accumulation_steps\": 1, \
    \"max_seq_len\": 64, \"dtype\": \"fp32\", \"device\": \"cpu\" $2}}"
}

mkdir -p "$home/data"
python3 "$src/scripts/make_demo_data.py" "$home/data" >/dev/null
start_server --lease-seconds 5
check "the worker token file is created with mode 600" "600" "$(stat -c %a "$home/worker-token")"
trainer_port=$((port + 1))
start_trainer t1 "$trainer_port"
start_trainer t2
check "reflection lists FineTuningJobs" "tuneforge.v1.FineTuningJobs" \
  "$("$buf" curl --protocol grpc --http2-prior-knowledge --list-services "http://127.0.0.1:$port" 2>&1)"

call tuneforge.v1.Models/AddModel "{\"name\": \"demo-llama\", \"local\": {\"path\": \"$home/data/demo-llama\"}}" >/dev/null
call tuneforge.v1.Datasets/AddDataset "{\"name\": \"demo-instructions\", \"local\": {\"train_path\": \
  \"$home/data/demo-instructions/train.jsonl\", \"test_path\": \"$home/data/demo-instructions/test.jsonl\"}}" >/dev/null
prompt='{"name": "qa", "dataset": "demo-instructions", "template": {"input_template": "Q: {question}\nA: ", "completion_template": "{answer}"}}'
check "AddPrompt" '"name": "qa"' "$(call tuneforge.v1.Prompts/AddPrompt "$prompt")"

# Bad requests: typed errors naming the field, nothing stored.
check "an unknown model is NOT_FOUND" '"code": "not_found"' \
  "$(call tuneforge.v1.FineTuningJobs/StartFineTuningJob '{"model": "nope", "dataset": "demo-instructions", "prompt": "qa"}')"
check "a bad setting names it" 'training.num_epochs' "$(start_job bad ', "num_epochs": 0')"
check "the worker queue refuses calls without the token" '"code": "unauthenticated"' \
  "$("$buf" curl --protocol grpc --http2-prior-knowledge "http://127.0.0.1:$port/tuneforge.internal.v1.WorkerQueue/LeaseJob" \
     -d '{"worker_id": "intruder"}' 2>&1)"
check "the admin token is not a trainer's" '"code": "permission_denied"' \
  "$(call tuneforge.internal.v1.WorkerQueue/LeaseJob '{"worker_id": "intruder"}')"

# 1. A job runs to SUCCEEDED on one of the trainers, with a falling loss and a registered adapter.
started="$(start_job good ', "num_epochs": 8, "save_steps": 20')"
check "StartFineTuningJob queues the job" '"state": "JOB_STATE_QUEUED"' "$started"
watch="$(watch_job good 300)"
check "Watch streams until SUCCEEDED" '"state": "JOB_STATE_SUCCEEDED"' "$watch"
check "Watch streams progress events" '"kind": "JOB_EVENT_KIND_PROGRESS"' "$watch"
check "Watch streams checkpoint events" '"kind": "JOB_EVENT_KIND_CHECKPOINT"' "$watch"
losses="$(echo "$watch" | python3 -c '
import json, sys
text = sys.stdin.read()
dec, i, out = json.JSONDecoder(), 0, []
while i < len(text):
    j = text.find("{", i)
    if j < 0: break
    obj, i = dec.raw_decode(text, j)
    m = obj.get("event", {}).get("metrics", {})
    if "trainLoss" in m: out.append(m["trainLoss"])
print(len(out), out[0] if out else 0, out[-1] if out else 0)')"
read -r n first last <<<"$losses"
if [ "${n:-0}" -ge 3 ] && python3 -c "import sys; sys.exit(0 if $last < 0.85 * $first else 1)"; then
  ok "the loss falls ($first -> $last over $n reports)"
else
  fail "the loss did not fall: $losses"
fi
adapter="$(job_field good "['job']['adapterId']")"
got="$(call tuneforge.v1.Adapters/GetAdapter "{\"adapter\": \"$adapter\"}")"
check "the adapter is registered as trained" '"sourceType": "SOURCE_TYPE_TRAINED"' "$got"
check "the adapter records its job" "\"jobId\": \"$(job_field good "['job']['id']")\"" "$got"
check "the adapter is on disk in PEFT format" "adapter_model.safetensors" "$(ls "$home/artifacts/jobs/"*/adapter)"
check "ListCheckpoints lists the checkpoints" '"step": "20"' \
  "$(call tuneforge.v1.FineTuningJobs/ListCheckpoints '{"job": "good"}')"

# The trainer's own service through the CLI, behind the worker token.
if [ -n "$cli_bin" ]; then
  status="$("$cli_bin" trainer status --trainer "127.0.0.1:$trainer_port" --token-file "$home/worker-token" 2>&1)"
  check "tuneforge trainer status names the trainer" "worker_id: t1" "$status"
  check "tuneforge trainer status shows its cache" "cache_dir:" "$status"
  echo "not-the-token" >"$work/wrong-token"
  check "a wrong worker token is PERMISSION_DENIED" "PERMISSION_DENIED" \
    "$("$cli_bin" trainer status --trainer "127.0.0.1:$trainer_port" --token-file "$work/wrong-token" 2>&1)"
fi

# 2. Cancel a running job: CANCELLED within 10 seconds.
start_job cancel-me ', "max_steps": 100000' >/dev/null
[ "$(wait_state cancel-me 'RUNNING' 60)" = "JOB_STATE_RUNNING" ] && wait_step cancel-me 1 60
call tuneforge.v1.FineTuningJobs/CancelFineTuningJob '{"job": "cancel-me"}' >/dev/null
t0=$(date +%s)
state="$(wait_state cancel-me 'CANCELLED|FAILED|SUCCEEDED' 15)"
check "cancel ends CANCELLED" "JOB_STATE_CANCELLED" "$state"
if [ $(($(date +%s) - t0)) -le 10 ]; then ok "cancel took at most 10 s"; else fail "cancel took $(($(date +%s) - t0)) s"; fi

# 3. SIGKILL the trainer running a job: the other trainer resumes it from the last checkpoint.
start_job killed ', "max_steps": 1500, "save_steps": 10' >/dev/null
wait_state killed 'RUNNING' 60 >/dev/null
wait_step killed 20 120
victim="$(job_field killed "['job']['workerId']")"
if [ -n "$victim" ] && [ -n "${trainers[$victim]:-}" ]; then
  kill -9 "${trainers[$victim]}"
  wait "${trainers[$victim]}" 2>/dev/null
  unset "trainers[$victim]"
  ok "killed trainer $victim with SIGKILL at step $(job_field killed "['job']['progress']['step']")"
else
  fail "no trainer runs job 'killed' (worker '$victim')"
fi
state="$(wait_state killed 'SUCCEEDED|FAILED|CANCELLED' 180)"
check "the killed job completes on the other trainer" "JOB_STATE_SUCCEEDED" "$state"
check "it took a second attempt" "2" "$(job_field killed "['job']['attempts']")"
check "with all the steps" "1500" "$(job_field killed "['job']['progress']['step']")"
events="$(watch_job killed 60)"
check "the second attempt resumed from a checkpoint" "resumed from checkpoint-" "$events"
start_trainer t3

# 3b. SIGTERM the trainer running a job: it hands the job back at once (no lease expiry), and another resumes it.
start_job handed-back ', "max_steps": 1500, "save_steps": 10' >/dev/null
wait_state handed-back 'RUNNING' 60 >/dev/null
wait_step handed-back 20 120
victim="$(job_field handed-back "['job']['workerId']")"
if [ -n "$victim" ] && [ -n "${trainers[$victim]:-}" ]; then
  kill -TERM "${trainers[$victim]}"
  wait "${trainers[$victim]}"
  check "a trainer stopped by SIGTERM exits 0" "0" "$?"
  unset "trainers[$victim]"
else
  fail "no trainer runs job 'handed-back' (worker '$victim')"
fi
state="$(wait_state handed-back 'SUCCEEDED|FAILED|CANCELLED' 180)"
check "the handed-back job completes on another trainer" "JOB_STATE_SUCCEEDED" "$state"
check "with all the steps" "1500" "$(job_field handed-back "['job']['progress']['step']")"
check "the first attempt handed it back to the queue" "shut down; another trainer resumes the job" \
  "$(watch_job handed-back 60)"
start_trainer t4

# 4. Restart the metadata service mid-job: the trainer waits for it and the job completes.
start_job restarted ', "max_steps": 1500, "save_steps": 50' >/dev/null
wait_state restarted 'RUNNING' 60 >/dev/null
wait_step restarted 5 120
kill "$server"; wait "$server" 2>/dev/null
sleep 1
start_server --lease-seconds 5
state="$(wait_state restarted 'SUCCEEDED|FAILED|CANCELLED' 240)"
check "the job completes across a metadata restart" "JOB_STATE_SUCCEEDED" "$state"
check "with all the steps" "1500" "$(job_field restarted "['job']['progress']['step']")"

if grep -q "$(cat "$home/worker-token")" "$work"/*.log; then fail "the worker token appears in a log"; else ok "the worker token appears in no log"; fi
echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
