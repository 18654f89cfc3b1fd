// Hugging Face's causal-LM loss: fp32 logits shifted by one, labels -100 ignored, mean over every counted
// token of the batch. Two forms: from the logits, and from the final hidden states and the output projection a
// chunk of rows at a time, so that fp32 logits for all tokens never exist at once.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_CAUSAL_LM_LOSS_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_CAUSAL_LM_LOSS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "services/trainer/data/labels.h"

namespace tuneforge {

// logits [B,T,V], labels [B,T] int64 (position t is predicted from positions < t). Scalar fp32 tensor.
at::Tensor CausalLmLoss(const at::Tensor& logits, const at::Tensor& labels);

// The same loss as CausalLmLoss(linear(hidden, lm_head).float(), labels), from hidden [B,T,H] (the final norm's
// output, in the model's dtype) and lm_head [V,H]. Only rows whose shifted label counts get logits, and those
// `chunk_rows` at a time: the forward computes each chunk's fp32 logits, its loss and the loss's gradient with
// respect to the chunk's hidden rows (and to lm_head when it requires grad), and drops the logits; the backward
// only scales what the forward kept. Extra memory: one chunk's [chunk_rows, V] fp32 logits and their softmax, instead
// of [B*T, V] logits, their log-softmax and its gradient. No counted label: NaN, as CausalLmLoss.
at::Tensor ChunkedCausalLmLoss(const at::Tensor& hidden, const at::Tensor& lm_head, const at::Tensor& labels,
                               int64_t chunk_rows);

// Rows per chunk for a vocabulary of `vocab`: about 32 M logits (128 MB in fp32) a chunk, at least 1 row.
int64_t DefaultLossChunkRows(int64_t vocab);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_CAUSAL_LM_LOSS_H_
