#!/usr/bin/env bash
# End-to-end: the real tuneforge-metadata binary on its embedded PostgreSQL, driven by buf curl
# (an external gRPC client that knows our API only through server reflection).
# Usage: buf_curl_test.sh METADATA_BINARY SOURCE_DIR
set -uo pipefail
binary="$1"
src="$2"
buf="$src/tools/node_modules/.bin/buf"
work="$(mktemp -d /tmp/tuneforge-e2e-XXXXXX)"
chmod 755 "$work"
port=$((20000 + RANDOM % 20000))
failures=0
passes=0
server=""

cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill "$server"; wait "$server" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

check() {  # check NAME EXPECTED_SUBSTRING ACTUAL
  if [[ "$3" == *"$2"* ]]; then
    passes=$((passes + 1)); echo "ok   $1"
  else
    failures=$((failures + 1)); echo "FAIL $1: expected to find '$2' in:"; echo "$3" | head -20
  fi
}
# With the admin token the service's first start writes (auth is on by default).
call() {
  "$buf" curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $(cat "$home/admin-token" 2>/dev/null)" \
    "http://127.0.0.1:$port/$1" -d "$2" 2>&1
}

home="$work/home"
mkdir -p "$work/home/data"
python3 "$src/scripts/make_demo_data.py" "$work/home/data" >/dev/null
# The Hub endpoint is a closed port: Hub calls fail fast, which is enough to see what gets logged.
TUNEFORGE_HOME="$work/home" HF_ENDPOINT="http://127.0.0.1:9" "$binary" --port "$port" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  call grpc.health.v1.Health/Check '{}' | grep -q SERVING && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done

check "health check answers SERVING" '"status": "SERVING"' "$(call grpc.health.v1.Health/Check '{}')"
services="$("$buf" curl --protocol grpc --http2-prior-knowledge --list-services "http://127.0.0.1:$port" 2>&1)"
for s in tuneforge.v1.Models tuneforge.v1.Datasets tuneforge.v1.Prompts tuneforge.v1.Configs tuneforge.v1.Adapters \
         tuneforge.v1.Admin tuneforge.v1.FineTuningJobs tuneforge.v1.EvaluationJobs tuneforge.v1.Tokens tuneforge.v1.Lineage \
         grpc.health.v1.Health; do
  check "reflection lists $s" "$s" "$services"
done
check "reflection lists methods" "tuneforge.v1.Models/AddModel" \
  "$("$buf" curl --protocol grpc --http2-prior-knowledge --list-methods "http://127.0.0.1:$port" 2>&1)"

# Auth is on by default: no token is UNAUTHENTICATED, and the message says what to send.
anonymous="$("$buf" curl --protocol grpc --http2-prior-knowledge "http://127.0.0.1:$port/tuneforge.v1.Models/ListModels" -d '{}' 2>&1)"
check "a call without a token is UNAUTHENTICATED" '"code": "unauthenticated"' "$anonymous"
check "it says what to send" "Bearer" "$anonymous"
check "the first start wrote the admin token, mode 600" "600" "$(stat -c %a "$home/admin-token" 2>&1)"
check "the admin token works" '"roleAdmin"' "$(call tuneforge.v1.Tokens/GetCaller '{}' | tr -d ' ' | sed 's/"role":"ROLE_ADMIN"/"roleAdmin"/')"

added="$(call tuneforge.v1.Models/AddModel "{\"name\": \"demo-llama\", \"local\": {\"path\": \"$work/home/data/demo-llama\"}}")"
check "AddModel creates the model" '"outcome": "ADD_OUTCOME_CREATED"' "$added"
check "AddModel detects the family" '"family": "llama"' "$added"
again="$(call tuneforge.v1.Models/AddModel "{\"name\": \"demo-llama\", \"local\": {\"path\": \"$work/home/data/demo-llama\"}}")"
check "AddModel again returns the existing record" '"outcome": "ADD_OUTCOME_EXISTING"' "$again"
check "ListModels shows it" '"name": "demo-llama"' "$(call tuneforge.v1.Models/ListModels '{}')"

missing="$(call tuneforge.v1.Models/GetModel '{"model": "no-such-model"}')"
check "GetModel of an unknown name is NOT_FOUND" '"code": "not_found"' "$missing"
check "the message says what to do" "ListModels" "$missing"
outside="$(call tuneforge.v1.Models/AddModel '{"name": "x", "local": {"path": "/etc"}}')"
check "a path outside the allowed roots is refused" '"code": "permission_denied"' "$outside"
bad="$(call tuneforge.v1.Models/ListModels '{"page_size": 5000}')"
check "page_size out of range is INVALID_ARGUMENT" '"code": "invalid_argument"' "$bad"

secret="hf_e2e-secret-token-that-must-never-be-logged"
hub="$(call tuneforge.v1.Models/AddModel "{\"name\": \"gated\", \"huggingface\": {\"repo_id\": \"org/model\", \"token\": \"$secret\"}}")"
check "an unreachable Hub is UNAVAILABLE" '"code": "unavailable"' "$hub"
if grep -q "$secret" "$work/server.log" || [[ "$hub" == *"$secret"* ]]; then
  failures=$((failures + 1)); echo "FAIL the Hub token appears in the log or the error"
else
  passes=$((passes + 1)); echo "ok   the Hub token appears in neither the log nor the error"
fi

# Restart on the same home: the embedded PostgreSQL keeps the data.
kill "$server"; wait "$server" 2>/dev/null
check "server stops on SIGTERM" "tuneforge-metadata stopped" "$(cat "$work/server.log")"
TUNEFORGE_HOME="$work/home" "$binary" --port "$port" >"$work/server2.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  call grpc.health.v1.Health/Check '{}' | grep -q SERVING && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
check "data survives a restart" '"name": "demo-llama"' "$(call tuneforge.v1.Models/GetModel '{"model": "demo-llama"}')"
check "the log has one line per RPC" "rpc /tuneforge.v1.Models/GetModel code=OK" "$(cat "$work/server2.log")"

if [ "$failures" -ne 0 ]; then echo "--- server log"; cat "$work/server.log" "$work/server2.log" 2>/dev/null | tail -40; fi
echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
