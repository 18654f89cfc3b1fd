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

double TrainingFlops(CausalLM& model, int64_t rows, int64_t cols, int64_t head_rows) {
  double dense = 0, lora = 0;
  for (auto& [name, p] : model.projections()) {
    dense += static_cast<double>(p.weight.numel());
    if (p.lora_a.defined()) lora += static_cast<double>(p.lora_a.numel() + p.lora_b.numel());
  }
  const auto& arch = model.config().arch;
  const double tokens = static_cast<double>(rows * cols);
  const double head = static_cast<double>(arch.vocab_size) * arch.hidden_size;  // lm_head, tied or not
  const double head_tokens = head_rows < 0 ? tokens : static_cast<double>(head_rows);
  const double attention = 3.0 * static_cast<double>(rows) * 4.0 * arch.num_hidden_layers * double(cols) * cols *
                           (arch.num_attention_heads * arch.head_dim);
  const bool base_grads = !model.weights().empty() && model.weights().begin()->second.requires_grad();
  const double per_weight = base_grads ? 6.0 : 4.0;
  return per_weight * dense * tokens + per_weight * head * head_tokens + 6.0 * lora * tokens + attention;
}

at::Tensor ModelLoss(const CausalLM& model, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& position_ids, const at::Tensor& labels, int64_t chunk_rows) {
  if (chunk_rows == 0) return CausalLmLoss(model.Forward(input_ids, attention_mask, position_ids), labels);
  if (chunk_rows < 0) chunk_rows = DefaultLossChunkRows(model.lm_head().size(0));
  return ChunkedCausalLmLoss(model.ForwardHidden(input_ids, attention_mask, position_ids), model.lm_head(), labels,
                             chunk_rows);
}

at::Tensor BatchLoss(const CausalLM& model, const Batch& batch, const c10::Device& device, int64_t chunk_rows) {
  return ModelLoss(model, ToDevice(batch.input_ids, batch.rows, batch.cols, device),
                   ToDevice(batch.attention_mask, batch.rows, batch.cols, device),
                   ToDevice(batch.position_ids, batch.rows, batch.cols, device),
                   ToDevice(batch.labels, batch.rows, batch.cols, device), chunk_rows);
}

absl::StatusOr<EvalLoss> EvaluateLoss(CausalLM& model, const std::vector<Example>& examples,
                                      const BatchOptions& options, const c10::Device& device,
                                      const std::function<bool()>& cancelled, int64_t loss_chunk_rows) {
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
    sum += BatchLoss(model, b, device, loss_chunk_rows).item<double>() * static_cast<double>(n);
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
    out.flops += TrainingFlops(model, batch->rows, batch->cols, options.loss_chunk_rows == 0 ? -1 : n);
    at::Tensor loss = BatchLoss(model, *batch, device, options.loss_chunk_rows);
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
