// One LoRA training step (forward, causal-LM loss, backward, AdamW, zero grad) of a Hugging Face model directory on
// the CPU or a GPU: tokens/s, peak GPU memory and model-FLOPs utilisation against the peak matmul rate measured in
// this process. bench/hf_train_step.py runs transformers + PEFT on the same model, tokens and settings, and prints
// the same RESULT line; bench/train_step.sh and bench/gpu_check.sh put the two side by side.
// Usage: train_step_bench --model=DIR --inputs=FILE [--device=cpu|cuda|cuda:N|auto] [--dtype=fp32|bf16]
//          [--attn=sdpa|eager] [--threads=N] [--warmup=2] [--steps=5] [--lora-r=16] [--lora-alpha=32]
//          [--save-adapter=DIR]
// FILE is a safetensors file with `input_ids` [B,T] (int64); the labels are the inputs (every token counts), or with
// --prompt-fraction=F the first F of each row's positions carry no loss (-100), as the prompt of an SFT example.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <torch/csrc/autograd/profiler_kineto.h>

#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/device.h"
#include "services/trainer/model/tensor_file.h"
#include "services/trainer/peft/lora_adapter.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/training_step.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kLoraSeed = 42;
constexpr double kLearningRate = 1e-4;
constexpr double kWeightDecay = 0.01;

struct Options {
  std::string model, inputs, save_adapter, profile;
  std::string device = "auto", dtype = "bf16", attn = "sdpa", loss = "chunked", optimizer = "adamw";
  int threads = 0;  // 0: libtorch's default
  int warmup = 2, steps = 5;
  int64_t lora_r = 16;
  int64_t loss_chunk_rows = -1;  // --loss=chunked: rows per chunk (-1: the default for the vocabulary and device)
  double lora_alpha = 32;
  double lora_dropout = 0;
  bool checkpointing = false;  // activation checkpointing of every decoder layer
  bool per_sequence = true;    // packed rows attend sequence by sequence (false: through a block-diagonal mask)
  bool fused = true;           // RoPE and the gated activation as single nodes (false: transformers' op sequences)
  bool offload = false;        // with --checkpointing=1: the checkpointed layer inputs wait in host memory
  double prompt_fraction = 0;  // leading share of each row's labels set to -100
};

[[noreturn]] void Usage(const char* problem) {
  std::fprintf(stderr,
               "%s\nusage: train_step_bench --model=DIR --inputs=FILE [--device=auto|cpu|cuda|cuda:N] "
               "[--dtype=fp32|bf16] [--attn=sdpa|eager] [--threads=N] [--warmup=N] [--steps=N] [--lora-r=N] "
               "[--lora-alpha=X] [--lora-dropout=P] [--loss=chunked|logits] [--checkpointing=0|1] [--offload=0|1] [--per-sequence=0|1] "
               "[--fused=0|1] [--loss-chunk-rows=N] [--prompt-fraction=F] "
               "[--save-adapter=DIR] [--profile=TRACE.json]\n",
               problem);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string*> strings = {{"--model", &o.model},   {"--inputs", &o.inputs},
                                                 {"--device", &o.device}, {"--dtype", &o.dtype},
                                                 {"--attn", &o.attn},     {"--save-adapter", &o.save_adapter},
                                                 {"--loss", &o.loss},     {"--profile", &o.profile},
                                                 {"--optimizer", &o.optimizer}};
  std::map<std::string, bool*> switches = {{"--checkpointing", &o.checkpointing},
                                           {"--offload", &o.offload},
                                           {"--per-sequence", &o.per_sequence},
                                           {"--fused", &o.fused}};
  for (int i = 1; i < argc; ++i) {
    const char* eq = std::strchr(argv[i], '=');
    if (eq == nullptr) Usage((std::string("flags take a value: ") + argv[i]).c_str());
    const std::string name(argv[i], eq - argv[i]), value(eq + 1);
    if (auto it = strings.find(name); it != strings.end()) {
      *it->second = value;
    } else if (auto sw = switches.find(name); sw != switches.end()) {
      if (value != "0" && value != "1") Usage((name + " must be 0 or 1").c_str());
      *sw->second = value == "1";
    } else if (name == "--threads") {
      o.threads = std::atoi(value.c_str());
    } else if (name == "--warmup") {
      o.warmup = std::atoi(value.c_str());
    } else if (name == "--steps") {
      o.steps = std::atoi(value.c_str());
    } else if (name == "--lora-r") {
      o.lora_r = std::atoll(value.c_str());
    } else if (name == "--loss-chunk-rows") {
      o.loss_chunk_rows = std::atoll(value.c_str());
      if (o.loss_chunk_rows < 1) Usage("--loss-chunk-rows must be >= 1");
    } else if (name == "--lora-dropout") {
      o.lora_dropout = std::atof(value.c_str());
      if (o.lora_dropout < 0 || o.lora_dropout >= 1) Usage("--lora-dropout must be in [0, 1)");
    } else if (name == "--lora-alpha") {
      o.lora_alpha = std::atof(value.c_str());
    } else if (name == "--prompt-fraction") {
      o.prompt_fraction = std::atof(value.c_str());
      if (o.prompt_fraction < 0 || o.prompt_fraction >= 1) Usage("--prompt-fraction must be in [0, 1)");
    } else {
      Usage((std::string("unknown flag ") + argv[i]).c_str());
    }
  }
  if (o.model.empty() || o.inputs.empty()) Usage("--model and --inputs are required");
  if (o.offload && !o.checkpointing) Usage("--offload=1 needs --checkpointing=1");
  if (o.dtype != "fp32" && o.dtype != "bf16") Usage("--dtype must be fp32 or bf16");
  if (o.loss != "chunked" && o.loss != "logits") Usage("--loss must be chunked or logits");
  if (o.threads < 0 || o.steps < 1 || o.warmup < 0 || o.lora_r < 1) {
    Usage("--threads must be >= 0, --steps and --lora-r >= 1, --warmup >= 0");
  }
  return o;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// User + system CPU seconds of every thread of the process: less disturbed than wall time by other processes.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

int Run(const Options& o) {
  auto request = tuneforge::ParseDeviceRequest(o.device);
  if (!request.ok()) Usage(std::string(request.status().message()).c_str());
  auto device = tuneforge::ResolveDevice(*request);
  if (!device.ok()) {
    std::fprintf(stderr, "%s\n", device.status().ToString().c_str());
    return 1;
  }
  if (o.threads > 0) at::set_num_threads(o.threads);
  auto attention = tuneforge::ParseAttentionImpl(o.attn);
  if (!attention.ok()) Usage(std::string(attention.status().message()).c_str());
  auto inputs = tuneforge::ReadTensorFile(o.inputs, "inputs");
  if (!inputs.ok() || inputs->count("input_ids") == 0) {
    std::fprintf(stderr, "%s: needs an int64 tensor input_ids [B,T] (%s)\n", o.inputs.c_str(),
                 inputs.ok() ? "missing" : inputs.status().ToString().c_str());
    return 1;
  }
  auto input = [&](const char* name) {
    auto it = inputs->find(name);
    return it == inputs->end() ? at::Tensor() : it->second.to(*device, at::kLong);
  };
  at::Tensor ids = input("input_ids");
  const at::Tensor mask = input("attention_mask"), positions = input("position_ids");
  const int64_t batch = ids.size(0), seq = ids.size(1);
  at::Tensor labels = input("labels");
  if (!labels.defined()) {
    labels = ids.clone();
    labels.slice(1, 0, static_cast<int64_t>(o.prompt_fraction * static_cast<double>(seq))).fill_(-100);
  }
  // Tokens that are not padding: the rate counts these.
  const int64_t tokens = mask.defined() ? mask.ne(0).sum().item<int64_t>() : batch * seq;

  tuneforge::BuildOptions build;
  build.dtype = o.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  build.device = *device;
  build.attention = *attention;
  build.lora.rank = o.lora_r;
  build.lora.alpha = o.lora_alpha;
  build.lora.dropout = o.lora_dropout;
  build.lora.seed = kLoraSeed;
  build.lora.target_modules = {"all-linear"};
  build.gradient_checkpointing = o.checkpointing;
  build.per_sequence_attention = o.per_sequence;
  build.fused_elementwise = o.fused;
  build.activation_offload = o.offload;
  const auto load_start = Clock::now();
  auto built = tuneforge::CausalLM::Load(o.model, build);
  if (!built.ok()) {
    std::fprintf(stderr, "loading %s failed: %s\n", o.model.c_str(), built.status().ToString().c_str());
    return 1;
  }
  tuneforge::CausalLM& model = **built;
  tuneforge::SynchronizeDevice(*device);
  const double load_s = Seconds(load_start, Clock::now());
  model.set_training(true);
  std::vector<at::Tensor> lora;
  for (const auto& [name, t] : model.LoraParameters()) lora.push_back(t);
  tuneforge::AdamWSettings settings;
  settings.lr = kLearningRate;
  settings.weight_decay = kWeightDecay;
  auto states = tuneforge::ParseAdamWStates(o.optimizer);
  if (!states.ok()) Usage(std::string(states.status().message()).c_str());
  settings.states = *states;
  tuneforge::AdamWOptimizer optimizer(lora, settings);

  // The chunked loss projects only the rows whose shifted label counts.
  const int64_t head_rows = labels.slice(1, 1).ne(-100).sum().item<int64_t>();
  const double flops = tuneforge::TrainingFlops(model, batch, seq, o.loss == "chunked" ? head_rows : -1);
  const at::ScalarType peak_dtype = build.dtype;
  const double peak = tuneforge::PeakMatmulFlops(peak_dtype, *device) / 1e9;
  std::printf("[tuneforge %s %s %s] %s; params %lld, trainable %lld; batch %lld x %lld; model GFLOP/step %.1f; "
              "peak matmul %.1f GFLOP/s; loaded in %.1f s\n",
              device->str().c_str(), o.dtype.c_str(), o.attn.c_str(), tuneforge::DescribeDevice(*device).c_str(),
              static_cast<long long>(model.ParameterCount()), static_cast<long long>(model.TrainableParameterCount()),
              static_cast<long long>(batch), static_cast<long long>(seq), flops / 1e9, peak, load_s);
  std::fflush(stdout);

  tuneforge::ResetPeakDeviceMemory(*device);
  const std::optional<int64_t> resident_before = tuneforge::ResidentMemoryBytes();
  auto compute_loss = [&]() {
    return tuneforge::ModelLoss(model, ids, mask, positions, labels,
                                o.loss == "logits" ? 0 : o.loss_chunk_rows);
  };
  std::vector<double> step_s, cpu_s, forward_s, backward_s, optimizer_s, losses;
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    const double cpu0 = ProcessCpuSeconds();
    const auto t0 = Clock::now();
    at::Tensor loss = compute_loss();
    tuneforge::SynchronizeDevice(*device);
    const auto t1 = Clock::now();
    loss.backward();
    tuneforge::SynchronizeDevice(*device);
    const auto t2 = Clock::now();
    optimizer.Step();
    optimizer.ZeroGrad();
    tuneforge::SynchronizeDevice(*device);
    const auto t3 = Clock::now();
    const double cpu = ProcessCpuSeconds() - cpu0;
    losses.push_back(loss.item<double>());
    std::printf("[tuneforge] step %d%s: %.1f ms (forward+loss %.1f, backward %.1f, optimizer %.1f), cpu %.0f ms, "
                "loss %.6f\n",
                i, i < o.warmup ? " (warm-up)" : "", 1e3 * Seconds(t0, t3), 1e3 * Seconds(t0, t1),
                1e3 * Seconds(t1, t2), 1e3 * Seconds(t2, t3), 1e3 * cpu, losses.back());
    if (i < o.warmup) continue;
    step_s.push_back(Seconds(t0, t3));
    cpu_s.push_back(cpu);
    forward_s.push_back(Seconds(t0, t1));
    backward_s.push_back(Seconds(t1, t2));
    optimizer_s.push_back(Seconds(t2, t3));
  }
  const std::optional<int64_t> peak_bytes = tuneforge::PeakDeviceMemoryBytes(*device);
  const double step = Median(step_s);
  const double achieved = flops / step / 1e9;
  std::printf("RESULT impl=tuneforge device=%s dtype=%s attn=%s loss=%s checkpointing=%d offload=%d fused=%d "
              "threads=%d batch=%lld "
              "seq=%lld tokens=%lld attention=%s tokens_per_s=%.1f step_ms=%.2f best_step_ms=%.2f cpu_ms=%.1f forward_ms=%.2f backward_ms=%.2f "
              "optimizer_ms=%.2f optimizer=%s optimizer_state_mib=%.2f peak_mem_mib=%s train_rss_mib=%s gflops=%.1f peak_gflops=%.1f mfu=%.3f "
              "first_loss=%.6f last_loss=%.6f\n",
              device->is_cuda() ? "cuda" : "cpu", o.dtype.c_str(), o.attn.c_str(), o.loss.c_str(),
              o.checkpointing ? 1 : 0, o.offload ? 1 : 0, o.fused ? 1 : 0, at::get_num_threads(),
              static_cast<long long>(batch), static_cast<long long>(seq), static_cast<long long>(tokens),
              model.Layout(mask, batch, seq).Describe(), static_cast<double>(tokens) / step,
              1e3 * step, 1e3 * *std::min_element(step_s.begin(), step_s.end()), 1e3 * Median(cpu_s),
              1e3 * Median(forward_s), 1e3 * Median(backward_s), 1e3 * Median(optimizer_s),
              o.optimizer.c_str(), static_cast<double>(optimizer.StateBytes()) / (1024.0 * 1024.0),
              peak_bytes && device->is_cuda() ? std::to_string(*peak_bytes / (1024.0 * 1024.0)).c_str() : "n/a",
              peak_bytes && resident_before && !device->is_cuda()
                  ? std::to_string((*peak_bytes - *resident_before) / (1024.0 * 1024.0)).c_str()
                  : "n/a",
              achieved, peak,
              achieved / peak, losses.front(), losses.back());
  std::fflush(stdout);

  if (!o.profile.empty()) {
    // One more step under the profiler (CPU ops, and CUDA kernels on a GPU), written as a Chrome trace for
    // bench/profile_step.py.
    namespace prof = torch::autograd::profiler;
    const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
    std::set<torch::profiler::impl::ActivityType> activities{torch::profiler::impl::ActivityType::CPU};
    if (device->is_cuda()) activities.insert(torch::profiler::impl::ActivityType::CUDA);
    prof::prepareProfiler(config, activities);
    prof::enableProfiler(config, activities);
    {
      compute_loss().backward();
      optimizer.Step();
      optimizer.ZeroGrad();
      tuneforge::SynchronizeDevice(*device);
    }
    prof::disableProfiler()->save(o.profile);
    std::printf("profile of one step written to %s\n", o.profile.c_str());
  }

  if (!o.save_adapter.empty()) {
    std::error_code error;
    std::filesystem::create_directories(o.save_adapter, error);
    const absl::Status saved = tuneforge::SavePeftAdapter(model, o.model, o.save_adapter);
    if (!saved.ok()) {
      std::fprintf(stderr, "saving the adapter failed: %s\n", saved.ToString().c_str());
      return 1;
    }
    std::printf("adapter saved to %s\n", o.save_adapter.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  try {
    return Run(o);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "torch error: %s\n", e.what_without_backtrace());
    return 1;
  }
}
