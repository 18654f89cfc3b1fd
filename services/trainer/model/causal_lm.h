// The one decoder-only causal LM of every supported family (the family is data in DecoderConfig), with
// Hugging Face parameter names and rotate-half RoPE, and LoRA built into its projections.
#ifndef TUNEFORGE_SERVICES_TRAINER_MODEL_CAUSAL_LM_H_
#define TUNEFORGE_SERVICES_TRAINER_MODEL_CAUSAL_LM_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/trainer/model/decoder_config.h"

namespace tuneforge {

struct LoraOptions {
  int64_t rank = 0;  // r; 0 builds no LoRA
  double alpha = 0;  // lora_alpha; scaling = alpha / r (alpha / sqrt(r) with use_rslora)
  bool use_rslora = false;
  double dropout = 0.0;                     // on the LoRA input, training only
  std::vector<std::string> target_modules;  // LoraTargetShapes names, e.g. {"q_proj", "v_proj"}, or {"all-linear"}
  uint64_t seed = 0;                        // lora_A init: kaiming_uniform(a=sqrt(5)) as PEFT; lora_B starts at zero
};

// How attention is computed. Both give the same function; they differ in speed and memory.
enum class AttentionImpl {
  // at::scaled_dot_product_attention: the flash kernel on CUDA when no mask is needed (causal only), the
  // memory-efficient kernel with padding, packed segments or a sliding window; the fused CPU kernel on the CPU.
  kSdpa,
  // transformers' eager attention op for op: scores, fp32 softmax over an additive finfo.min mask.
  kEager,
};

// "sdpa" | "eager" (transformers' attn_implementation names); INVALID_ARGUMENT otherwise.
absl::StatusOr<AttentionImpl> ParseAttentionImpl(std::string_view name);
const char* AttentionImplName(AttentionImpl impl);

// How the queries of one forward attend, built once per forward from its attention_mask.
struct AttentionLayout {
  // The kernels' mask: eager, additive [B,1,T,S]; sdpa, bool [B,1,T,S] (true = attend). Undefined: plain causal
  // attention, or per-sequence attention below.
  at::Tensor mask;
  // Per-sequence attention (sdpa; packed rows and right padding): int64 [n,3] (row, start, length) on the CPU, the
  // sequences of each row in order from column 0, each attending causally to itself only; the rest of a row is
  // padding, whose attention output is zero. Undefined otherwise.
  at::Tensor sequences;
  // For the variable-length flash kernel (CUDA, half and bf16): the sequences' tokens as indices into the
  // flattened [B*T], int32 cumulative lengths [n+1] and the longest length. Undefined/0 otherwise.
  at::Tensor tokens;
  at::Tensor cu_seqlens;
  int64_t max_length = 0;

  bool per_sequence() const { return sequences.defined(); }
  // "causal", "mask", "per-sequence" or "varlen": the path attention takes, for tests and logs.
  const char* Describe() const;
};

// Whether a model of this config under `attention` attends sequence by sequence to every batch of sequences up to
// max_seq_len long (sdpa, and no sliding window shorter than a sequence): then padding-free and packed batches are
// exact and take the per-sequence path.
bool AttendsPerSequence(const DecoderConfig& config, AttentionImpl attention, int64_t max_seq_len);

struct BuildOptions {
  at::ScalarType dtype = at::kFloat;            // parameters and activations
  c10::Device device = c10::Device(c10::kCPU);  // where parameters live; inputs must be there too
  LoraOptions lora;
  bool train_base = false;  // full fine-tune: base weights require grad
  // Activation checkpointing while training: each decoder layer keeps only its input and recomputes its
  // activations during backward (replaying the same dropout masks), trading compute for memory.
  bool gradient_checkpointing = false;
  // With gradient_checkpointing: each checkpointed layer input waits in host memory (pinned on CUDA, copied without
  // blocking) from the forward to the backward, so the device holds no activations between layers. On the CPU it
  // saves nothing.
  bool activation_offload = false;
  AttentionImpl attention = AttentionImpl::kSdpa;
  // sdpa: packed rows and right-padded rows attend sequence by sequence (AttentionLayout::sequences). false sends
  // them through a block-diagonal mask instead: the same function, slower; for comparisons.
  bool per_sequence_attention = true;
  // RoPE and the gated MLP activation as single autograd nodes (fused_ops.h): the same values and gradients, fewer
  // passes and less memory kept for the backward. false runs transformers' op sequences, for comparisons.
  bool fused_elementwise = true;
};

// Keys (after RoPE) and values of every decoder layer for the tokens decoded so far, for
// CausalLM::ForwardWithCache: the prompt's after the prefill, then one more token per step. Storage grows by doubling;
// Reserve sizes it once when the final length is known.
class KvCache {
 public:
  explicit KvCache(int64_t reserve_tokens = 0) : reserved_(reserve_tokens) {}
  int64_t length() const { return length_; }  // tokens cached per row (padding included)
  // The largest position id cached, over the batch (-1 when empty): longrope's factor list follows it.
  int64_t max_position() const { return max_position_; }
  bool empty() const { return length_ == 0; }
  void Clear();
  // Layer `layer`'s keys and values [B, kv_heads, length(), head_dim] (views of the storage).
  at::Tensor keys(size_t layer) const;
  at::Tensor values(size_t layer) const;

 private:
  friend class CausalLM;
  std::vector<at::Tensor> keys_;    // per layer [B, kv_heads, capacity, head_dim]; the first length_ slots hold data
  std::vector<at::Tensor> values_;  // not repeated for grouped-query attention
  int64_t length_ = 0;
  int64_t reserved_ = 0;  // capacity to allocate at the first forward (0: exactly what it needs)
  int64_t max_position_ = -1;
};

// y = x W^T + b + scaling * B(A(dropout(x))). The LoRA part is skipped while merged into W.
struct Projection {
  at::Tensor weight;  // [out, in], HF "<module>.weight"
  at::Tensor bias;    // [out] or undefined
  at::Tensor lora_a;  // [r, in] or undefined
  at::Tensor lora_b;  // [out, r]
  double lora_scaling = 0;
  double lora_dropout = 0;
  bool merged = false;
  at::Tensor Forward(const at::Tensor& x, bool training) const;
  // Forward with the LoRA down-projection A(x) (no dropout) already computed by the caller; requires an unmerged
  // LoRA part.
  at::Tensor ForwardWithLoraDown(const at::Tensor& x, const at::Tensor& down) const;
};

class CausalLM {
 public:
  // `weights` by HF name must be exactly ExpectedWeightShapes (a tied lm_head may be present and is
  // ignored); INVALID_ARGUMENT names every missing or unexpected key and every wrong shape.
  static absl::StatusOr<std::unique_ptr<CausalLM>> Build(const DecoderConfig& config,
                                                         std::map<std::string, at::Tensor> weights,
                                                         const BuildOptions& options);
  // config.json (+ generation_config.json) and model.safetensors or model.safetensors.index.json of a
  // Hugging Face model directory.
  static absl::StatusOr<std::unique_ptr<CausalLM>> Load(const std::string& model_dir, const BuildOptions& options);

  // input_ids [B,T] int64; attention_mask [B,T] (1 = token, 0 = padding; values above 1 are segment ids of
  // packed examples, each attending only to its own segment) or undefined; position_ids
  // [B,T] or undefined (= arange(T) for every row, as HF forward()). Returns fp32 logits [B,T,V].
  at::Tensor Forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                     const at::Tensor& position_ids = {}) const;
  // Forward without the output projection: the final norm's output [B,T,H] in the model's dtype, for a loss that
  // projects a chunk of rows at a time (ChunkedCausalLmLoss with lm_head()).
  at::Tensor ForwardHidden(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                           const at::Tensor& position_ids = {}) const;
  // The output projection [V,H] (the embedding matrix when tied).
  const at::Tensor& lm_head() const { return lm_head_; }

  // Incremental decoding (no grad; inference only). `cache` holds the P tokens before input_ids [B,T] (empty for the
  // prompt's prefill) and gets the T new ones appended. attention_mask [B,P+T] covers the cached and the new tokens
  // (1 = token, 0 = padding; no segment ids), or undefined for all ones. position_ids [B,T], or undefined for
  // arange(P, P+T); with left padding pass what transformers' generate() does: cumsum(mask) - 1, clamped at 0.
  // Causal masking and the sliding window count cache slots, so padding must be left padding. Returns fp32 logits
  // [B,T,V], or [B,logits_to_keep,V] of the last positions when logits_to_keep > 0.
  at::Tensor ForwardWithCache(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                              const at::Tensor& position_ids, KvCache& cache, int64_t logits_to_keep = 0) const;
  // False when the keys cached for positions up to cache.max_position() would be rotated differently now that
  // positions reach `max_position`: longrope (phi3) picks its factor list by the largest position in the batch, so
  // the first step past original_max_position_embeddings must recompute the whole sequence. Always true otherwise.
  bool CacheValidUpTo(const KvCache& cache, int64_t max_position) const;

  // Argmax decoding without a cache (recomputes the whole sequence each step).
  std::vector<int64_t> GreedyGenerate(const std::vector<int64_t>& prompt, int64_t new_tokens) const;

  // AttendsPerSequence for this model (and false when built with per_sequence_attention off).
  bool AttendsPerSequence(int64_t max_seq_len) const;

  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }
  bool activation_offload() const { return activation_offload_; }
  const DecoderConfig& config() const { return config_; }
  // Base weights by HF name (the tied lm_head is not listed).
  const std::map<std::string, at::Tensor>& weights() const { return weights_; }
  // LoRA tensors by PEFT on-disk name "base_model.model.<module>.lora_{A|B}.weight", sorted.
  std::vector<std::pair<std::string, at::Tensor>> LoraParameters() const;
  // Every tensor that requires grad (LoRA, plus the base weights with train_base).
  std::vector<at::Tensor> TrainableParameters() const;
  // Projections by module name ("model.layers.0.self_attn.q_proj").
  std::map<std::string, Projection>& projections() { return projections_; }
  double lora_scaling() const { return lora_scaling_; }
  const LoraOptions& lora_options() const { return lora_; }

  // W += scaling * B @ A for every LoRA projection (idempotent); Unmerge subtracts it again.
  void MergeLora();
  void UnmergeLora();

  int64_t ParameterCount() const;
  int64_t TrainableParameterCount() const;

 private:
  struct Layer {
    at::Tensor input_norm;           // input_layernorm.weight
    at::Tensor post_attention_norm;  // post_attention_layernorm.weight
    const Projection* q = nullptr;   // q/k/v, or qkv when fused
    const Projection* k = nullptr;
    const Projection* v = nullptr;
    const Projection* qkv = nullptr;
    const Projection* o = nullptr;
    const Projection* gate = nullptr;  // gate/up, or gate_up when fused
    const Projection* up = nullptr;
    const Projection* gate_up = nullptr;
    const Projection* down = nullptr;
  };

  CausalLM() = default;
  at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight) const;
  // With a cache, the new keys and values are appended to layer `index`'s and attention runs over all of them.
  at::Tensor Attention(const Layer& layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                       const AttentionLayout& layout, KvCache* cache = nullptr, size_t index = 0) const;
  // Each sequence of layout.sequences attended on its own: q [B,H,T,D], k and v [B,kv,T,D] -> [B,T,H*D].
  at::Tensor PerSequenceAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const AttentionLayout& layout) const;
  at::Tensor Mlp(const Layer& layer, const at::Tensor& x) const;

 public:
  // One decoder layer: h + attention, then + MLP. Public for the checkpointing autograd function only.
  at::Tensor DecoderLayer(size_t index, const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin,
                          const AttentionLayout& layout, KvCache* cache = nullptr) const;

  // How a forward of input [batch, length] with this attention_mask (0: padding; other values: the segment ids of
  // packed examples) attends: plain causal, a mask, or per sequence. Public so that tests can check the path.
  AttentionLayout Layout(const at::Tensor& attention_mask, int64_t batch, int64_t length) const;

 private:
  std::pair<at::Tensor, at::Tensor> RopeCosSin(const at::Tensor& position_ids) const;
  // The mask each attention layer gets: eager, an additive [B,1,T,T] mask; sdpa, a bool [B,1,T,T] mask (true =
  // attend), or an undefined tensor when plain causal attention is exact (no padding, no segments, no window).
  at::Tensor AttentionMask(const at::Tensor& attention_mask, int64_t batch, int64_t length) const;
  // layout.sequences (and the varlen tensors) when every row is whole sequences from column 0 followed only by
  // padding, under sdpa, and no sequence is longer than a sliding window; false otherwise.
  bool PlanSequences(const at::Tensor& attention_mask, int64_t batch, int64_t length, AttentionLayout& layout) const;
  // The same for `length` queries after `past` cached tokens, over past + length keys; attention_mask [B,past+length]
  // marks padding keys (0). Undefined for sdpa when plain causal (past == 0) or full (one query) attention is exact.
  at::Tensor CachedAttentionMask(const at::Tensor& attention_mask, int64_t batch, int64_t past, int64_t length) const;

  DecoderConfig config_;
  LoraOptions lora_;
  double lora_scaling_ = 0;
  std::map<std::string, at::Tensor> weights_;
  std::map<std::string, Projection> projections_;
  std::vector<Layer> layers_;
  at::Tensor embed_;
  at::Tensor final_norm_;
  at::Tensor lm_head_;
  bool training_ = false;
  bool gradient_checkpointing_ = false;
  AttentionImpl attention_ = AttentionImpl::kSdpa;
  bool per_sequence_attention_ = true;
  bool fused_elementwise_ = true;
  bool activation_offload_ = false;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_MODEL_CAUSAL_LM_H_
