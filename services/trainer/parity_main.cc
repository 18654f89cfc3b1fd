// tuneforge-parity: checks the engine against Hugging Face reference data, or writes its logits for a comparison
// made elsewhere (bench/gpu_check.py).
//   tuneforge-parity CASE_DIR...      runs the parity checks of reference case folders and prints one line per
//                                     check; exits 1 if any check fails, 2 if a case cannot be read.
//   tuneforge-parity logits --model=DIR --inputs=FILE[,FILE...] --out=FILE[,FILE...] [--adapter=DIR]
//                    [--device=auto|cpu|cuda:N] [--attn=sdpa|eager] [--dtype=fp32|bf16]
#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "absl/strings/str_split.h"
#include "services/trainer/model/hf_parity.h"

namespace {

constexpr char kUsage[] =
    "usage: tuneforge-parity CASE_DIR...   (reference case folders, e.g. hf_reference/llama)\n"
    "       tuneforge-parity logits --model=DIR --inputs=FILE[,FILE...] --out=FILE[,FILE...] [--adapter=DIR]\n"
    "                        [--device=auto|cpu|cuda:N] [--attn=sdpa|eager] [--dtype=fp32|bf16]\n"
    "  logits: each input file holds input_ids [B,T] (int64) and optionally attention_mask and position_ids; its\n"
    "  output file gets `logits` [B,T,V] in fp32. The model (and adapter) is loaded once for all of them.\n";

int Logits(int argc, char** argv) {
  tuneforge::LogitsRun run;
  std::string inputs, outputs;
  std::map<std::string, std::string*> flags = {
      {"--model", &run.model_dir}, {"--adapter", &run.adapter_dir}, {"--inputs", &inputs}, {"--out", &outputs},
      {"--device", &run.device},   {"--attn", &run.attention},      {"--dtype", &run.dtype}};
  for (int i = 2; i < argc; ++i) {
    const char* eq = std::strchr(argv[i], '=');
    auto it = eq == nullptr ? flags.end() : flags.find(std::string(argv[i], eq - argv[i]));
    if (it == flags.end()) {
      std::fprintf(stderr, "unknown argument %s\n%s", argv[i], kUsage);
      return 2;
    }
    *it->second = eq + 1;
  }
  if (run.model_dir.empty() || inputs.empty() || outputs.empty()) {
    std::fprintf(stderr, "logits needs --model, --inputs and --out\n%s", kUsage);
    return 2;
  }
  run.inputs_paths = absl::StrSplit(inputs, ',');
  run.output_paths = absl::StrSplit(outputs, ',');
  const absl::Status status = tuneforge::WriteLogits(run);
  if (!status.ok()) {
    std::fprintf(stderr, "tuneforge-parity logits: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(argc < 2 ? stderr : stdout, "%s", kUsage);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "logits") == 0) return Logits(argc, argv);
  at::set_num_threads(1);
  int failed = 0;
  for (int i = 1; i < argc; ++i) {
    auto checks = tuneforge::RunHfParityChecks(argv[i]);
    if (!checks.ok()) {
      std::fprintf(stderr, "%s: %s\n", argv[i], checks.status().ToString().c_str());
      return 2;
    }
    for (const auto& c : *checks) {
      std::printf("%s %-70s max_abs_diff %.3e tol %.1e %s  %s\n", argv[i], c.name.c_str(), c.max_abs_diff, c.tolerance,
                  c.pass ? "PASS" : "FAIL", c.detail.c_str());
      if (!c.pass) ++failed;
    }
  }
  std::printf("%d failed\n", failed);
  return failed == 0 ? 0 : 1;
}
