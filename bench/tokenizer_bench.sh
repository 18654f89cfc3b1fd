#!/usr/bin/env bash
# Encode throughput of tuneforge::Tokenizer (tokenizer_bench) against Hugging Face tokenizers (npm `tokenizers`,
# tokenizer_bench.js) on the same >= 10 MiB multilingual corpus and tokenizer.json, single thread; checks that
# both produce identical ids for every document and prints ours/upstream per tokenizer.
# Usage: bench/tokenizer_bench.sh [BUILD_DIR] [PASSES] [TOKENIZER...]   (defaults: build 3 llama3 llama2 qwen3 gemma3)
# TOKENIZER names a folder of the shared testdata tokenizers/ (TUNEFORGE_SHARED_TESTDATA overrides its place).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/../build}"
passes="${2:-3}"
if (($# > 2)); then
  tokenizers=("${@:3}")
else
  tokenizers=(llama3 llama2 qwen3 gemma3)
fi
testdata="${TUNEFORGE_SHARED_TESTDATA:-$here/../../shared/testdata}/tokenizers"
bench="$build/bench/tokenizer_bench"
python="${PYTHON:-python3}"

if [[ ! -x "$bench" ]]; then
  echo "no $bench: build it with cmake --build $build --target tokenizer_bench" >&2
  exit 1
fi
if [[ ! -f "$testdata/cases.jsonl" ]]; then
  echo "no $testdata/cases.jsonl: set TUNEFORGE_SHARED_TESTDATA to the shared testdata folder" >&2
  exit 1
fi
if ! command -v node >/dev/null; then
  echo "node is not installed: apt-get install nodejs npm" >&2
  exit 1
fi
# The version is pinned by package.json / package-lock.json; node_modules is not committed.
if [[ ! -f "$here/node_modules/tokenizers/package.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi

work="$build/tokenizer_bench"
mkdir -p "$work"
corpus="$work/corpus.jsonl"
# The corpus is a pure function of the generator and cases.jsonl: rebuild it only when one of them changed.
if [[ ! -s "$corpus" || "$here/make_tokenizer_corpus.py" -nt "$corpus" || "$testdata/cases.jsonl" -nt "$corpus" ]]; then
  "$python" "$here/make_tokenizer_corpus.py" "$testdata/cases.jsonl" "$corpus"
fi

# One thread on both sides: encode() of the Node binding runs on libuv's pool, and Rayon is only used by
# batch calls, which tokenizer_bench.js does not make.
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false UV_THREADPOOL_SIZE=1
echo "corpus: $corpus sha256 $(sha256sum "$corpus" | cut -d' ' -f1)"
echo "node $(node --version), tokenizers $(node -p "require('$here/node_modules/tokenizers/package.json').version")," \
  "build type $(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" | grep . || echo RelWithDebInfo)," \
  "cores $(nproc)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "each side: 1 warm-up pass + $passes timed passes over the corpus; MB = 10^6 bytes of UTF-8 text"

log="$work/results.log"
: >"$log"
failed=0
for name in "${tokenizers[@]}"; do
  json="$testdata/$name/tokenizer.json"
  args=(--tokenizer="$json" --corpus="$corpus" --passes="$passes")
  # Back to back, so that both see about the same load from the rest of the machine.
  "$bench" "${args[@]}" --ids_out="$work/ids_ours_$name.txt" | sed "s/^RESULT /RESULT tokenizer=$name /" | tee -a "$log"
  node "$here/tokenizer_bench.js" "${args[@]}" --ids_out="$work/ids_upstream_$name.txt" |
    sed "s/^RESULT /RESULT tokenizer=$name /" | tee -a "$log"
  if cmp -s "$work/ids_ours_$name.txt" "$work/ids_upstream_$name.txt"; then
    echo "$name: ids identical for every document"
    continue
  fi
  failed=1
  # The smallest document on which the ids differ, with both id sequences: a bug in our tokenizer.
  "$python" - "$corpus" "$work/ids_ours_$name.txt" "$work/ids_upstream_$name.txt" "$name" <<'EOF'
import json, sys
corpus, ours_path, theirs_path, name = sys.argv[1:]
docs = [json.loads(line) for line in open(corpus, encoding="utf-8").read().split("\n") if line]
ours = open(ours_path).read().split("\n")
theirs = open(theirs_path).read().split("\n")
bad = [i for i in range(len(docs)) if ours[i] != theirs[i]]
i = min(bad, key=lambda k: (len(docs[k].encode("utf-8")), k))
a, b = ours[i].split(), theirs[i].split()
first = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
print(f"MISMATCH {name}: ids differ on {len(bad)} of {len(docs)} documents (first: document {bad[0]})")
print(f"MISMATCH {name}: smallest differing document is {i} ({len(docs[i].encode('utf-8'))} bytes), as JSON:")
print(json.dumps(docs[i], ensure_ascii=False))
print(f"MISMATCH {name}: first difference at token {first}")
print(f"  ours:     {' '.join(a)}")
print(f"  upstream: {' '.join(b)}")
EOF
done

# RESULT lines are key=value; ratio > 1 means we are faster. The CPU-time ratio is less disturbed by other
# processes on a shared machine.
awk '
  /^RESULT/ {
    delete kv
    for (i = 2; i <= NF; ++i) { split($i, p, "="); kv[p[1]] = p[2] }
    t = kv["tokenizer"]
    if (!(t in seen)) { seen[t] = 1; order[++n] = t }
    tokens[t] = kv["tokens"]; mb[t] = kv["bytes"] / 1e6
    if (kv["impl"] == "tuneforge") { ours[t] = kv["median_mb_s"]; ours_cpu[t] = kv["cpu_mb_s"]; ours_sha[t] = kv["ids_sha256"] }
    else { up[t] = kv["median_mb_s"]; up_cpu[t] = kv["cpu_mb_s"]; up_sha[t] = kv["ids_sha256"] }
  }
  END {
    printf "\n%-9s %-8s %-9s %-13s %-17s %-16s %-15s %s\n", "tokenizer", "MB", "tokens", "ours MB/s",
           "upstream MB/s", "ours/upstream", "CPU-time ratio", "ids"
    for (j = 1; j <= n; ++j) {
      t = order[j]
      if (!(t in ours) || !(t in up)) { printf "%-9s (a side did not finish)\n", t; continue }
      printf "%-9s %-8.2f %-9s %-13s %-17s %-16.2f %-15.2f %s\n", t, mb[t], tokens[t], ours[t], up[t],
             ours[t] / up[t], ours_cpu[t] / up_cpu[t], (ours_sha[t] == up_sha[t] ? "identical" : "DIFFER")
    }
  }' "$log"
if ((failed)); then
  echo "FAILED: our ids differ from upstream (see MISMATCH above)" >&2
fi
exit "$failed"
