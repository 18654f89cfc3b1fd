#!/usr/bin/env bash
# The quick start: installs what tuneforge needs, builds it, starts tuneforge-metadata on its own
# embedded PostgreSQL, and walks through a short demo with buf curl (a real gRPC client).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

bash scripts/install-deps.sh
bash scripts/build.sh

export TUNEFORGE_HOME="${TUNEFORGE_HOME:-$HOME/.tuneforge}"
port="${TUNEFORGE_PORT:-50051}"
data="$TUNEFORGE_HOME/data"
mkdir -p "$data"
python3 scripts/make_demo_data.py "$data" >/dev/null

log="$TUNEFORGE_HOME/metadata.log"
echo "== starting tuneforge-metadata on 127.0.0.1:$port (embedded PostgreSQL in $TUNEFORGE_HOME/postgres; log: $log)"
build/services/metadata/tuneforge-metadata --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

buf="tools/node_modules/.bin/buf"
call() {  # call SERVICE/METHOD JSON
  "$buf" curl --protocol grpc --http2-prior-knowledge "http://127.0.0.1:$port/tuneforge.v1.$1" -d "$2"
}
for _ in $(seq 1 100); do
  if "$buf" curl --protocol grpc --http2-prior-knowledge "http://127.0.0.1:$port/grpc.health.v1.Health/Check" \
      -d '{}' >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "tuneforge-metadata exited:"; cat "$log"; exit 1; fi
  sleep 0.2
done

echo "== services (through server reflection)"
"$buf" curl --protocol grpc --http2-prior-knowledge --list-services "http://127.0.0.1:$port"
echo "== add a local model"
call Models/AddModel "{\"name\": \"demo-llama\", \"description\": \"tiny Llama-architecture model\", \"local\": {\"path\": \"$data/demo-llama\"}}" \
  | python3 scripts/demo_summary.py model
echo "== add a local dataset"
call Datasets/AddDataset "{\"name\": \"demo-instructions\", \"local\": {\"train_path\": \"$data/demo-instructions/train.jsonl\", \"test_path\": \"$data/demo-instructions/test.jsonl\"}}" \
  | python3 scripts/demo_summary.py dataset
echo "== list models and datasets"
call Models/ListModels '{}' | python3 scripts/demo_summary.py models
call Datasets/ListDatasets '{}' | python3 scripts/demo_summary.py datasets
echo "== a typed error: a model that does not exist"
call Models/GetModel '{"model": "no-such-model"}' 2>&1 | sed 's/^/  /' || true
echo "== done. The server log is in $log"
