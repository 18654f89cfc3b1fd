// The fine-tuning recipe, top to bottom: settings, device, tokenizer, examples, model with LoRA, resume, the
// training loop (one TrainStep per optimizer step, with the schedule), evaluation, checkpoints and the final adapter.
#include "services/trainer/recipes/fine_tune.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "services/trainer/data/batching.h"
#include "services/trainer/data/example_tokenizer.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/model/device.h"
#include "services/trainer/train/adamw.h"
#include "services/trainer/train/checkpoints.h"
#include "services/trainer/train/lr_schedule.h"
#include "services/trainer/train/training_step.h"

namespace tuneforge {

namespace fs = std::filesystem;

namespace {

using EventFn = std::function<void(std::string_view level, const std::string& message)>;

std::string FormatDouble(double v) {
  std::ostringstream os;
  os.precision(4);
  os << v;
  return os.str();
}

// The job's settings, and the device and dtype they ask for.
struct RunSettings {
  FineTuneSettings s;
  c10::Device device = c10::Device(c10::kCPU);
  at::ScalarType dtype = at::kFloat;
};

absl::StatusOr<RunSettings> ResolveRunSettings(const FineTuneSpec& spec, const EventFn& event) {
  RunSettings run;
  std::vector<std::string> ignored;
  ASSIGN_OR_RETURN(run.s, ParseFineTuneSettings(spec.lora, spec.training, &ignored));
  const FineTuneSettings& s = run.s;
  if (s.full_finetune) {
    return absl::UnimplementedError(
        "training.full_finetune is not implemented yet; set it to false to train a LoRA adapter");
  }
  if (spec.model_dir.empty()) return absl::InvalidArgumentError("model_dir is empty; give the local model directory");
  if (spec.output_dir.empty()) return absl::InvalidArgumentError("output_dir is empty; give where the adapter goes");
  for (const std::string& key : ignored) event("warning", absl::StrCat(key, " is not a setting we know; ignored"));

  ASSIGN_OR_RETURN(DeviceRequest request, ParseDeviceRequest(s.device));
  ASSIGN_OR_RETURN(run.device, ResolveDevice(request));
  if (s.dtype == "bf16") run.dtype = at::kBFloat16;
  if (s.dtype == "fp16") {
    if (run.device.is_cpu()) {
      return absl::FailedPreconditionError(
          "training.dtype fp16 is not supported on the CPU; use bf16 or fp32 (or train on a GPU)");
    }
    run.dtype = at::kHalf;
    event("warning", "training.dtype fp16 trains the LoRA weights in fp16 without loss scaling; bf16 is safer");
  }
  if (s.activation_offload && run.device.is_cpu()) {
    event("info", "training.activation_offload: the device is the CPU, so moving layer inputs to host memory saves "
                  "nothing; it matters on a GPU");
  }
  if (spec.threads > 0) at::set_num_threads(spec.threads);
  event("info", absl::StrCat("device: ", DescribeDevice(run.device), "; dtype ", s.dtype, "; attention ",
                             s.attn_implementation));
  return run;
}

// config.json (+ generation_config.json) of the model directory.
struct ModelFiles {
  std::string config_json;
  DecoderConfig config;
  ModelArchitecture arch;
};

absl::StatusOr<ModelFiles> ReadModelFiles(const std::string& model_dir) {
  ModelFiles out;
  ASSIGN_OR_RETURN(out.config_json, ReadText(model_dir + "/config.json"));
  std::string generation_json;
  if (auto g = ReadText(model_dir + "/generation_config.json"); g.ok()) generation_json = *g;
  ASSIGN_OR_RETURN(out.config, ParseDecoderConfig(out.config_json, generation_json, "config.json"));
  out.arch = out.config.arch;
  return out;
}

// The train and test examples, tokenized with the model's tokenizer through the prompt.
struct Splits {
  ExampleSet train, test;
  int32_t pad_id = 0;
};

absl::StatusOr<Splits> TokenizeSplits(const FineTuneSpec& spec, const FineTuneSettings& s,
                                      const ModelArchitecture& arch, const EventFn& event) {
  ExampleOptions options;
  options.max_seq_len = s.max_seq_len;
  options.train_on_input = s.train_on_input;
  ASSIGN_OR_RETURN(std::unique_ptr<ExampleTokenizer> tokenizer,
                   ExampleTokenizer::Load(spec.model_dir, arch, spec.prompt, options));
  if (spec.train_rows.empty()) {
    return absl::FailedPreconditionError("no trainable example: the train split has no rows");
  }
  Splits out;
  out.pad_id = tokenizer->pad_id();
  ASSIGN_OR_RETURN(out.train, tokenizer->Build(spec.train_rows, "train", spec.train_row_labels, event));
  if (out.train.examples.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("no trainable example: none of the ", out.train.rows,
                                                      " train rows leaves a completion token within "
                                                      "training.max_seq_len ",
                                                      s.max_seq_len,
                                                      "; raise max_seq_len, shorten the prompt, or check the dataset"));
  }
  if (!spec.test_rows.empty()) {
    ASSIGN_OR_RETURN(out.test, tokenizer->Build(spec.test_rows, "test", spec.test_row_labels, event));
  }
  return out;
}

// The micro-batches of each epoch and how many optimizer steps the run makes. Packing fills rows in epoch order,
// so each epoch can have its own count.
struct StepPlan {
  BatchOptions batch_options;
  int64_t total_steps = 0;
  int64_t num_epochs = 0;
  std::function<std::vector<Batch>(int64_t epoch)> epoch_batches;
  std::function<int64_t(int64_t epoch)> epoch_steps;
};

StepPlan PlanSteps(const FineTuneSettings& s, const ExampleSet& train, int32_t pad_id, bool padding_free) {
  StepPlan plan;
  plan.batch_options.batch_size = s.per_device_batch_size;
  plan.batch_options.max_seq_len = s.max_seq_len;
  plan.batch_options.packing = s.packing;
  plan.batch_options.pad_id = pad_id;
  plan.batch_options.padding_free = padding_free;
  const size_t n_examples = train.examples.size();
  const BatchOptions options = plan.batch_options;
  const std::vector<Example>* examples = &train.examples;
  plan.epoch_batches = [examples, options, n_examples, seed = s.seed](int64_t epoch) {
    return MakeBatches(*examples, EpochOrder(n_examples, static_cast<uint64_t>(seed), epoch, true), options);
  };
  auto steps_of = [accumulation = s.gradient_accumulation_steps](int64_t micro_batches) {
    return (micro_batches + accumulation - 1) / accumulation;
  };
  plan.epoch_steps = [&s, steps_of, n_examples, epoch_batches = plan.epoch_batches](int64_t epoch) -> int64_t {
    if (!s.packing) {
      return steps_of((static_cast<int64_t>(n_examples) + s.per_device_batch_size - 1) / s.per_device_batch_size);
    }
    return steps_of(static_cast<int64_t>(epoch_batches(epoch).size()));
  };
  if (s.max_steps > 0) {
    plan.total_steps = s.max_steps;
    for (int64_t covered = 0; covered < plan.total_steps; ++plan.num_epochs) {
      covered += plan.epoch_steps(plan.num_epochs);
    }
  } else {
    plan.num_epochs = s.num_epochs;
    for (int64_t e = 0; e < plan.num_epochs; ++e) plan.total_steps += plan.epoch_steps(e);
  }
  return plan;
}

// The base model with LoRA built into its projections.
absl::StatusOr<std::unique_ptr<CausalLM>> BuildLoraModel(const std::string& model_dir, const RunSettings& run) {
  const FineTuneSettings& s = run.s;
  BuildOptions build;
  build.dtype = run.dtype;
  build.device = run.device;
  build.lora.rank = s.lora_r;
  build.lora.alpha = s.lora_alpha;
  build.lora.use_rslora = s.use_rslora;
  build.lora.dropout = s.lora_dropout;
  build.lora.target_modules = s.target_modules;
  build.lora.seed = static_cast<uint64_t>(s.seed);
  build.gradient_checkpointing = s.gradient_checkpointing;
  build.activation_offload = s.activation_offload;
  ASSIGN_OR_RETURN(build.attention, ParseAttentionImpl(s.attn_implementation));
  return CausalLM::Load(model_dir, build);
}

// Applies the newest checkpoint of this run that can be read to the model and the optimizer; a fresh state when
// there is none. A checkpoint of another run is an error, not something to skip.
absl::StatusOr<TrainerState> Resume(const std::string& checkpoint_dir,
                                    const std::vector<std::pair<std::string, at::Tensor>>& named_params,
                                    AdamWOptimizer& optimizer, const std::string& fingerprint, const StepPlan& plan,
                                    const EventFn& event) {
  TrainerState st;
  if (checkpoint_dir.empty()) return st;
  RETURN_IF_ERROR(MakeDirectories(checkpoint_dir, "checkpoint"));
  RemoveStaleTemporaries(checkpoint_dir);
  const std::vector<int64_t> saved = ListCheckpoints(checkpoint_dir);
  for (auto it = saved.rbegin(); it != saved.rend(); ++it) {
    const fs::path dir = fs::path(checkpoint_dir) / CheckpointName(*it);
    auto loaded = ReadCheckpoint(dir, *it, named_params, fingerprint, plan.total_steps);
    if (loaded.status().code() == absl::StatusCode::kFailedPrecondition) return loaded.status();
    if (!loaded.ok()) {
      event("warning", absl::StrCat(CheckpointName(*it), " cannot be resumed from (", loaded.status().message(),
                                    "); trying an older one"));
      continue;
    }
    {
      at::NoGradGuard no_grad;
      for (const auto& [name, param] : named_params) {
        at::Tensor dst = param;
        dst.copy_(loaded->lora.at(name));
      }
    }
    RETURN_IF_ERROR(optimizer.ImportState(loaded->optimizer));
    st = std::move(loaded->state);
    event("info", absl::StrCat("resumed from ", CheckpointName(*it), " (step ", st.step, " of ", plan.total_steps,
                               ", epoch ", std::min<int64_t>(st.next_epoch + 1, plan.num_epochs), " of ",
                               plan.num_epochs, ")"));
    break;
  }
  return st;
}

// Steps since the last progress report: their mean loss, tokens and time.
class ProgressWindow {
 public:
  void Add(double loss, int64_t tokens, double flops) {
    loss_ += loss;
    tokens_ += tokens;
    flops_ += flops;
    steps_ += 1;
  }
  // The report for the steps so far (and the run's totals), then a new window.
  FineTuneProgress Report(const TrainerState& st, const StepPlan& plan, int64_t epoch, double lr, double grad_norm,
                          std::optional<double> eval_loss, const c10::Device& device, double peak_flops) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    FineTuneProgress p;
    p.step = st.step;
    p.total_steps = plan.total_steps;
    p.epoch = static_cast<int>(epoch + 1);
    p.num_epochs = static_cast<int>(plan.num_epochs);
    p.tokens = st.train_tokens;
    p.loss = loss_ / static_cast<double>(steps_);
    p.learning_rate = lr;
    p.grad_norm = grad_norm;
    p.tokens_per_second = seconds > 0 ? static_cast<double>(tokens_) / seconds : 0.0;
    p.eval_loss = eval_loss;
    p.step_seconds = seconds / static_cast<double>(steps_);
    p.report_steps = steps_;
    p.peak_device_memory_bytes = PeakDeviceMemoryBytes(device);
    p.mfu = peak_flops > 0 && seconds > 0 ? flops_ / seconds / peak_flops : 0.0;
    *this = ProgressWindow();
    return p;
  }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_ = Clock::now();
  double loss_ = 0;
  int64_t tokens_ = 0;
  double flops_ = 0;
  int64_t steps_ = 0;
};

absl::StatusOr<FineTuneResult> RunFineTuneImpl(const FineTuneSpec& spec, const FineTuneHooks& hooks) {
  const EventFn event = [&](std::string_view level, const std::string& message) {
    if (hooks.on_event) hooks.on_event(level, message);
  };

  // Settings, device, the model's files, the LoRA targets.
  ASSIGN_OR_RETURN(RunSettings run, ResolveRunSettings(spec, event));
  FineTuneSettings& s = run.s;
  ASSIGN_OR_RETURN(const ModelFiles files, ReadModelFiles(spec.model_dir));
  ASSIGN_OR_RETURN(s.target_modules, ResolveTargetModules(s.target_modules, files.arch));

  // Examples, micro-batches, steps and the learning-rate schedule.
  ASSIGN_OR_RETURN(const Splits data, TokenizeSplits(spec, s, files.arch, event));
  // Padding-free micro-batches where the model attends sequence by sequence: the same examples, loss and gradients as
  // padding, without computing padding.
  ASSIGN_OR_RETURN(const AttentionImpl attention, ParseAttentionImpl(s.attn_implementation));
  const bool padding_free = s.padding_free && AttendsPerSequence(files.config, attention, s.max_seq_len);
  const StepPlan plan = PlanSteps(s, data.train, data.pad_id, padding_free);
  auto schedule = LrSchedule::Create({s.lr_scheduler, plan.total_steps, s.warmup_steps, s.warmup_ratio});
  if (!schedule.ok()) return absl::InvalidArgumentError(absl::StrCat("training.", schedule.status().message()));
  event("info", absl::StrCat("schedule: ", plan.total_steps, " optimizer steps over ", plan.num_epochs, " epochs (",
                             plan.epoch_steps(0), " steps in the first), micro-batches of ", s.per_device_batch_size,
                             s.packing ? " packed rows" : (padding_free ? " examples (padding-free)" : " examples"),
                             " x ", s.gradient_accumulation_steps,
                             " accumulated; ", s.lr_scheduler, " lr ", FormatDouble(s.learning_rate), " with ",
                             schedule->warmup_steps(), " warmup steps"));

  // The model with LoRA, and AdamW over the LoRA tensors.
  ASSIGN_OR_RETURN(std::unique_ptr<CausalLM> model, BuildLoraModel(spec.model_dir, run));
  const std::vector<std::pair<std::string, at::Tensor>> named_params = model->LoraParameters();
  std::vector<at::Tensor> params;
  for (const auto& [name, t] : named_params) params.push_back(t);
  event("info", absl::StrCat("model: ", model->ParameterCount(), " parameters, ", model->TrainableParameterCount(),
                             " trainable (LoRA r ", s.lora_r, ", alpha ", FormatDouble(s.lora_alpha), " on ",
                             absl::StrJoin(s.target_modules, ", "), ")"));
  AdamWSettings adam;
  adam.lr = s.learning_rate;
  adam.beta1 = s.adam_beta1;
  adam.beta2 = s.adam_beta2;
  adam.eps = s.adam_epsilon;
  adam.weight_decay = s.weight_decay;
  ASSIGN_OR_RETURN(adam.states, ParseAdamWStates(s.optimizer));
  AdamWOptimizer optimizer(params, adam);

  // Resume from this run's newest checkpoint.
  const std::string fingerprint = RunFingerprint(s, data.train, files.config_json);
  ASSIGN_OR_RETURN(TrainerState st, Resume(spec.checkpoint_dir, named_params, optimizer, fingerprint, plan, event));

  // Train: one optimizer step per group of micro-batches; evaluate, report and checkpoint as the settings say.
  auto save_checkpoint = [&](double loss) -> absl::Status {
    if (spec.checkpoint_dir.empty()) return absl::OkStatus();
    const fs::path dir = fs::path(spec.checkpoint_dir) / CheckpointName(st.step);
    RETURN_IF_ERROR(WriteCheckpoint(dir, *model, optimizer, named_params, spec.base_model_name,
                                    TrainerStateJson(st, plan.total_steps, fingerprint)));
    std::vector<int64_t> all = ListCheckpoints(spec.checkpoint_dir);
    std::error_code ec;
    for (size_t i = 0; i + kCheckpointsKept < all.size(); ++i) {
      fs::remove_all(fs::path(spec.checkpoint_dir) / CheckpointName(all[i]), ec);
    }
    event("info", absl::StrCat("saved ", CheckpointName(st.step), " (epoch ", st.last_epoch, ", loss ",
                               FormatDouble(loss), ")"));
    if (hooks.on_checkpoint) hooks.on_checkpoint({st.step, static_cast<int>(st.last_epoch), dir.string(), loss});
    return absl::OkStatus();
  };
  const double peak_flops = PeakMatmulFlops(run.dtype, run.device);  // MFU's denominator, measured once per process
  ResetPeakDeviceMemory(run.device);  // progress reports the peak of training, not of loading
  ProgressWindow window;
  model->set_training(true);
  for (int64_t epoch = st.next_epoch; epoch < plan.num_epochs && st.step < plan.total_steps; ++epoch) {
    const std::vector<Batch> batches = plan.epoch_batches(epoch);
    const int64_t n_batches = static_cast<int64_t>(batches.size());
    int64_t b = epoch == st.next_epoch ? st.next_batch : 0;
    while (b < n_batches && st.step < plan.total_steps) {
      const int64_t group_end = std::min(n_batches, b + s.gradient_accumulation_steps);
      std::vector<const Batch*> group;
      for (int64_t i = b; i < group_end; ++i) group.push_back(&batches[i]);
      StepOptions step_options;
      step_options.max_grad_norm = s.max_grad_norm;
      step_options.seed = s.seed;
      step_options.step = st.step;
      step_options.loss_chunk_rows = s.chunked_loss ? kAutoLossChunkRows : 0;
      ASSIGN_OR_RETURN(step_options.learning_rate, schedule->LearningRate(s.learning_rate, st.step));
      absl::StatusOr<StepOutcome> step =
          TrainStep(*model, group, optimizer, params, step_options, run.device, hooks.cancelled);
      if (step.status().code() == absl::StatusCode::kCancelled) {
        return absl::CancelledError(absl::StrCat("fine-tune cancelled at step ", st.step, " of ", plan.total_steps,
                                                 "; the checkpoints in checkpoint_dir are kept for a resume"));
      }
      RETURN_IF_ERROR(step.status());
      if (step->skipped) {
        event("warning", absl::StrCat("step ", st.step + 1, ": the gradient norm is ", step->grad_norm,
                                      "; the update was skipped. Lower training.learning_rate or use fp32"));
      }

      st.step += 1;
      st.step_losses.push_back(step->loss);
      st.train_tokens += step->tokens;
      st.last_epoch = epoch + 1;
      b = group_end;
      const bool epoch_end = b == n_batches;
      const bool last = st.step == plan.total_steps;
      st.next_epoch = epoch_end ? epoch + 1 : epoch;
      st.next_batch = epoch_end ? 0 : b;
      window.Add(step->loss, step->tokens, step->flops);

      std::optional<double> eval_loss;
      if (!data.test.examples.empty() && ((epoch_end && s.eval_every_epoch) || last)) {
        absl::StatusOr<EvalLoss> evaluated =
            EvaluateLoss(*model, data.test.examples, plan.batch_options, run.device, hooks.cancelled,
                         s.chunked_loss ? kAutoLossChunkRows : 0);
        if (evaluated.status().code() == absl::StatusCode::kCancelled) {
          return absl::CancelledError("fine-tune cancelled during evaluation");
        }
        RETURN_IF_ERROR(evaluated.status());
        eval_loss = evaluated->mean;
        st.eval_losses.push_back(evaluated->mean);
        event("info", absl::StrCat("epoch ", epoch + 1, " eval loss ", FormatDouble(evaluated->mean), " on ",
                                   data.test.examples.size(), " test examples (step ", st.step, ")"));
      }
      if (st.step % s.logging_steps == 0 || epoch_end || last) {
        const FineTuneProgress p = window.Report(st, plan, epoch, step_options.learning_rate, step->grad_norm,
                                                 eval_loss, run.device, peak_flops);
        if (hooks.on_progress) hooks.on_progress(p);
      }
      if ((s.save_steps > 0 && st.step % s.save_steps == 0) || epoch_end || last) {
        RETURN_IF_ERROR(save_checkpoint(step->loss));
      }
    }
  }

  // The final adapter, complete or absent under its name.
  RETURN_IF_ERROR(WriteFinalAdapter(*model, spec.base_model_name, spec.output_dir));
  event("info", absl::StrCat("adapter written to ", spec.output_dir, " after ", st.step, " steps"));

  FineTuneResult result;
  result.steps = st.step;
  result.step_losses = std::move(st.step_losses);
  result.eval_losses = std::move(st.eval_losses);
  result.adapter_dir = spec.output_dir;
  result.train_tokens = st.train_tokens;
  result.settings = s.ToJson();
  return result;
}

}  // namespace

absl::StatusOr<FineTuneResult> RunFineTune(const FineTuneSpec& spec, const FineTuneHooks& hooks) {
  try {
    return RunFineTuneImpl(spec, hooks);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (absl::StrContains(what, "out of memory")) {
      return absl::ResourceExhaustedError(
          absl::StrCat("training ran out of memory (", what.substr(0, 200),
                       "); lower training.per_device_batch_size or max_seq_len, or raise gradient_accumulation_steps"));
    }
    return absl::InternalError(absl::StrCat("libtorch failed during fine-tuning: ", what.substr(0, 500)));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("fine-tuning failed: ", e.what()));
  }
}

}  // namespace tuneforge
