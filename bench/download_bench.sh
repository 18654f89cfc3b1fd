#!/usr/bin/env bash
# Fetches a 1 GiB LFS file over loopback with tuneforge's DownloadSnapshot (sha256 checked while streaming, blob
# fsynced, huggingface_hub cache layout) and with `curl -o file URL && sha256sum file`, from the same server, and
# prints the seconds of each and curl_time / our_time (above 1: we are faster).
#
# Usage: bench/download_bench.sh BUILD_DIR [SIZE_MIB (1024)] [ROUNDS (3)]
#
# The server is python3's http.server over a directory laid out like the Hub: the API answer for
# /api/models/bench/big/revision/main is a static JSON file (the query string is ignored), and the file sits at
# /bench/big/resolve/<commit>/model.safetensors, so our code runs its real path (pin the commit, stream, verify,
# rename, link) against the very URL curl fetches. Both clients see the same server; `sync` runs before each timed
# step so that neither pays for the other's dirty pages.
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR [SIZE_MIB] [ROUNDS]}
size_mib=${2:-1024}
rounds=${3:-3}
bench=$build/bench/download_bench
[[ -x $bench ]] || { echo "$bench not found: cmake --build $build --target download_bench" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/download-bench-XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

root=$work/root
mkdir -p "$root"
echo "generating ${size_mib} MiB of random bytes..."
head -c $((size_mib * 1048576)) /dev/urandom > "$work/blob"
python3 - "$work/blob" "$root" <<'EOF'
import hashlib, json, os, sys
blob, root = sys.argv[1], sys.argv[2]
h = hashlib.sha256()
with open(blob, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
sha256, size = h.hexdigest(), os.path.getsize(blob)
pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
blob_id = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
commit = hashlib.sha1(f"bench {sha256}".encode()).hexdigest()
api = os.path.join(root, "api/models/bench/big/revision")
os.makedirs(api)
with open(os.path.join(api, "main"), "w") as f:
    json.dump({"id": "bench/big", "sha": commit, "private": False, "gated": False,
               "siblings": [{"rfilename": "model.safetensors", "blobId": blob_id, "size": size,
                             "lfs": {"sha256": sha256, "size": size, "pointerSize": len(pointer)}}]}, f)
files = os.path.join(root, "bench/big/resolve", commit)
os.makedirs(files)
os.rename(blob, os.path.join(files, "model.safetensors"))
with open(os.path.join(root, "expected"), "w") as f:
    f.write(f"{sha256} {commit}\n")
EOF
read -r expected commit < "$root/expected"

python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$root" > "$work/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$work/server.log" | head -1)
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { echo "http.server did not start: $(cat "$work/server.log")" >&2; exit 1; }
endpoint=http://127.0.0.1:$port
url=$endpoint/bench/big/resolve/$commit/model.safetensors

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

run_curl() {
  rm -f "$work/curl.out"
  sync
  local t0 t1 t2 t3 got
  t0=$(now)
  curl -sSf -o "$work/curl.out" "$url"
  t1=$(now)
  got=$(sha256sum "$work/curl.out" | cut -d' ' -f1)
  t2=$(now)
  [[ $got == "$expected" ]] || { echo "curl: sha256 $got, expected $expected" >&2; exit 1; }
  # A stricter reference for context: OpenSSL's sha256 (SHA-NI where the CPU has it), as our code uses.
  got=$(openssl dgst -sha256 -r "$work/curl.out" | cut -d' ' -f1)
  t3=$(now)
  [[ $got == "$expected" ]] || { echo "openssl: sha256 $got, expected $expected" >&2; exit 1; }
  curl_only+=("$(elapsed "$t0" "$t1")")
  curl_sha+=("$(elapsed "$t0" "$t2")")
  curl_openssl+=("$(awk -v a="$(elapsed "$t0" "$t1")" -v b="$(elapsed "$t2" "$t3")" 'BEGIN { printf "%.3f", a + b }')")
  echo "  curl -o + sha256sum: $(elapsed "$t0" "$t2") s (curl $(elapsed "$t0" "$t1") s + sha256sum" \
       "$(elapsed "$t1" "$t2") s; openssl dgst -sha256 $(elapsed "$t2" "$t3") s)"
  rm -f "$work/curl.out"
}

run_ours() {
  rm -rf "$work/cache"
  sync
  local t0 t1 out
  t0=$(now)
  out=$("$bench" "$endpoint" bench/big "$work/cache")
  t1=$(now)
  grep -q "^$expected  model.safetensors$" <<< "$out" || { echo "download_bench: unexpected output: $out" >&2; exit 1; }
  [[ $(readlink "$work/cache/models--bench--big/snapshots/$commit/model.safetensors") == "../../blobs/$expected" ]] ||
    { echo "download_bench: snapshot link missing" >&2; exit 1; }
  ours+=("$(elapsed "$t0" "$t1")")
  echo "  tuneforge DownloadSnapshot: $(elapsed "$t0" "$t1") s"
  rm -rf "$work/cache"
}

curl_only=()
curl_sha=()
curl_openssl=()
ours=()
for round in $(seq "$rounds"); do
  echo "round $round/$rounds"
  if (( round % 2 )); then run_curl; run_ours; else run_ours; run_curl; fi
done

m_ours=$(median "${ours[@]}")
m_curl_sha=$(median "${curl_sha[@]}")
m_curl=$(median "${curl_only[@]}")
m_curl_openssl=$(median "${curl_openssl[@]}")
echo
echo "download of ${size_mib} MiB over loopback (python3 http.server), median of $rounds rounds:"
echo "  tuneforge DownloadSnapshot (sha256 while streaming, fsync): ${m_ours} s"
echo "  curl -o file URL && sha256sum file:                         ${m_curl_sha} s"
echo "  curl -o file URL && openssl dgst -sha256 file:              ${m_curl_openssl} s"
echo "  curl -o file URL alone (no check, no fsync):                ${m_curl} s"
awk -v c="$m_curl_sha" -v o="$m_ours" -v p="$m_curl" -v s="$m_curl_openssl" 'BEGIN {
  printf "ratio curl+sha256sum / tuneforge:  %.2f (>1: tuneforge faster)\n", c / o
  printf "ratio curl+openssl / tuneforge:    %.2f\n", s / o
  printf "ratio curl alone / tuneforge:      %.2f\n", p / o
}'
