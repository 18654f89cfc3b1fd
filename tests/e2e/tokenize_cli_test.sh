#!/usr/bin/env bash
# End-to-end: the tuneforge-tokenize binary in --check mode on the reference cases (and a corrupted copy) and
# in stdin encode mode, compared with the reference ids of cases.jsonl; chat mode against chat_cases.jsonl.
# Usage: tokenize_cli_test.sh TOKENIZE_BINARY TOKENIZERS_TESTDATA_DIR
set -uo pipefail
binary="$1"
data="$2"
work="$(mktemp -d "${TMPDIR:-/tmp}/tuneforge-tokcli-XXXXXX")"
passes=0
failures=0
trap 'rm -rf "$work"' EXIT

check() {  # check NAME EXPECTED_SUBSTRING ACTUAL
  if [[ "$3" == *"$2"* ]]; then
    passes=$((passes + 1)); echo "ok   $1"
  else
    failures=$((failures + 1)); echo "FAIL $1: expected to find '$2' in:"; echo "$3" | head -20
  fi
}
check_eq() {  # check_eq NAME EXPECTED ACTUAL
  if [[ "$3" == "$2" ]]; then
    passes=$((passes + 1)); echo "ok   $1"
  else
    failures=$((failures + 1)); echo "FAIL $1: expected '$2', got '$3'"
  fi
}
field() {  # field NAME JSON_LINE: raw JSON value of a string field or id array in one cases.jsonl line
  case "$1" in
    ids*) sed -E "s/.*\"$1\":(\[[0-9,]*\]).*/\1/" <<<"$2" ;;
    *) sed -E "s/^[^{]*\{.*\"$1\":(\"([^\"\\\\]|\\\\.)*\").*/\1/" <<<"$2" ;;
  esac
}

# 1. --check on the real reference cases: every case passes, five tokenizers reported.
out="$("$binary" --check "$data/cases.jsonl" --tokenizers "$data" 2>&1)"; rc=$?
check_eq "check cases.jsonl exits 0" 0 "$rc"
check_eq "check reports 5 tokenizers" 5 "$(grep -cE '^[a-z0-9_]+: [0-9]+/[0-9]+ cases pass$' <<<"$out")"
for name in llama3 llama3_1 llama2 qwen3 gemma3; do
  check "check $name all pass" "$name: 184/184 cases pass" "$out"
done
check "check says all pass" "all cases pass (5 tokenizers)" "$out"

# 2. A copy with one expected id changed: exit 1 and the mismatch in detail.
first="$(head -n 1 "$data/cases.jsonl")"
tok="$(sed -E 's/.*"tokenizer":"([^"]*)".*/\1/' <<<"$first")"
case_id="$(sed -E 's/.*"id":"([^"]*)".*/\1/' <<<"$first")"
want="$(field ids_no_special "$first")"
bad="$(sed -E 's/\[([0-9]+)/[1\1/' <<<"$want")"  # first id gets a leading 1
{ sed -E "s/\"ids_no_special\":\[([0-9]+)/\"ids_no_special\":[1\1/" <<<"$first"; tail -n +2 "$data/cases.jsonl"; } \
  >"$work/corrupt.jsonl"
out="$("$binary" --check "$work/corrupt.jsonl" --tokenizers "$data" 2>&1)"; rc=$?
check_eq "corrupted copy exits 1" 1 "$rc"
check "corrupted copy names the case" "first mismatch: case $case_id, tokenizer $tok" "$out"
check "corrupted copy shows expected ids" "expected $bad" "$out"
check "corrupted copy shows actual ids" "actual   $want" "$out"
check "corrupted copy counts" "$tok: 183/184 cases pass" "$out"
check "corrupted copy total" "1 mismatching cases" "$out"

# 3. Chat-template cases: the reference file passes (template errors included), a corrupted copy names the case;
# missing inputs are unusable input (exit 2).
out="$("$binary" --check "$data/chat_cases.jsonl" --tokenizers "$data" 2>&1)"; rc=$?
check_eq "chat cases exit 0" 0 "$rc"
for name in llama3 llama3_1 qwen3 gemma3; do
  check "chat check $name all pass" "$name: 16/16 cases pass" "$out"
done
check "chat check says all pass" "all cases pass (4 tokenizers)" "$out"
chat1="$(sed -n 2p "$data/chat_cases.jsonl")"  # llama3 sys_user with add_generation_prompt
chat_ids="$(field ids "$chat1")"
{ head -n 1 "$data/chat_cases.jsonl"; sed -E 's/"ids":\[([0-9]+)/"ids":[1\1/' <<<"$chat1"; tail -n +3 "$data/chat_cases.jsonl"; } \
  >"$work/chat_corrupt.jsonl"
out="$("$binary" --check "$work/chat_corrupt.jsonl" --tokenizers "$data" 2>&1)"; rc=$?
check_eq "corrupted chat copy exits 1" 1 "$rc"
check "corrupted chat copy names the case" "first mismatch: case sys_user+gen, tokenizer llama3" "$out"
check "corrupted chat copy shows actual ids" "actual   $chat_ids" "$out"
check "corrupted chat copy counts" "llama3: 15/16 cases pass" "$out"
out="$("$binary" --check "$data/chat_cases.jsonl" --tokenizers "$work" 2>&1)"; rc=$?
check_eq "chat cases without tokenizers exit 2" 2 "$rc"
out="$("$binary" --check "$work/missing.jsonl" --tokenizers "$data" 2>&1)"; rc=$?
check_eq "missing cases file exits 2" 2 "$rc"
check "missing cases file message" "cannot open cases file" "$out"
out="$("$binary" --check "$data/cases.jsonl" --tokenizers "$work" 2>&1)"; rc=$?
check_eq "missing tokenizer folder exits 2" 2 "$rc"
check "missing tokenizer folder message" "uses tokenizer '$tok' that cannot be loaded" "$out"

# 4. stdin mode on two texts of llama2 (which adds <s>), with and without special tokens.
l0="$(grep -F '"tokenizer":"llama2","id":"pub-000"' "$data/cases.jsonl")"
l1="$(grep -F '"tokenizer":"llama2","id":"pub-001"' "$data/cases.jsonl")"
input="$(printf '{"text":%s}\n{"text":%s}\n' "$(field text "$l0")" "$(field text "$l1")")"
out="$("$binary" --tokenizer "$data/llama2" <<<"$input" 2>&1)"; rc=$?
check_eq "stdin exits 0" 0 "$rc"
check_eq "stdin ids with special tokens" \
  "$(printf '{"ids":%s}\n{"ids":%s}' "$(field ids_with_special "$l0")" "$(field ids_with_special "$l1")")" "$out"
out="$("$binary" --tokenizer "$data/llama2" --no-special-tokens <<<"$input" 2>&1)"; rc=$?
check_eq "stdin --no-special-tokens exits 0" 0 "$rc"
check_eq "stdin ids without special tokens" \
  "$(printf '{"ids":%s}\n{"ids":%s}' "$(field ids_no_special "$l0")" "$(field ids_no_special "$l1")")" "$out"

# 5. stdin mode: a messages line for llama2 (no chat template) and a broken line are answered with errors, the
# good line still encodes.
input="$(printf '{"messages":[{"role":"user","content":"hi"}]}\n{"text": 5\n{"text":%s}\n' "$(field text "$l0")")"
out="$("$binary" --tokenizer "$data/llama2" 2>/dev/null <<<"$input")"; rc=$?
check_eq "stdin bad lines exit 1" 1 "$rc"
check "stdin messages line without chat template" '{"error":"line 1: this tokenizer has no chat template' "$out"
check "stdin broken line" '{"error":"line 2: not valid JSON' "$out"
check "stdin good line after errors" "{\"ids\":$(field ids_with_special "$l0")}" "$out"

# 5b. stdin chat mode: one reference case renders to its reference text and ids; a template raise_exception is
# answered with the template's message.
chat_line="$(sed -E 's/.*"messages":(\[.*\]),"add_generation_prompt":(true|false),.*/{"messages":\1,"add_generation_prompt":\2}/' \
  <<<"$chat1")"
out="$("$binary" --tokenizer "$data/llama3" <<<"$chat_line" 2>&1)"; rc=$?
check_eq "stdin chat exits 0" 0 "$rc"
check_eq "stdin chat ids and text" "{\"ids\":$chat_ids,\"text\":$(field rendered "$chat1")}" "$out"
out="$("$binary" --tokenizer "$data/gemma3" 2>/dev/null \
  <<<'{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}')"; rc=$?
check_eq "stdin chat template error exits 1" 1 "$rc"
check "stdin chat template error message" \
  '{"error":"line 1: chat template: Conversation roles must alternate user/assistant/user/assistant/..."}' "$out"

# 6. Arguments.
out="$("$binary" --help 2>&1)"; rc=$?
check_eq "help exits 0" 0 "$rc"
for opt in --tokenizer --no-special-tokens --check --tokenizers --help; do check "help explains $opt" "  $opt " "$out"; done
out="$("$binary" --bogus 2>&1)"; rc=$?
check_eq "unknown argument exits 2" 2 "$rc"
check "unknown argument message" "unknown argument '--bogus'" "$out"
out="$("$binary" --tokenizer "$work/nowhere" <<<'{"text":"x"}' 2>&1)"; rc=$?
check_eq "missing tokenizer exits 2" 2 "$rc"
check "missing tokenizer message" "tokenizer folder $work/nowhere does not exist" "$out"
mkdir "$work/empty"
out="$("$binary" --tokenizer "$work/empty" <<<'{"text":"x"}' 2>&1)"; rc=$?
check_eq "tokenizer folder without tokenizer.json exits 2" 2 "$rc"
check "tokenizer folder without tokenizer.json message" "$work/empty/tokenizer.json does not exist" "$out"
printf '{"model": ' >"$work/empty/tokenizer.json"
out="$("$binary" --tokenizer "$work/empty" <<<'{"text":"x"}' 2>&1)"; rc=$?
check_eq "broken tokenizer.json exits 2" 2 "$rc"
check "broken tokenizer.json message" "not a valid tokenizer file" "$out"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
