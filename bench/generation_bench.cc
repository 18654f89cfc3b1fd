// Greedy generation throughput of a Hugging Face model directory: tuneforge's Generate with its KV cache and without
// (recomputing the whole sequence each step), on prompts read from a JSON file, every row generating exactly
// --new-tokens tokens (no EOS). Prints one RESULT line per mode (new tokens per second of the median run) and writes
// the tokens so that bench/generation_bench.sh can compare them with transformers' generate() on the same prompts.
// Usage: generation_bench --model=DIR --prompts=FILE [--new-tokens=64] [--threads=N] [--attn=sdpa|eager]
//          [--device=cpu|cuda|auto] [--modes=cached,uncached] [--runs=3] [--uncached-runs=1] [--tokens-out=FILE]
// FILE: {"prompts": [[ids...], ...]} (rows of different lengths are left padded).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/device.h"
#include "services/trainer/model/generation.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string model, prompts, tokens_out, attn = "sdpa", device = "cpu", modes = "cached,uncached";
  int threads = 0;  // 0: libtorch's default
  int64_t new_tokens = 64;
  int runs = 3, uncached_runs = 1;
};

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr,
               "%s\nusage: generation_bench --model=DIR --prompts=FILE [--new-tokens=64] [--threads=N] "
               "[--attn=sdpa|eager] [--device=cpu|cuda|auto] [--modes=cached,uncached] [--runs=3] "
               "[--uncached-runs=1] [--tokens-out=FILE]\n",
               problem.c_str());
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string*> strings = {{"--model", &o.model}, {"--prompts", &o.prompts},
                                                 {"--tokens-out", &o.tokens_out}, {"--attn", &o.attn},
                                                 {"--device", &o.device}, {"--modes", &o.modes}};
  for (int i = 1; i < argc; ++i) {
    const char* eq = std::strchr(argv[i], '=');
    if (eq == nullptr) Usage(std::string("flags take a value: ") + argv[i]);
    const std::string name(argv[i], eq - argv[i]), value(eq + 1);
    if (auto it = strings.find(name); it != strings.end()) {
      *it->second = value;
    } else if (name == "--threads") {
      o.threads = std::atoi(value.c_str());
    } else if (name == "--new-tokens") {
      o.new_tokens = std::atoll(value.c_str());
    } else if (name == "--runs") {
      o.runs = std::atoi(value.c_str());
    } else if (name == "--uncached-runs") {
      o.uncached_runs = std::atoi(value.c_str());
    } else {
      Usage("unknown flag " + name);
    }
  }
  if (o.model.empty() || o.prompts.empty()) Usage("--model and --prompts are required");
  if (o.new_tokens < 1 || o.runs < 1 || o.uncached_runs < 1) Usage("--new-tokens and the run counts must be >= 1");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tuneforge;
  const Options o = ParseOptions(argc, argv);
  if (o.threads > 0) at::set_num_threads(o.threads);
  std::ifstream in(o.prompts);
  if (!in) Usage("cannot read " + o.prompts);
  const auto prompts = nlohmann::json::parse(in).at("prompts").get<std::vector<std::vector<int64_t>>>();

  auto request = ParseDeviceRequest(o.device);
  if (!request.ok()) Usage(std::string(request.status().message()));
  auto device = ResolveDevice(*request);
  if (!device.ok()) Usage(std::string(device.status().message()));
  auto attn = ParseAttentionImpl(o.attn);
  if (!attn.ok()) Usage(std::string(attn.status().message()));
  BuildOptions options;
  options.device = *device;
  options.attention = *attn;
  auto model = CausalLM::Load(o.model, options);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }

  nlohmann::json tokens_doc = nlohmann::json::object();
  std::stringstream modes(o.modes);
  for (std::string mode; std::getline(modes, mode, ',');) {
    if (mode != "cached" && mode != "uncached") Usage("--modes takes cached and/or uncached");
    GenerationConfig config;
    config.max_new_tokens = o.new_tokens;
    config.pad_token_id = 0;
    config.use_cache = mode == "cached";
    const int runs = config.use_cache ? o.runs : o.uncached_runs;
    std::vector<double> seconds;
    std::vector<GeneratedSequence> out;
    for (int run = 0; run < runs + (config.use_cache ? 1 : 0); ++run) {  // the cached mode gets one warm-up run
      SynchronizeDevice(*device);
      const auto start = Clock::now();
      auto generated = Generate(**model, prompts, config);
      SynchronizeDevice(*device);
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      if (!generated.ok()) {
        std::fprintf(stderr, "%s\n", std::string(generated.status().message()).c_str());
        return 1;
      }
      out = std::move(*generated);
      if (run > 0 || !config.use_cache) seconds.push_back(s);
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    const int64_t tokens = static_cast<int64_t>(prompts.size()) * o.new_tokens;
    std::printf("RESULT impl=tuneforge mode=%s batch=%zu new_tokens=%lld threads=%d runs=%zu median_s=%.4f "
                "best_s=%.4f tokens_per_s=%.1f\n",
                mode.c_str(), prompts.size(), static_cast<long long>(o.new_tokens), at::get_num_threads(),
                seconds.size(), median, seconds.front(), static_cast<double>(tokens) / median);
    std::fflush(stdout);
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : out) rows.push_back(row.tokens);
    tokens_doc[mode] = rows;
  }
  if (!o.tokens_out.empty()) std::ofstream(o.tokens_out) << tokens_doc.dump() << "\n";
  return 0;
}
