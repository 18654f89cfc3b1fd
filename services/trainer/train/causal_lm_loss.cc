// Shifted cross entropy as transformers 4.44 LlamaForCausalLM computes it.
#include "services/trainer/train/causal_lm_loss.h"

#include <ATen/ATen.h>

namespace tuneforge {

// Shifts the labels left instead of slicing the logits: position t is scored against token t+1 and the last
// position gets kIgnoreLabel, which is the same loss without copying the [B, T, vocab] logits.
at::Tensor CausalLmLoss(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t vocab = logits.size(2);
  at::Tensor shift_labels =
      at::cat({labels.slice(1, 1), at::full({labels.size(0), 1}, int64_t{kIgnoreLabel}, labels.options())}, 1).view({-1});
  at::Tensor flat_logits = logits.to(at::kFloat).reshape({-1, vocab});
  return at::cross_entropy_loss(flat_logits, shift_labels, /*weight=*/{}, at::Reduction::Mean, int64_t{kIgnoreLabel});
}

}  // namespace tuneforge
