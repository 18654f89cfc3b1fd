#!/usr/bin/env bash
# End-to-end: the tuneforge CLI against the real tuneforge-metadata on its embedded PostgreSQL, and (when its
# binary is given) against a scripted FineTuningJobs server for jobs watch, the progress bar and reconnection.
# Usage: cli_test.sh METADATA_BINARY CLI_BINARY SOURCE_DIR [FAKE_JOBS_BINARY]
set -uo pipefail
metadata="$(realpath "$1")"
cli="$(realpath "$2")"
src="$(realpath "$3")"
fake="${4:+$(realpath "$4")}"
work="$(mktemp -d /tmp/tuneforge-cli-e2e-XXXXXX)"
chmod 755 "$work"
failures=0
passes=0
server=""
fake_pid=""

cleanup() {
  for pid in "$server" "$fake_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pass() { passes=$((passes + 1)); echo "ok   $1"; }
fail() { failures=$((failures + 1)); echo "FAIL $1"; }
check() {  # check NAME EXPECTED_SUBSTRING ACTUAL
  if [[ "$3" == *"$2"* ]]; then pass "$1"; else fail "$1: expected to find '$2' in:"; echo "$3" | head -20; fi
}
check_not() {  # check_not NAME UNEXPECTED_SUBSTRING ACTUAL
  if [[ "$3" != *"$2"* ]]; then pass "$1"; else fail "$1: did not expect '$2' in:"; echo "$3" | head -20; fi
}
check_rc() {  # check_rc NAME EXPECTED_RC (of the last tf call)
  if [ "$rc" -eq "$2" ]; then pass "$1 (exit $rc)"; else
    fail "$1: exit code $rc, expected $2"; echo "stdout:"; echo "$out" | head -10; echo "stderr:"; echo "$err" | head -10
  fi
}
# tf ARGS...: runs the CLI; sets out, err and rc.
tf() { out="$("$cli" "$@" 2>"$work/stderr")"; rc=$?; err="$(cat "$work/stderr")"; }
# py EXPR: evaluates EXPR with d = the JSON document in $out.
py() { python3 -c 'import json, sys; d = json.loads(sys.argv[2]); print(eval(sys.argv[1]))' "$1" "$out" 2>&1; }

port="$(free_port)"
export TUNEFORGE_SERVER="127.0.0.1:$port"
# The CLI reads the admin token the service's first start writes to <home>/admin-token.
export TUNEFORGE_HOME="$work/home"
data="$work/home/data"
mkdir -p "$data"
python3 "$src/scripts/make_demo_data.py" "$data" >/dev/null

# --- the command line alone: help for every command, usage errors, no server needed.
help_cases=(
  "models add|NAME PATH --hf --token-file --description"
  "models get|NAME"
  "models list|--name-prefix --family --source-type --page-size --page-token"
  "models revisions|NAME --page-size --page-token"
  "models remove|NAME --force"
  "models export|NAME --adapter --type --destination --exported-name --dtype --max-shard-size --overwrite --job-name --revision --watch --reconnect-for"
  "models exports|--model --adapter --page-size --page-token"
  "datasets add|NAME TRAIN_FILE --test-file --test-size --seed --hf --token-file --config --train-split --test-split --data-files --description"
  "datasets get|NAME"
  "datasets list|--name-prefix --source-type --page-size --page-token"
  "datasets revisions|NAME --page-size"
  "datasets preview|NAME --split --revision"
  "datasets remove|NAME --force"
  "prompts add|NAME --dataset --dataset-revision --template-input --template-completion --chat-column --chat-format --alpaca --alpaca-instruction --alpaca-input --alpaca-output --alpaca-chat"
  "prompts get|NAME"
  "prompts list|--name-prefix --dataset --page-size"
  "prompts remove|NAME --force"
  "configs add|NAME --type --file --set --description"
  "configs get|NAME"
  "configs list|--type --model --family --page-size"
  "configs remove|NAME --force"
  "adapters add|NAME PATH --model --model-revision --hf --token-file"
  "adapters get|NAME"
  "adapters list|--name-prefix --model --source-type --page-size"
  "adapters remove|NAME --force"
  "admin export|--file"
  "admin import|FILE"
  "jobs start|--model --dataset --prompt --config --set --name --adapter-name --max-attempts --watch --reconnect-for"
  "jobs watch|JOB --reconnect-for"
  "jobs get|JOB"
  "jobs list|--state --model --kind --page-size --page-token"
  "jobs cancel|JOB"
  "jobs remove|JOB"
  "jobs checkpoints|JOB"
  "eval start|--model --adapter --dataset --prompt --split --max-examples --samples --set --device --dtype --watch"
  "eval watch|JOB --reconnect-for"
  "eval get|JOB"
  "eval list|--state --model --page-size"
  "eval cancel|JOB"
  "eval remove|JOB"
  "trainer status|--trainer --token-file"
  "trainer prefetch|REPO --trainer --token-file --dataset"
  "tokens create|NAME --role --description --ttl"
  "tokens list|--all"
  "tokens revoke|NAME"
  "tokens whoami|"
  "lineage model|NAME --revision --up --down --depth"
  "lineage dataset|NAME --revision --up --down --depth"
  "lineage prompt|NAME --up --down --depth"
  "lineage config|NAME --up --down --depth"
  "lineage job|NAME --up --down --depth"
  "lineage adapter|NAME --up --down --depth"
  "lineage export|NAME --up --down --depth"
)
tf --help
check_rc "tuneforge --help" 0
listed="$(echo "$out" | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on {print $1 " " $2}' | sort)"
expected="$(for c in "${help_cases[@]}"; do echo "${c%%|*}"; done | sort)"
if [ "$listed" == "$expected" ]; then pass "--help lists every command, each tested below"; else
  fail "--help lists other commands than this test covers:"; diff <(echo "$expected") <(echo "$listed"); fi
for c in "${help_cases[@]}"; do
  command="${c%%|*}"
  # shellcheck disable=SC2086
  tf $command --help
  bad=""
  [ "$rc" -eq 0 ] || bad="exit $rc"
  for word in "Usage: tuneforge $command" Example: --server --output ${c#*|}; do
    [[ "$out" == *"$word"* ]] || bad="$bad; no '$word'"
  done
  if [ -z "$bad" ]; then pass "$command --help"; else fail "$command --help: $bad"; echo "$out" | head -30; fi
done
tf models --help
check_rc "a group's --help" 0
check "a group's --help lists its commands" "models revisions" "$out"
tf models list --bogus
check_rc "an unknown flag is a usage error" 2
check "it names the flag" "unknown flag --bogus" "$err"
check "it prints the command's usage" "usage: tuneforge models list [flags]" "$err"
tf models get a b
check_rc "an extra argument is a usage error" 2
tf models get
check_rc "a missing argument is a usage error" 2
check "it names the argument" "needs NAME" "$err"
tf frobnicate
check_rc "an unknown command is a usage error" 2
tf --output yaml models list
check_rc "--output yaml is a usage error" 2
check "it says what --output takes" "text, json" "$err"
tf models add x "$data/demo-llama" --hf org/model
check_rc "a local path and --hf together are a usage error" 2
check "it says to give one" "exactly one of PATH, --hf" "$err"
tf datasets add x --hf org/ds --config main --data-files bogus
check_rc "--data-files takes a HubDataFiles value" 2
check "it names the values" "is not one of: repo, parquet_conversion" "$err"
tf models add x --token=hf_cli-secret-on-the-command-line
check_rc "--token is refused" 2
check "it points to --token-file" "--token-file" "$err"
check_not "the refused token is not echoed" "hf_cli-secret-on-the-command-line" "$out$err"
tf jobs list --state sleeping
check_rc "an unknown job state is a usage error" 2
check "it lists the states" "queued, running, cancelling, succeeded, failed, cancelled" "$err"
tf jobs list --kind training
check_rc "an unknown job kind is a usage error" 2
check "it lists the kinds" "fine_tune, export" "$err"
tf models export demo-llama --adapter a --type merged --destination "$data/merged" --exported-name m \
  --max-shard-size 2XB
check_rc "a --max-shard-size that is no size is a usage error" 2
check "it says how to write a size" "write e.g. 2GB, 500MB, 1GiB" "$err"

# --- nothing listens on the port yet.
tf models list
check_rc "no server: exit code 1" 1
check "no server: UNAVAILABLE" "error: UNAVAILABLE:" "$err"
check "no server: says the server is not reachable" "server at 127.0.0.1:$port is not reachable" "$err"
check "no server: says how to start it" "tuneforge-metadata --port $port" "$err"

# --- the real metadata service. The Hub endpoint is a closed port: Hub calls fail fast.
TUNEFORGE_HOME="$work/home" HF_ENDPOINT="http://127.0.0.1:9" "$metadata" --port "$port" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  "$cli" models list >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done

tf models add demo-llama "$data/demo-llama"
check_rc "models add of a local directory" 0
check "models add says what it did" "model demo-llama: CREATED" "$out"
check "models add shows the family" "family: llama" "$out"
check_not "models add hides config.json text" "config_json" "$out"
tf models add demo-llama "$data/demo-llama"
check "models add again finds the existing model" "model demo-llama: EXISTING" "$out"
# A source directory belongs to one model: the relative-path model gets a copy of its own.
cp -r "$data/demo-llama" "$data/rel-llama"
out="$(cd "$data" && "$cli" models add rel-llama rel-llama --description "relative path" 2>&1)"
check "a relative PATH is sent as an absolute path" "source: $data/rel-llama" "$out"

tf models list
check_rc "models list" 0
check "models list prints a table" "NAME        FAMILY  SOURCE  REVISIONS" "$out"
check "models list shows the model" "demo-llama  llama   LOCAL   1" "$out"
tf models list --output json
check_rc "models list --output json" 0
check "models list json has both models" "['demo-llama', 'rel-llama']" "$(py 'sorted(m["name"] for m in d["models"])')"
check "models list json has the family" "llama" "$(py 'd["models"][0]["family"]')"
check "models list json always has next_page_token" "True" "$(py '"next_page_token" in d')"
tf models list --family mistral --output json
check "models list --family filters" "0" "$(py 'len(d["models"])')"
tf models list --page-size 1
check "models list pages" "more results: add --page-token" "$out"
tf models get demo-llama --output json
check_rc "models get --output json" 0
check "models get json has the latest revision" "llama 1" \
  "$(py 'd["model"]["latest_revision"]["family"] + " " + str(d["model"]["latest_revision"]["revision_number"])')"
check "int64 fields are JSON strings in proto3 JSON" "True" "$(py 'int(d["model"]["latest_revision"]["parameter_count"]) > 0')"
tf models get demo-llama
check "models get prints key: value lines" "name: demo-llama" "$out"
check "models get prints nested blocks" "latest_revision:" "$out"
check "models get prints files" "path=model.safetensors" "$out"
tf models get no-such-model
check_rc "models get of a missing name" 1
check "it prints error: NOT_FOUND" "error: NOT_FOUND:" "$err"
if [ -z "$out" ]; then pass "stdout is empty on an error"; else fail "stdout is not empty on an error: $out"; fi
tf models revisions demo-llama
check "models revisions lists revision 1" "REVISION  COMMIT" "$out"
tf lineage model demo-llama
check_rc "lineage model" 0
check "lineage names the revision" "model demo-llama r1 [llama]" "$out"
check "a registered model was made from nothing registered" "made from: nothing registered" "$out"
tf lineage model demo-llama --down --output json
check "lineage --output json is the graph" "LINEAGE_KIND_MODEL_REVISION" "$out"
tf lineage adapter no-such-adapter
check_rc "lineage of a missing adapter" 1
check "it says what to run" "ListAdapters" "$err"

tf datasets add demo-instructions "$data/demo-instructions/train.jsonl" --test-file "$data/demo-instructions/test.jsonl"
check_rc "datasets add of a jsonl file" 0
check "datasets add says what it did" "dataset demo-instructions: CREATED" "$out"
check "datasets add shows the format" "format: jsonl" "$out"
cp "$data/demo-instructions/train.jsonl" "$data/cut-split.jsonl"
tf datasets add cut-split "$data/cut-split.jsonl" --test-size 0.2 --seed 7 --output json
check "datasets add --test-size/--seed reach the request" "True 0.2 7" \
  "$(py 'str(d["revision"]["split_generated"]) + " " + str(d["revision"]["test_size"]) + " " + str(d["revision"]["split_seed"])')"
tf datasets add bad-size "$data/cut-split.jsonl" --test-size lots
check_rc "a non-number --test-size is a usage error" 2
tf datasets list
check "datasets list shows the dataset" "demo-instructions  jsonl" "$out"
tf datasets preview demo-instructions --split train
check_rc "datasets preview" 0
check "datasets preview shows rows" "question" "$out"

tf prompts add qa --dataset demo-instructions \
  --template-input $'### Question:\n{question}\n### Answer:\n' --template-completion '{answer}'
check_rc "prompts add with templates" 0
check "prompts add says what it did" "prompt qa revision 1: CREATED" "$out"
check "prompts add shows the template on one line" 'input_template: "### Question:\n{question}\n### Answer:\n"' "$out"
tf prompts get qa --output json
check "prompts get json has the slots" "['answer', 'question']" "$(py 'sorted(d["prompt"]["slots"])')"
tf prompts add bad --dataset demo-instructions --template-input '{nope}' --template-completion '{answer}'
check_rc "a template slot that is not a column" 1
check "it is INVALID_ARGUMENT from the server" "error: INVALID_ARGUMENT:" "$err"
check "it names the slot" "nope" "$err"
tf prompts add both --dataset demo-instructions --template-input '{question}' --chat-column messages
check_rc "--template-input and --chat-column together" 2
tf prompts add al --dataset demo-instructions --alpaca --alpaca-instruction question --alpaca-output answer \
  --alpaca-chat --output json
check_rc "prompts add --alpaca" 0
check "the --alpaca flags reach the request" "PROMPT_MODE_ALPACA question answer True ['question', 'answer']" \
  "$(py '" ".join([d["prompt"]["mode"], d["prompt"]["instruction_column"], d["prompt"]["output_column"],
                   str(d["prompt"]["use_chat_template"]), str(d["prompt"]["slots"])])')"
tf prompts add al2 --dataset demo-instructions --alpaca
check_rc "an --alpaca column the dataset lacks" 1
check "it names the flag to set" "Set alpaca.instruction_column (--alpaca-instruction)" "$err"
tf prompts add sg --dataset demo-instructions --chat-column question --chat-format xml
check_rc "an unknown --chat-format" 1
check "--chat-format reaches the request" "chat.message_format is 'xml'" "$err"
tf prompts add al3 --dataset demo-instructions --alpaca --chat-column question
check_rc "--alpaca and --chat-column together" 2
tf prompts list
check "prompts list shows the prompt" "qa" "$out"

tf eval start --model demo-llama --dataset demo-instructions --prompt qa --split validation
check_rc "eval start --split validation is refused" 1
check "it names the field" "split" "$err"
tf eval start --model demo-llama --dataset demo-instructions --prompt qa --adapter no-such-adapter
check_rc "eval start with an unknown adapter" 1
check "it names the adapter" "adapters[0]" "$err"
tf eval start --model demo-llama --dataset demo-instructions --prompt qa --samples 1 \
  --set generation.max_new_tokens=4 --name eval-cli
check_rc "eval start" 0
check "eval start names the job" "started evaluation job eval-cli" "$out"
tf eval list
check "eval list shows it" "eval-cli" "$out"
tf eval get eval-cli
check "eval get shows the split" "split: test" "$out"
tf jobs list --kind evaluation
check "jobs list --kind evaluation shows it" "eval-cli" "$out"
tf eval cancel eval-cli
check "eval cancel" "CANCELLED" "$out"
tf eval remove eval-cli
check "eval remove" "removed evaluation job eval-cli" "$out"

tf configs list
check_rc "configs list" 0
tf configs list --model demo-llama --output json
check_rc "configs list --model" 0
check "configs list --model gives llama defaults" "True" \
  "$(py 'len(d["configs"]) > 0 and all(c["family"] == "llama" and c["is_default"] for c in d["configs"])')"
tf configs add small-lora --type lora --set r=8 --set lora_alpha=16 --set 'target_modules=["q_proj","v_proj"]' --output json
check_rc "configs add --set" 0
check "--set values arrive typed" "8 16 ['q_proj', 'v_proj']" \
  "$(py '" ".join(str(x) for x in (int(d["config"]["content"]["r"]), int(d["config"]["content"]["lora_alpha"]), d["config"]["content"]["target_modules"]))')"
echo '{"num_epochs": 2, "learning_rate": 0.0001}' >"$work/training.json"
tf configs add --type training --file "$work/training.json" --set num_epochs=3 --output json
check_rc "configs add --file" 0
check "--set applies on top of --file" "3 0.0001" \
  "$(py 'str(int(d["config"]["content"]["num_epochs"])) + " " + str(d["config"]["content"]["learning_rate"])')"
tf configs add --type lora --set r=0
check_rc "a config value out of range" 1
check "it is INVALID_ARGUMENT naming the key" "error: INVALID_ARGUMENT:" "$err"
check "the message names r" "r" "$err"
tf configs add --type lora --set r
check_rc "--set without '=' is a usage error" 2
tf configs add --type sparkle --set r=8
check_rc "an unknown config type is a usage error" 2
check "it lists the types" "lora, training, generation, quantization" "$err"
tf configs add --type lora --file "$work/missing.json"
check_rc "a missing --file is a usage error" 2
tf configs add other-name --type lora --set r=8 --set lora_alpha=16 --set 'target_modules=["q_proj","v_proj"]'
check_rc "configs add with the content of another config" 0
check "it says the name was not used" "note: the name 'other-name' was not used" "$out"
check "and which config holds the content" "which keeps its name 'small-lora'" "$out"
tf configs get small-lora
check "configs get shows the type" "type: LORA" "$out"
tf configs remove small-lora
check_rc "configs remove" 0
check "configs remove says so" "removed config small-lora" "$out"
tf configs get small-lora
check_rc "a removed config is gone" 1
check "it is NOT_FOUND" "error: NOT_FOUND:" "$err"

tf adapters list
check_rc "adapters list" 0
check "an empty list says so" "no adapters found" "$out"
tf adapters get no-such-adapter
check_rc "adapters get of a missing name" 1

# Hub tokens: from a file or HF_TOKEN only, never shown. The server answers UNAVAILABLE (Hub down) while the
# channel is up, so the CLI must not claim the server is unreachable.
secret="hf_cli-e2e-secret-token"
printf '%s\n' "$secret" >"$work/token"
tf models add gated --hf org/model@main --token-file "$work/token"
check_rc "models add --hf with an unreachable Hub" 1
check "it is UNAVAILABLE" "error: UNAVAILABLE:" "$err"
check_not "the server is not called unreachable" "is not reachable" "$err"
seen="$out$err"
HF_TOKEN="$secret-env" tf models add gated --hf org/model
check_rc "models add --hf with HF_TOKEN and an unreachable Hub" 1
seen="$seen$out$err"
tf models add x "$data/demo-llama" --token-file "$work/token"
check_rc "--token-file without --hf is a usage error" 2
if grep -q "$secret" "$work/server.log" || [[ "$seen$out$err" == *"$secret"* ]]; then
  fail "a Hub token appears in the output or the server log"
else
  pass "Hub tokens appear in neither the output nor the server log"
fi

# --- tokens: the admin token from <home>/admin-token is used by default; a viewer token can list, not add.
tf tokens whoami
check "whoami: the bootstrap admin token" "token_name: admin" "$out"
tf tokens create ci-viewer --role viewer --ttl 1h
check_rc "tokens create" 0
check "the secret is printed alone" "tft_" "$out"
check "stderr says it is shown once" "shown only now" "$err"
printf '%s\n' "$out" >"$work/viewer.token"
chmod 600 "$work/viewer.token"
tf --api-token-file "$work/viewer.token" models list
check_rc "a viewer lists" 0
tf --api-token-file "$work/viewer.token" models remove demo-llama
check_rc "a viewer cannot remove: exit 1" 1
check "PERMISSION_DENIED names the role" "PERMISSION_DENIED: tuneforge.v1.Models/RemoveModel needs the operator role" "$err"
tf tokens list
check "tokens list shows it without the secret" "ci-viewer" "$out"
check_not "tokens list never shows a secret" "$(cat "$work/viewer.token")" "$out"
tf tokens revoke ci-viewer
check_rc "tokens revoke" 0
tf --api-token-file "$work/viewer.token" models list
check "a revoked token is UNAUTHENTICATED" "UNAUTHENTICATED" "$err"
TUNEFORGE_HOME="$work/elsewhere" tf models list
check "no token at all is UNAUTHENTICATED and says what to send" "Bearer" "$err"
tf --server "ipv4:127.0.0.1:$port" models list
check "the local admin token goes to no server the CLI cannot tell is on this machine" "UNAUTHENTICATED" "$err"
tf --server "ipv4:127.0.0.1:$port" --api-token-file "$work/home/admin-token" models list
check_rc "a token file named explicitly goes to any server" 0

# Jobs on the real server: the FineTuningJobs service may not be there yet.
tf jobs list
if [ "$rc" -eq 1 ] && [[ "$err" == *"UNIMPLEMENTED"* ]]; then
  pass "jobs list: the server has no FineTuningJobs service yet (error: UNIMPLEMENTED)"
else
  check_rc "jobs list" 0
  tf jobs start --model demo-llama --dataset demo-instructions --prompt qa --set lora.r=8 --set training.num_epochs=2 \
    --name cli-e2e-job --output json
  check_rc "jobs start" 0
  check "jobs start applies --set lora.r" "8" "$(py 'int(d["job"]["settings"]["lora"]["r"])')"
  tf jobs cancel cli-e2e-job
  check_rc "jobs cancel" 0
  check "a queued job is cancelled at once" "CANCELLED" "$out"
  tf jobs watch cli-e2e-job
  check_rc "jobs watch of a cancelled job exits 1" 1
  check "jobs watch prints the summary" "job cli-e2e-job" "$out"
  check "the summary has the state" "CANCELLED" "$out"
fi

tf admin export --file "$work/export.json"
check_rc "admin export --file" 0
check "admin export prints row counts" "models: 2" "$out"
check "the exported document is a tuneforge database" "tuneforge-database" \
  "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["format"])' "$work/export.json" 2>&1)"
check_not "admin export --file leaves no partial file" "partial" "$(ls "$work")"
tf admin export
check "admin export without --file prints the document" '"format": "tuneforge-database"' "$out"
tf admin export --output json
check "admin export --output json has the row counts" "2" "$(py 'd["row_counts"]["models"]')"
check "admin export --output json has the document" "tuneforge-database" "$(py 'json.loads(d["document"])["format"]')"
tf admin export --file "$work/no-such-dir/export.json"
check_rc "admin export into a missing directory" 1
check "it names the file" "cannot write --file" "$err"
# The import streams the file; into the database it came from, every record conflicts and nothing is written.
tf admin import "$work/export.json"
check_rc "admin import into the exporting database" 1
check "it is ALREADY_EXISTS and writes nothing" "nothing was imported" "$err"
printf '{"format": oops}' >"$work/bad.json"
tf admin import "$work/bad.json"
check_rc "admin import of a malformed document" 1
check "it says where the JSON breaks" "document is not JSON: error at byte 12" "$err"
: >"$work/empty.json"
tf admin import "$work/empty.json"
check_rc "admin import of an empty file is a usage error" 2

tf models remove rel-llama
check_rc "models remove" 0
check "models remove says so" "removed model rel-llama" "$out"
tf models get rel-llama
check_rc "a removed model is gone" 1

kill "$server"; wait "$server" 2>/dev/null
tf models list
check_rc "server stopped: exit code 1" 1
check "server stopped: UNAVAILABLE, not reachable" "is not reachable" "$err"

# --- jobs watch against the scripted FineTuningJobs server: events at fixed server times (2 s per step).
if [ -n "$fake" ]; then
  fport="$(free_port)"
  flog="$work/fake.log"
  start_fake() {  # start_fake [FLAGS...]
    "$fake" --port "$fport" --log "$flog" "$@" >"$work/fake.out" 2>&1 &
    fake_pid=$!
    for _ in $(seq 1 100); do grep -q listening "$work/fake.out" && break; sleep 0.05; done
  }
  stop_fake() { kill "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null; fake_pid=""; }
  export TUNEFORGE_SERVER="127.0.0.1:$fport"
  start_fake

  tf jobs start --model m --dataset d --prompt p --config small --set lora.r=8 --set training.num_epochs=2 \
    --set 'lora.target_modules=["q_proj"]' --name sft --output json
  check_rc "jobs start (scripted server)" 0
  check "--set lora.* and training.* go to their sections" "8 2 ['q_proj']" \
    "$(py '" ".join(str(x) for x in (int(d["job"]["settings"]["lora"]["r"]), int(d["job"]["settings"]["training"]["num_epochs"]), d["job"]["settings"]["lora"]["target_modules"]))')"
  check "--config reaches the request" '"configs":["small"]' "$(grep '^start' "$flog")"
  tf jobs start --model m --dataset d --prompt p --set optimizer.lr=1
  check_rc "--set outside lora./training. is a usage error" 2
  check "it names the sections" "must start with lora. or training." "$err"
  tf jobs list --state running,queued
  check "--state takes a comma list" '"states":["JOB_STATE_RUNNING","JOB_STATE_QUEUED"]' "$(grep '^list' "$flog")"
  check "jobs list prints a table" "fake-job  FINE_TUNE  SUCCEEDED  10    10     1" "$out"

  tf jobs watch fake-job
  check_rc "jobs watch of a job that SUCCEEDED" 0
  check "the progress line (step, epoch, loss, eval, tok/s, MFU, peak memory, ETA, state)" \
    "[##########..........] step 5/10  epoch 1/2  loss 1.5  eval 1.1  312 tok/s  MFU 42%  3.2 GiB  ETA 0:10  RUNNING" "$out"
  check "the ETA is unknown until two steps were seen" "[##..................] step 1/10  epoch 1/2  loss 1.9  312 tok/s  ETA ?  RUNNING" "$out"
  check "state changes are printed" "state: RUNNING - attempt 1 on fake-worker" "$out"
  check "checkpoints are printed" "info: saved checkpoint at step 5" "$out"
  check "the summary has the state and duration" "job fake-job (6f1c2a52-0000-4000-8000-000000000001): SUCCEEDED after 0:22" "$out"
  check "the summary has the adapter" "adapter: fake-job (adapter-0001)" "$out"
  check "one plain line per progress event" "10" "$(echo "$out" | grep -c '^\[.*\] step ')"
  tf jobs watch fake-job --output json
  check_rc "jobs watch --output json" 0
  check "one JSON line per event" "14" "$(echo "$out" | python3 -c 'import json, sys; print(len([json.loads(l) for l in sys.stdin]))' 2>&1)"
  tf jobs start --model m --dataset d --prompt p --watch
  check_rc "jobs start --watch" 0
  check "jobs start --watch watches" "SUCCEEDED after 0:22" "$out"
  tf jobs watch no-such-job
  check_rc "jobs watch of a missing job" 1
  check "it is NOT_FOUND" "error: NOT_FOUND:" "$err"

  # On a terminal (script(1) from util-linux gives it one) the bar is redrawn in place.
  if command -v script >/dev/null; then
    out="$(script -qec "'$cli' jobs watch fake-job" /dev/null 2>&1)"; rc=$?
    check_rc "jobs watch on a terminal" 0
    check "the bar is redrawn in place" $'\r\033[K[##########..........] step 5/10' "$out"
    check "the summary follows the bar" "SUCCEEDED after 0:22" "$out"
  else
    echo "skip jobs watch on a terminal: no script(1)"
  fi

  stop_fake
  start_fake --final failed
  tf jobs watch fake-job
  check_rc "jobs watch of a job that FAILED" 1
  check "the summary has the error code and message" "error: RESOURCE_EXHAUSTED: out of memory at step 10" "$out"

  # The server dies after event 6 and comes back: the watch resumes after event 6.
  stop_fake
  : >"$flog"
  start_fake --stop-after 6
  "$cli" jobs watch fake-job >"$work/watch.out" 2>&1 &
  watcher=$!
  wait "$fake_pid" 2>/dev/null
  fake_pid=""
  sleep 1
  start_fake
  wait "$watcher"; rc=$?
  out="$(cat "$work/watch.out")"
  err=""
  check_rc "jobs watch across a server restart" 0
  check "it says it is reconnecting" "reconnecting, resuming after event 6" "$out"
  check "it says it reconnected" "reconnected to 127.0.0.1:$fport" "$out"
  check "the second watch asks for the events after 6" \
  "watch job=6f1c2a52-0000-4000-8000-000000000001 after_sequence=6" "$(cat "$flog")"
  check "no step is shown twice" "1" "$(echo "$out" | grep -c '\] step 4/10 ')"
  check "the watch ends with the summary" "SUCCEEDED after 0:22" "$out"

  stop_fake
  tf jobs watch fake-job
  check_rc "jobs watch with no server" 1
  check "it is UNAVAILABLE at once" "is not reachable" "$err"
fi

if [ "$failures" -ne 0 ]; then echo "--- server log"; tail -40 "$work/server.log" 2>/dev/null; fi
echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
