# The harness of the real-process e2e tests (sourced): pass/fail bookkeeping, JSON fields, and the metadata
# service and trainers they start, stopped with everything else on exit.
# The sourcing script sets metadata_bin, trainer_bin, work (a fresh temp dir), home, port, and defines
# server_ready (true once the service answers); it may append helper PIDs to `helpers`.
failures=0
passes=0
# The CLI finds the admin token the service's first start writes to <home>/admin-token.
export TUNEFORGE_HOME="$home"
server=""
declare -A trainers=()
declare -a helpers=()

cleanup() {
  for p in "${helpers[@]}"; do kill "$p" 2>/dev/null; done
  for t in "${!trainers[@]}"; do kill "${trainers[$t]}" 2>/dev/null; done
  if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi
  wait 2>/dev/null
  if [ "$failures" -gt 0 ]; then
    for f in "$work"/*.log; do echo "== $f"; tail -40 "$f"; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

ok() { passes=$((passes + 1)); echo "ok   $1"; }
fail() { failures=$((failures + 1)); echo "FAIL $1"; }
check() {  # check NAME EXPECTED_SUBSTRING ACTUAL
  if [[ "$3" == *"$2"* ]]; then ok "$1"; else fail "$1: expected to find '$2' in:"; echo "$3" | head -20; fi
}
field() { "${py:-python3}" -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1" 2>/dev/null; }

start_server() {  # start_server [EXTRA_FLAGS...]
  TUNEFORGE_HOME="$home" "$metadata_bin" --port "$port" "$@" >>"$work/metadata.log" 2>&1 &
  server=$!
  for _ in $(seq 1 150); do
    server_ready && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  fail "tuneforge-metadata did not start"; tail -20 "$work/metadata.log"; exit 1
}
start_trainer() {  # start_trainer NAME [SERVICE_PORT]
  "$trainer_bin" --home "$home" --metadata "127.0.0.1:$port" --worker-id "$1" --port "${2:-0}" --threads 1 \
    >>"$work/trainer-$1.log" 2>&1 &
  trainers[$1]=$!
}
