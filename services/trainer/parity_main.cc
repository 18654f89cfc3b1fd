// tuneforge-parity CASE_DIR...: runs the Hugging Face parity checks of hf_reference case folders and prints
// one line per check; exits 1 if any check fails, 2 if a case cannot be read.
#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "services/trainer/model/hf_parity.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CASE_DIR... (folders of hf_reference, e.g. hf_reference/llama)\n", argv[0]);
    return 2;
  }
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
