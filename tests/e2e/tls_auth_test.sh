#!/usr/bin/env bash
# End-to-end TLS and tokens with real processes: tuneforge-metadata serving mutual TLS with auth on, the CLI with
# --ca/--cert/--key and the bootstrap admin token, and a tuneforge-trainer reaching the service over mutual TLS
# with a trainer token of its own. Certificates come from a CA made by openssl here.
# Usage: tls_auth_test.sh METADATA_BINARY TRAINER_BINARY CLI_BINARY SOURCE_DIR
set -uo pipefail
metadata_bin="$1"
trainer_bin="$2"
cli="$3"
src="$4"
work="$(mktemp -d /tmp/tuneforge-tls-e2e-XXXXXX)"
home="$work/home"
port=$((20000 + RANDOM % 20000))
source "$src/tests/e2e/lib.sh"
export TUNEFORGE_SERVER="localhost:$port"
tls=(--ca "$work/ca.pem" --cert "$work/client.pem" --key "$work/client.key")
server_ready() { "$cli" "${tls[@]}" --timeout 2 tokens whoami >/dev/null 2>&1; }

# A CA, the server's certificate (localhost) and a client certificate, all signed by it.
(
  set -e
  cd "$work"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
  key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${key[@]}" -keyout ca.key -out ca.pem -days 2 -subj /CN=tuneforge-test-ca
  for name in server client; do
    openssl req "${key[@]}" -keyout "$name.key" -out "$name.csr" -subj "/CN=$name"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$name.pem" -days 2 -extfile san.ext
  done
) >"$work/openssl.log" 2>&1 || { fail "openssl could not make the certificates"; cat "$work/openssl.log"; exit 1; }

start_server --tls-cert "$work/server.pem" --tls-key "$work/server.key" --tls-client-ca "$work/ca.pem"

out="$("$cli" "${tls[@]}" tokens whoami 2>&1)"
check "the CLI over mutual TLS with the bootstrap admin token" "role: ADMIN" "$out"
out="$("$cli" tokens whoami 2>&1)"
check "a plaintext client gets no answer" "UNAVAILABLE" "$out"
out="$("$cli" --ca "$work/ca.pem" tokens whoami 2>&1)"
check "a client without a certificate gets no answer" "UNAVAILABLE" "$out"
out="$("$cli" "${tls[@]}" --ca "$work/missing.pem" tokens whoami 2>&1)"
check "an unreadable --ca is named" "--ca='$work/missing.pem'" "$out"

"$cli" "${tls[@]}" tokens create node-1 --role trainer >"$work/node-1.token" 2>/dev/null
chmod 600 "$work/node-1.token"
"$trainer_bin" --home "$home" --metadata "localhost:$port" --worker-id node-1 --port 0 --threads 1 \
  --token-file "$work/node-1.token" --ca "$work/ca.pem" --cert "$work/client.pem" --key "$work/client.key" \
  >>"$work/trainer-node-1.log" 2>&1 &
trainers[node-1]=$!
used=""
for _ in $(seq 1 100); do
  used="$("$cli" "${tls[@]}" tokens list --output json 2>&1 |
    "${py:-python3}" -c 'import json,sys; print([t.get("last_use_time","") for t in json.load(sys.stdin)["tokens"] if t["name"]=="node-1"][0])' 2>&1)"
  [[ "$used" == 20* ]] && break
  sleep 0.2
done
check "the trainer reached the service over mutual TLS with its own token" "20" "$used"
check "the trainer leases from the service" "LeaseJob code=OK" "$(sleep 11; cat "$work/metadata.log")"
"$cli" "${tls[@]}" tokens revoke node-1 >/dev/null 2>&1
check "a revoked trainer token is refused" "refused this trainer" "$(sleep 12; cat "$work/trainer-node-1.log")"
check_log_free_of_tokens() {
  for f in "$work"/*.log; do
    if grep -q "$(cut -c5- "$work/node-1.token")" "$f" || grep -q "$(cut -c5- "$home/admin-token")" "$f"; then
      fail "a token appears in $f"; return
    fi
  done
  ok "no token appears in any log"
}
check_log_free_of_tokens

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
