// Encode throughput of the Hugging Face tokenizers library (npm `tokenizers`, the Node binding of the Rust
// crate) on the JSONL corpus tokenizer_bench.cc reads, one document at a time, add_special_tokens=false.
// Usage: node tokenizer_bench.js --tokenizer=tokenizer.json --corpus=corpus.jsonl [--passes=3] [--ids_out=ids.txt]
// Run it with RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false UV_THREADPOOL_SIZE=1 (tokenizer_bench.sh does):
// each encode() runs as one task on libuv's pool and is awaited before the next starts, so one thread works.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

function parseOptions(argv) {
  const o = { tokenizer: '', corpus: '', passes: 3, ids_out: '' };
  for (const arg of argv) {
    const m = /^--(tokenizer|corpus|passes|ids_out)=(.*)$/.exec(arg);
    if (!m) throw new Error(`unknown argument '${arg}'`);
    o[m[1]] = m[1] === 'passes' ? Number(m[2]) : m[2];
  }
  if (!o.tokenizer || !o.corpus) {
    throw new Error('--tokenizer=PATH (tokenizer.json) and --corpus=PATH (JSONL) are required');
  }
  if (!Number.isInteger(o.passes) || o.passes < 1) throw new Error('--passes must be a positive integer');
  return o;
}

function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function main() {
  const o = parseOptions(process.argv.slice(2));
  const tokenizer = Tokenizer.fromFile(o.tokenizer);
  const docs = fs
    .readFileSync(o.corpus, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line));
  let bytes = 0;
  for (const d of docs) bytes += Buffer.byteLength(d, 'utf8');

  const allIds = new Array(docs.length);
  const wall = [];
  const cpu = [];
  const options = { addSpecialTokens: false };
  for (let pass = 0; pass <= o.passes; ++pass) {
    const start = process.hrtime.bigint();
    const cpuStart = cpuSeconds();
    for (let i = 0; i < docs.length; ++i) {
      const encoding = await tokenizer.encode(docs[i], null, options);
      allIds[i] = encoding.getIds();
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (pass > 0) {  // pass 0 warms the BPE cache, as in tokenizer_bench.cc
      wall.push(seconds);
      cpu.push(cpuSeconds() - cpuStart);
    }
  }
  let tokens = 0;
  for (const ids of allIds) tokens += ids.length;
  const idsText = allIds.map((ids) => ids.join(' ') + '\n').join('');
  if (o.ids_out) fs.writeFileSync(o.ids_out, idsText);
  wall.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  const mb = bytes / 1e6;
  const sha = crypto.createHash('sha256').update(idsText).digest('hex');
  console.log(
    `RESULT impl=hf_tokenizers docs=${docs.length} bytes=${bytes} tokens=${tokens} passes=${o.passes} ` +
      `median_mb_s=${(mb / wall[wall.length >> 1]).toFixed(2)} best_mb_s=${(mb / wall[0]).toFixed(2)} ` +
      `cpu_mb_s=${(mb / cpu[cpu.length >> 1]).toFixed(2)} ids_sha256=${sha}`,
  );
}

main().catch((e) => {
  console.error(`tokenizer_bench.js: ${e.message}`);
  process.exit(1);
});
