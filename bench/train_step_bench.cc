// One LoRA training step (forward, causal-LM loss, backward, AdamW, zero grad) of a small random Llama on
// the CPU: tokens/s and model-FLOPs utilisation against the peak matmul rate measured in this process.
// Usage: train_step_bench [--dtype=fp32|bf16|both] [--threads=N] [--warmup=2] [--steps=5] [--batch=4] [--seq=256]
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/decoder_config.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/causal_lm_loss.h"

namespace {

using Clock = std::chrono::steady_clock;

// The bench Llama: train_step_reference.py builds the same shapes.
constexpr char kConfigJson[] = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
  "vocab_size": 32000, "hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 8,
  "num_attention_heads": 8, "num_key_value_heads": 4, "max_position_embeddings": 2048,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false
})";
constexpr uint64_t kWeightSeed = 1234;  // base weights: randn * 0.02 by sorted HF name; norms are ones
constexpr uint64_t kTokenSeed = 5678;   // input ids, uniform in [0, vocab)
constexpr uint64_t kLoraSeed = 42;
constexpr double kLearningRate = 1e-4;

struct Options {
  std::string dtype = "both";
  int threads = 2;
  int warmup = 2;
  int steps = 5;
  int64_t batch = 4;
  int64_t seq = 256;
};

bool ParseFlag(const char* arg, const char* name, std::string* value) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *value = arg + n + 1;
  return true;
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    if (ParseFlag(argv[i], "--dtype", &v)) {
      o.dtype = v;
    } else if (ParseFlag(argv[i], "--threads", &v)) {
      o.threads = std::atoi(v.c_str());
    } else if (ParseFlag(argv[i], "--warmup", &v)) {
      o.warmup = std::atoi(v.c_str());
    } else if (ParseFlag(argv[i], "--steps", &v)) {
      o.steps = std::atoi(v.c_str());
    } else if (ParseFlag(argv[i], "--batch", &v)) {
      o.batch = std::atoll(v.c_str());
    } else if (ParseFlag(argv[i], "--seq", &v)) {
      o.seq = std::atoll(v.c_str());
    } else {
      std::fprintf(stderr, "unknown flag %s; flags: --dtype=fp32|bf16|both --threads=N --warmup=N --steps=N "
                   "--batch=N --seq=N\n", argv[i]);
      std::exit(2);
    }
  }
  if (o.dtype != "fp32" && o.dtype != "bf16" && o.dtype != "both") {
    std::fprintf(stderr, "--dtype must be fp32, bf16 or both, got '%s'\n", o.dtype.c_str());
    std::exit(2);
  }
  if (o.threads < 1 || o.steps < 1 || o.warmup < 0 || o.batch < 1 || o.seq < 2) {
    std::fprintf(stderr, "--threads, --steps, --batch must be >= 1, --seq >= 2, --warmup >= 0\n");
    std::exit(2);
  }
  return o;
}

// OpenBLAS is reached through libtorch's libblas.so.3, so its entry points are looked up at run time
// (absent when another BLAS is installed).
std::string OpenBlasCore() {
  using Fn = char* (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn != nullptr ? fn() : "none (BLAS is not OpenBLAS)";
}

int OpenBlasThreads() {
  using Fn = int (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return fn != nullptr ? fn() : -1;
}

// torch's set_num_threads leaves OpenBLAS's own pool alone; fp32 matmuls run there.
void SetOpenBlasThreads(int n) {
  using Fn = void (*)(int);
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (fn != nullptr) fn(n);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// User + system CPU seconds of every thread of the process: less disturbed than wall time by other
// processes on a shared machine.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Best rate over `reps` products of two n x n matrices: the peak the step's matmuls could reach.
double PeakMatmulGflops(at::ScalarType dtype, int64_t n, int reps) {
  at::Tensor a = at::randn({n, n}).to(dtype);
  at::Tensor b = at::randn({n, n}).to(dtype);
  at::Tensor c = at::mm(a, b);  // warm-up: packing buffers, oneDNN primitive creation
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    c = at::mm(a, b);
    const double s = Seconds(t0, Clock::now());
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

struct FlopCount {
  int64_t dense_params = 0;  // frozen matmul weights: every projection and lm_head (embedding is a lookup)
  int64_t lora_params = 0;   // r * (in + out) per adapted projection
  double per_step = 0;
};

// forward 2*P*N + backward activation grads through the frozen weights 2*P*N, LoRA forward, input and
// weight grads 6*P_lora*N, attention scores and P@V 4*L*T^2*H per sequence forward, x3 with backward.
FlopCount CountFlops(tuneforge::CausalLM& model, int64_t batch, int64_t seq) {
  FlopCount f;
  for (auto& [name, p] : model.projections()) {
    f.dense_params += p.weight.numel();
    if (p.lora_a.defined()) f.lora_params += p.lora_a.numel() + p.lora_b.numel();
  }
  f.dense_params += model.weights().at("lm_head.weight").numel();
  const auto& arch = model.config().arch;
  const double tokens = static_cast<double>(batch * seq);
  const double attention = 3.0 * batch * 4.0 * arch.num_hidden_layers * double(seq) * seq *
                           (arch.num_attention_heads * arch.head_dim);
  f.per_step = 4.0 * f.dense_params * tokens + 6.0 * f.lora_params * tokens + attention;
  return f;
}

std::map<std::string, at::Tensor> RandomWeights(const tuneforge::DecoderConfig& config) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(kWeightSeed);
  std::map<std::string, at::Tensor> weights;
  for (const auto& [name, shape] : tuneforge::ExpectedWeightShapes(config.arch)) {  // sorted by name
    const bool norm = name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0;
    weights[name] = norm ? at::ones(shape) : at::randn(shape, gen) * 0.02;
  }
  return weights;
}

int RunDtype(const tuneforge::DecoderConfig& config, const Options& o, at::ScalarType dtype, const char* label) {
  tuneforge::BuildOptions build;
  build.dtype = dtype;
  build.lora.rank = 16;
  build.lora.alpha = 32;
  build.lora.seed = kLoraSeed;
  build.lora.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  auto built = tuneforge::CausalLM::Build(config, RandomWeights(config), build);
  if (!built.ok()) {
    std::fprintf(stderr, "building the model failed: %s\n", built.status().ToString().c_str());
    return 1;
  }
  tuneforge::CausalLM& model = **built;
  model.set_training(true);
  std::vector<at::Tensor> lora;
  for (const auto& [name, t] : model.LoraParameters()) lora.push_back(t);
  tuneforge::AdamWSettings settings;
  settings.lr = kLearningRate;
  tuneforge::AdamWOptimizer optimizer(lora, settings);

  at::Generator token_gen = at::make_generator<at::CPUGeneratorImpl>(kTokenSeed);
  at::Tensor ids = at::randint(0, config.arch.vocab_size, {o.batch, o.seq}, token_gen);
  const FlopCount flops = CountFlops(model, o.batch, o.seq);
  const double peak = PeakMatmulGflops(dtype, 2048, 10);
  std::printf("[%s] params %lld (dense matmul %lld, LoRA %lld); model GFLOP/step %.1f; peak %s matmul (2048^3, "
              "best of 10) %.1f GFLOP/s\n",
              label, static_cast<long long>(model.ParameterCount()), static_cast<long long>(flops.dense_params),
              static_cast<long long>(flops.lora_params), flops.per_step / 1e9, label, peak);

  std::vector<double> step_s, cpu_s, forward_s, backward_s, optimizer_s, losses;
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    const double cpu0 = ProcessCpuSeconds();
    const auto t0 = Clock::now();
    at::Tensor loss = tuneforge::CausalLmLoss(model.Forward(ids), ids);
    const auto t1 = Clock::now();
    loss.backward();
    const auto t2 = Clock::now();
    optimizer.Step();
    optimizer.ZeroGrad();
    const auto t3 = Clock::now();
    const double cpu = ProcessCpuSeconds() - cpu0;
    losses.push_back(loss.item<double>());
    std::printf("[%s] step %d%s: %.0f ms (forward+loss %.0f, backward %.0f, optimizer %.0f), cpu %.0f ms, loss %.6f\n",
                label, i, i < o.warmup ? " (warm-up)" : "", 1e3 * Seconds(t0, t3), 1e3 * Seconds(t0, t1),
                1e3 * Seconds(t1, t2), 1e3 * Seconds(t2, t3), 1e3 * cpu, losses.back());
    if (i < o.warmup) continue;
    step_s.push_back(Seconds(t0, t3));
    cpu_s.push_back(cpu);
    forward_s.push_back(Seconds(t0, t1));
    backward_s.push_back(Seconds(t1, t2));
    optimizer_s.push_back(Seconds(t2, t3));
  }
  const double step = Median(step_s);
  const double tokens_per_s = static_cast<double>(o.batch * o.seq) / step;
  const double achieved = flops.per_step / step / 1e9;
  std::printf("RESULT impl=tuneforge dtype=%s threads=%d tokens_per_s=%.1f step_ms=%.1f best_step_ms=%.1f "
              "cpu_ms=%.1f forward_ms=%.1f backward_ms=%.1f optimizer_ms=%.1f gflops=%.1f peak_gflops=%.1f mfu=%.3f "
              "first_loss=%.6f last_loss=%.6f\n",
              label, o.threads, tokens_per_s, 1e3 * step, 1e3 * *std::min_element(step_s.begin(), step_s.end()),
              1e3 * Median(cpu_s), 1e3 * Median(forward_s), 1e3 * Median(backward_s), 1e3 * Median(optimizer_s),
              achieved, peak, achieved / peak, losses.front(), losses.back());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  const int blas_threads_at_start = OpenBlasThreads();
  at::set_num_threads(o.threads);
  SetOpenBlasThreads(o.threads);
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("tuneforge train step: openblas core %s, openblas threads %d (at start %d), torch threads %d, "
              "OMP_WAIT_POLICY=%s, load average %s\n",
              OpenBlasCore().c_str(), OpenBlasThreads(), blas_threads_at_start, at::get_num_threads(),
              wait_policy != nullptr ? wait_policy : "(unset)", LoadAverage().c_str());
  auto config = tuneforge::ParseDecoderConfig(kConfigJson, "", "bench config.json");
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 1;
  }
  std::printf("shape: batch %lld x seq %lld, hidden 512, 8 layers, 8 heads / 4 kv heads, intermediate 1376, vocab "
              "32000, LoRA r=16 alpha=32 on q,k,v,o,gate,up,down; %d warm-up + %d timed steps\n",
              static_cast<long long>(o.batch), static_cast<long long>(o.seq), o.warmup, o.steps);
  std::fflush(stdout);
  if (o.dtype != "bf16" && RunDtype(*config, o, at::kFloat, "fp32") != 0) return 1;
  if (o.dtype != "fp32" && RunDtype(*config, o, at::kBFloat16, "bf16") != 0) return 1;
  return 0;
}
