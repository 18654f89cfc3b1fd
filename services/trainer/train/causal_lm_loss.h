// Hugging Face's causal-LM loss: fp32 logits shifted by one, labels -100 ignored, mean over every counted
// token of the batch.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_CAUSAL_LM_LOSS_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_CAUSAL_LM_LOSS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "services/trainer/data/labels.h"

namespace tuneforge {

// logits [B,T,V], labels [B,T] int64 (position t is predicted from positions < t). Scalar fp32 tensor.
at::Tensor CausalLmLoss(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_CAUSAL_LM_LOSS_H_
