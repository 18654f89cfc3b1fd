// The pieces of a training run that fine-tuning and evaluation share: batches on the device, the loss over a set of
// examples, one optimizer step over a group of micro-batches (accumulation, clipping, the schedule's rate, AdamW),
// and the dropout seed of a step.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_TRAINING_STEP_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_TRAINING_STEP_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "services/trainer/data/batching.h"
#include "services/trainer/data/examples.h"
#include "services/trainer/model/causal_lm.h"
#include "services/trainer/train/adamw.h"

namespace tuneforge {

// The dropout generator's seed for optimizer step `step`: a function of (seed, step) only, so a resumed run draws
// the masks the uninterrupted run drew.
uint64_t StepSeed(int64_t seed, int64_t step);

// Labels that the shifted loss counts: every label but the one in column 0 of each row.
int64_t CountedLabels(const Batch& b);

// A row-major [rows, cols] int64 tensor on `device`.
at::Tensor ToDevice(const std::vector<int64_t>& v, int64_t rows, int64_t cols, const c10::Device& device);

// fp32 L2 norm of all grads together, for runs without clipping.
double GradNorm(const std::vector<at::Tensor>& params);

// Model FLOPs of one training step over a [rows, cols] batch: the forward 2*P*N and the input gradients through the
// frozen weights 2*P*N (P: every projection and the output projection), LoRA's forward, input and weight gradients
// 6*P_lora*N, and attention (scores and P@V, 4*L*T^2*width per row forward, the full square, x3 with the backward).
// With train_base the weights' gradients add 2*P*N. `head_rows`: the rows the output projection runs on (the chunked
// loss projects only those whose label counts); -1 for every token. For MFU: the FLOPs the step does.
double TrainingFlops(CausalLM& model, int64_t rows, int64_t cols, int64_t head_rows = -1);

// StepOptions::loss_chunk_rows and EvaluateLoss: DefaultLossChunkRows of the model's vocabulary.
inline constexpr int64_t kAutoLossChunkRows = -1;

// The training loss of inputs [B,T] (scalar fp32): ChunkedCausalLmLoss over the final hidden states `chunk_rows` rows
// at a time (kAutoLossChunkRows: the default for the vocabulary), or with chunk_rows 0 CausalLmLoss over the whole
// logits. attention_mask and position_ids as CausalLM::Forward takes them.
at::Tensor ModelLoss(const CausalLM& model, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& position_ids, const at::Tensor& labels, int64_t chunk_rows);
// ModelLoss of one batch, its tensors put on `device`.
at::Tensor BatchLoss(const CausalLM& model, const Batch& batch, const c10::Device& device, int64_t chunk_rows);

struct EvalLoss {
  double mean = 0;           // token-weighted mean of the training loss (same shift and masking)
  int64_t label_tokens = 0;  // tokens that carry a loss
  int64_t tokens = 0;        // non-padding tokens
};

// The training loss over `examples` (in order, never packed), in eval mode and without grad. CANCELLED when
// `cancelled` turns true between batches.
absl::StatusOr<EvalLoss> EvaluateLoss(CausalLM& model, const std::vector<Example>& examples,
                                      const BatchOptions& options, const c10::Device& device,
                                      const std::function<bool()>& cancelled,
                                      int64_t loss_chunk_rows = kAutoLossChunkRows);

struct StepOptions {
  double max_grad_norm = 1.0;  // 0: no clipping
  double learning_rate = 0;    // this step's, from the schedule
  int64_t seed = 42;
  int64_t step = 0;  // optimizer steps done before this one
  int64_t loss_chunk_rows = kAutoLossChunkRows;  // 0: the whole logits (CausalLmLoss)
};

struct StepOutcome {
  double loss = 0;       // mean over the group's label tokens
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;    // non-padding tokens of the group
  int64_t label_tokens = 0;
  bool skipped = false;  // a non-finite gradient: no update was made
  double flops = 0;      // TrainingFlops of the group's micro-batches
};

// One optimizer step over `batches` (the micro-batches accumulated into it): forward, the loss of each micro-batch
// weighted by its share of the group's label tokens (so the gradient is the one big batch would give), backward,
// clipping, the learning rate, AdamW. `cancelled` is polled before every micro-batch (CANCELLED).
absl::StatusOr<StepOutcome> TrainStep(CausalLM& model, const std::vector<const Batch*>& batches,
                                      AdamWOptimizer& optimizer, const std::vector<at::Tensor>& params,
                                      const StepOptions& options, const c10::Device& device,
                                      const std::function<bool()>& cancelled);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_TRAINING_STEP_H_
