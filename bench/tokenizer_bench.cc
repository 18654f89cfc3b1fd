// Encode throughput of tuneforge::Tokenizer on a JSONL corpus (one JSON string per line, one document each),
// single thread, add_special_tokens=false; tokenizer_bench.js measures the Hugging Face library the same way.
// Usage: tokenizer_bench --tokenizer=tokenizer.json --corpus=corpus.jsonl [--passes=3] [--ids_out=ids.txt]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "services/trainer/tokenizer/tokenizer.h"

namespace tuneforge {
namespace {

struct Options {
  std::string tokenizer;
  std::string corpus;
  int passes = 3;        // timed passes over the corpus, after one untimed warm-up pass
  std::string ids_out;   // where the ids of every document go (one line each), if set
};

bool ParseFlag(const char* arg, const char* name, std::string* value) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *value = arg + n + 1;
  return true;
}

absl::StatusOr<Options> ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string passes;
    if (ParseFlag(argv[i], "--tokenizer", &o.tokenizer) || ParseFlag(argv[i], "--corpus", &o.corpus) ||
        ParseFlag(argv[i], "--ids_out", &o.ids_out)) {
      continue;
    }
    if (ParseFlag(argv[i], "--passes", &passes)) {
      o.passes = std::atoi(passes.c_str());
      if (o.passes < 1) return absl::InvalidArgumentError("--passes must be a positive integer");
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat("unknown argument '", argv[i], "'"));
  }
  if (o.tokenizer.empty() || o.corpus.empty()) {
    return absl::InvalidArgumentError("--tokenizer=PATH (tokenizer.json) and --corpus=PATH (JSONL) are required");
  }
  return o;
}

absl::StatusOr<std::vector<std::string>> ReadCorpus(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("corpus: cannot open '", path, "'"));
  std::vector<std::string> docs;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      docs.push_back(nlohmann::json::parse(line).get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("corpus ", path, " line ", docs.size() + 1,
                                                     ": expected one JSON string per line: ", e.what()));
    }
  }
  return docs;
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// One line per document, ids separated by spaces: the same text tokenizer_bench.js writes.
std::string IdsText(const std::vector<std::vector<int32_t>>& all_ids) {
  std::string out;
  for (const std::vector<int32_t>& ids : all_ids) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out += ' ';
      absl::StrAppend(&out, ids[i]);
    }
    out += '\n';
  }
  return out;
}

absl::Status Run(const Options& o) {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromFile(o.tokenizer));
  ASSIGN_OR_RETURN(std::vector<std::string> docs, ReadCorpus(o.corpus));
  size_t bytes = 0;
  for (const std::string& d : docs) bytes += d.size();

  std::vector<std::vector<int32_t>> all_ids(docs.size());
  std::vector<double> wall, cpu;  // seconds per timed pass
  for (int pass = 0; pass <= o.passes; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = CpuSeconds();
    for (size_t i = 0; i < docs.size(); ++i) {
      absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(docs[i], /*add_special_tokens=*/false);
      if (!ids.ok()) {
        return absl::Status(ids.status().code(), absl::StrCat("document ", i, ": ", ids.status().message()));
      }
      all_ids[i] = std::move(*ids);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (pass > 0) {  // pass 0 warms the BPE cache and the allocator, as it would be in a long-running job
      wall.push_back(seconds);
      cpu.push_back(CpuSeconds() - cpu_start);
    }
  }
  size_t tokens = 0;
  for (const auto& ids : all_ids) tokens += ids.size();
  const std::string ids_text = IdsText(all_ids);
  if (!o.ids_out.empty()) {
    std::ofstream out(o.ids_out, std::ios::binary);
    out << ids_text;
    if (!out) return absl::InternalError(absl::StrCat("cannot write --ids_out '", o.ids_out, "'"));
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf(
      "RESULT impl=tuneforge docs=%zu bytes=%zu tokens=%zu passes=%d median_mb_s=%.2f best_mb_s=%.2f "
      "cpu_mb_s=%.2f ids_sha256=%s\n",
      docs.size(), bytes, tokens, o.passes, mb / wall[wall.size() / 2], mb / wall.front(), mb / cpu[cpu.size() / 2],
      Sha256Hex(ids_text).c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace tuneforge

int main(int argc, char** argv) {
  absl::StatusOr<tuneforge::Options> options = tuneforge::ParseOptions(argc, argv);
  absl::Status status = options.ok() ? tuneforge::Run(*options) : options.status();
  if (!status.ok()) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
