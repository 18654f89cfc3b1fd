// Shifted cross entropy as transformers 4.44 LlamaForCausalLM computes it.
#include "services/trainer/train/causal_lm_loss.h"

#include <ATen/ATen.h>

namespace tuneforge {

at::Tensor CausalLmLoss(const at::Tensor& logits, const at::Tensor& labels) {
  const int64_t length = logits.size(1), vocab = logits.size(2);
  at::Tensor shift_logits = logits.to(at::kFloat).slice(1, 0, length - 1).contiguous().view({-1, vocab});
  at::Tensor shift_labels = labels.slice(1, 1).contiguous().view({-1});
  return at::cross_entropy_loss(shift_logits, shift_labels, /*weight=*/{}, at::Reduction::Mean, kIgnoreLabel);
}

}  // namespace tuneforge
