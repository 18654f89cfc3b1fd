// Batches on the device, the evaluation loss, and one optimizer step.
#include "services/trainer/train/training_step.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/trainer/train/causal_lm_loss.h"
#include "services/trainer/train/grad_clip.h"

namespace tuneforge {

uint64_t StepSeed(int64_t seed, int64_t step) {
  return SplitMix64(static_cast<uint64_t>(seed) ^ SplitMix64(0x5EEDull + static_cast<uint64_t>(step)));
}

int64_t CountedLabels(const Batch& b) {
  int64_t n = 0;
  for (int64_t r = 0; r < b.rows; ++r) {
    for (int64_t c = 1; c < b.cols; ++c) n += b.labels[r * b.cols + c] != kIgnoreLabel ? 1 : 0;
  }
  return n;
}

at::Tensor ToDevice(const std::vector<int64_t>& v, int64_t rows, int64_t cols, const c10::Device& device) {
  return at::tensor(v, at::kLong).view({rows, cols}).to(device);
}

double GradNorm(const std::vector<at::Tensor>& params) {
  double total = 0;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) total += p.grad().to(at::kFloat).pow(2).sum().item<double>();
  }
  return std::sqrt(total);
}

absl::StatusOr<EvalLoss> EvaluateLoss(CausalLM& model, const std::vector<Example>& examples,
                                      const BatchOptions& options, const c10::Device& device,
                                      const std::function<bool()>& cancelled) {
  const bool was_training = model.training();
  model.set_training(false);
  at::NoGradGuard no_grad;
  std::vector<size_t> order(examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  BatchOptions eval_options = options;
  eval_options.packing = false;
  double sum = 0;
  EvalLoss out;
  for (const Batch& b : MakeBatches(examples, order, eval_options)) {
    if (cancelled && cancelled()) {
      model.set_training(was_training);
      return absl::CancelledError("cancelled during evaluation");
    }
    out.tokens += b.tokens;
    const int64_t n = CountedLabels(b);
    if (n == 0) continue;
    at::Tensor logits =
        model.Forward(ToDevice(b.input_ids, b.rows, b.cols, device), ToDevice(b.attention_mask, b.rows, b.cols, device),
                      ToDevice(b.position_ids, b.rows, b.cols, device));
    sum += CausalLmLoss(logits, ToDevice(b.labels, b.rows, b.cols, device)).item<double>() * static_cast<double>(n);
    out.label_tokens += n;
  }
  model.set_training(was_training);
  out.mean = out.label_tokens > 0 ? sum / static_cast<double>(out.label_tokens) : 0.0;
  return out;
}

absl::StatusOr<StepOutcome> TrainStep(CausalLM& model, const std::vector<const Batch*>& batches,
                                      AdamWOptimizer& optimizer, const std::vector<at::Tensor>& params,
                                      const StepOptions& options, const c10::Device& device,
                                      const std::function<bool()>& cancelled) {
  StepOutcome out;
  for (const Batch* batch : batches) out.label_tokens += CountedLabels(*batch);
  at::manual_seed(StepSeed(options.seed, options.step));
  optimizer.ZeroGrad();
  double loss_sum = 0;
  for (const Batch* batch : batches) {
    if (cancelled && cancelled()) return absl::CancelledError("cancelled");
    out.tokens += batch->tokens;
    const int64_t n = CountedLabels(*batch);
    if (n == 0) continue;
    at::Tensor logits = model.Forward(ToDevice(batch->input_ids, batch->rows, batch->cols, device),
                                      ToDevice(batch->attention_mask, batch->rows, batch->cols, device),
                                      ToDevice(batch->position_ids, batch->rows, batch->cols, device));
    at::Tensor loss = CausalLmLoss(logits, ToDevice(batch->labels, batch->rows, batch->cols, device));
    (loss * (static_cast<double>(n) / static_cast<double>(out.label_tokens))).backward();
    loss_sum += loss.item<double>() * static_cast<double>(n);
  }
  out.loss = out.label_tokens > 0 ? loss_sum / static_cast<double>(out.label_tokens) : 0.0;
  if (options.max_grad_norm > 0) {
    ASSIGN_OR_RETURN(out.grad_norm, ClipGradNorm(params, options.max_grad_norm));
  } else {
    out.grad_norm = GradNorm(params);
  }
  if (out.label_tokens > 0 && std::isfinite(out.grad_norm)) {
    optimizer.SetLearningRate(options.learning_rate);
    optimizer.Step();
  } else if (out.label_tokens > 0) {
    out.skipped = true;
  }
  return out;
}

}  // namespace tuneforge
