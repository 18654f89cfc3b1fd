// Elementwise parts of a decoder layer as single autograd nodes: rotary embedding of queries and keys, and the gated
// MLP activation. Each gives bit-identical values and gradients to transformers' op sequence (kept below as the
// reference forms), with fewer passes over the activations and, for the gated activation, one tensor fewer kept
// for the backward.
#ifndef TUNEFORGE_SERVICES_TRAINER_MODEL_FUSED_OPS_H_
#define TUNEFORGE_SERVICES_TRAINER_MODEL_FUSED_OPS_H_

#include <ATen/core/Tensor.h>

#include <utility>

#include "services/trainer/model/decoder_config.h"

namespace tuneforge {

// transformers' rotate_half: cat(-x[..., D/2:], x[..., :D/2]).
at::Tensor RotateHalf(const at::Tensor& x);

// Rotate-half RoPE of q [B,H,T,D] and k [B,kv,T,D] with cos and sin [B,1,T,D] (no grad through them): one node whose
// backward rotates the incoming gradients back (g*cos, and the halves of g*sin swapped), keeping only cos and sin.
std::pair<at::Tensor, at::Tensor> ApplyRope(const at::Tensor& q, const at::Tensor& k, const at::Tensor& cos,
                                            const at::Tensor& sin);
// The reference form, as transformers' apply_rotary_pos_emb writes it: x*cos + rotate_half(x)*sin.
at::Tensor ApplyRopeReference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// act(gate) * up as one node that keeps gate and up for the backward and recomputes act(gate) there, instead of
// keeping gate, act(gate) and up.
at::Tensor GatedActivation(const at::Tensor& gate, const at::Tensor& up, Activation activation);
// GatedActivation's h = act(gate) * up together with linear(h, lora_a), the LoRA down-projection of the projection h
// feeds (the MLP's down_proj): one node that keeps gate, up and lora_a, and forms h again in the backward for
// lora_a's gradient, instead of keeping h. Returns {h, linear(h, lora_a)}; values and gradients equal the two ops'.
std::pair<at::Tensor, at::Tensor> GatedActivationLoraDown(const at::Tensor& gate, const at::Tensor& up,
                                                          const at::Tensor& lora_a, Activation activation);
// The reference form: act(gate) * up through autograd op by op.
at::Tensor GatedActivationReference(const at::Tensor& gate, const at::Tensor& up, Activation activation);

// linear(dropout(x, p), weight) while training, the LoRA branch's down-projection, with the masks torch's dropout
// draws: the node keeps x (which the other projections of x keep anyway) and the one-byte mask, and forms the dropped
// input again in the backward, instead of keeping a dropped copy of x for every projection.
at::Tensor DropoutLinear(const at::Tensor& x, const at::Tensor& weight, double p);

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_MODEL_FUSED_OPS_H_
